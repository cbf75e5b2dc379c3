"""The drill-down's navigation: the breadcrumb and the results of a unit search. Pure:
crumbs and links in, Dash components out. Links move within the page (``dcc.Link``: no
reload), so the browser's back button walks back up the drill-down too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import dcc, html

from dashboard.i18n import text
from dashboard.place import Crumb
from dashboard.routes import place_href

SEPARATOR = "›"


def breadcrumb_links(crumbs: Sequence[Crumb], url_prefix: str, lang: str) -> list[html.Li]:
    """Every crumb but the last is a link to its map; the last is where the screen is."""
    items = []
    for position, crumb in enumerate(crumbs):
        last = position == len(crumbs) - 1
        body: Any = (
            html.Span(crumb.label, className="crumb-here", **aria(current="page"))
            if last
            else dcc.Link(crumb.label, href=place_href(url_prefix, crumb.code), className="crumb")
        )
        items.append(html.Li(body))
    return items


def search_results(links: Sequence[tuple[str, str]], lang: str) -> list[html.Li]:
    """(label, href) pairs as a list; one line saying so when there are none."""
    if not links:
        return [html.Li(text("search_none", lang), className="search-none")]
    return [html.Li(dcc.Link(label, href=href, className="search-hit")) for label, href in links]


def aria(**attributes: str) -> dict[str, Any]:
    """``aria-*`` attributes for Dash's html components (keyword names cannot hold "-")."""
    return {f"aria-{name}": value for name, value in attributes.items()}
