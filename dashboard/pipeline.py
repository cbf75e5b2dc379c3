"""The ingest pipeline page, ``/pipeline/``: per worker, its last self-metrics snapshot
(docs/design/007-self-metrics.md), refreshed on the dashboard's beat.

A second Dash app on the main app's Flask server, so the map page keeps its single
layout: the same waitress server, assets and compression serve both. Callbacks are plain
functions of a :class:`PipelineContext` (tests call them); :func:`mount_pipeline_page`
binds them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import dash
from dash import Input, Output, dcc, html
from flask import redirect

from core.errors import RetryableError
from core.ports import Clock
from core.settings import Settings
from dashboard import ids
from dashboard.data import DashboardData
from dashboard.i18n import as_lang, format_clock, text
from dashboard.routes import parse_location
from dashboard.views.page import lang_options
from dashboard.views.panel import message_panel
from dashboard.views.pipeline import pipeline_table

log = logging.getLogger("cityops.dashboard")

PIPELINE_PATH = "pipeline/"


@dataclass(frozen=True, slots=True)
class PipelineContext:
    settings: Settings
    data: DashboardData
    clock: Clock
    tz: ZoneInfo
    map_url: str  # the map page, for the link back

    def lang(self, value: object) -> str:
        return as_lang(value, default=self.settings.site.language)


def lang_link(url: str, lang: str) -> str:
    """``url`` with ``?lang=`` so the other page opens in the language on screen."""
    return f"{url}?{urlencode({'lang': lang})}"


def lang_from_url(ctx: PipelineContext, search: str | None) -> str:
    return ctx.lang(parse_location(None, search).lang)


def render_pipeline(ctx: PipelineContext, lang_value: object) -> tuple[Any, ...]:
    """(title, link text, link href, language label, "updated at", table or message)."""
    lang = ctx.lang(lang_value)
    chrome = (
        text("pipeline_title", lang),
        text("nav_map", lang),
        lang_link(ctx.map_url, lang),
        text("lang_label", lang),
    )
    try:
        now = ctx.clock.now()
        table = pipeline_table(
            ctx.data.pipeline(),
            lang=lang,
            now=now,
            tz=ctx.tz,
            default_interval_s=ctx.settings.ingest.metrics_interval_s,
        )
    except Exception as exc:
        if isinstance(exc, RetryableError):
            log.warning("pipeline page refresh failed, will retry: %s", exc)
        else:
            log.exception("pipeline page refresh failed")
        seconds = round(ctx.settings.dashboard.refresh_s)
        error = message_panel(text("load_error", lang, seconds=seconds), kind="error")
        return (*chrome, dash.no_update, error)
    return (*chrome, text("updated_at", lang, time=format_clock(now, ctx.tz)), table)


def nav_to_pipeline(ctx: PipelineContext, lang_value: object, url: str) -> tuple[str, str]:
    """The map page's link to this page: (text, href), in the language on screen."""
    lang = ctx.lang(lang_value)
    return text("nav_pipeline", lang), lang_link(url, lang)


def pipeline_layout(ctx: PipelineContext) -> html.Div:
    lang = ctx.settings.site.language
    header = html.Header(
        [
            html.H1(text("pipeline_title", lang), id=ids.PIPELINE_TITLE, className="site-title"),
            html.A(text("nav_map", lang), id=ids.NAV_MAP, href=ctx.map_url, className="nav-link"),
            html.Div(
                [
                    html.Label(text("lang_label", lang), id=ids.LANG_LABEL, htmlFor=ids.LANG),
                    dcc.RadioItems(
                        id=ids.LANG,
                        options=lang_options(),
                        value=lang,
                        inline=True,
                        className="segmented",
                    ),
                ],
                className="control",
            ),
            html.Div(html.Span(id=ids.UPDATED_AT, className="updated-at"), className="status"),
        ],
        className="header",
    )
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh=False),
            dcc.Interval(id=ids.REFRESH, interval=int(ctx.settings.dashboard.refresh_s * 1000)),
            header,
            html.Main(
                html.Div(id=ids.PIPELINE_TABLE, className="pipeline-body", role="status"),
                className="pipeline-main",
            ),
        ],
        className="page",
        lang=lang,
    )


def mount_pipeline_page(main: dash.Dash, ctx: PipelineContext, assets_folder: str) -> dash.Dash:
    """Serve the page at ``<main's prefix>pipeline/`` on ``main``'s server (``…/pipeline``
    redirects there)."""
    routes = (main.config.routes_pathname_prefix or "/") + PIPELINE_PATH
    requests = (main.config.requests_pathname_prefix or "/") + PIPELINE_PATH
    app = dash.Dash(
        __name__,
        server=main.server,
        routes_pathname_prefix=routes,
        requests_pathname_prefix=requests,
        assets_folder=assets_folder,
        serve_locally=True,
        compress=False,  # the main app's Flask-Compress already covers the shared server
        title=text("pipeline_title", ctx.settings.site.language),
        update_title="",
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    main.server.add_url_rule(
        routes.rstrip("/"), "cityops_pipeline_slash", lambda: redirect(requests, code=308)
    )
    app.layout = lambda: pipeline_layout(ctx)

    @main.callback(
        Output(ids.NAV_PIPELINE, "children"),
        Output(ids.NAV_PIPELINE, "href"),
        Input(ids.LANG, "value"),
    )
    def _nav(lang: object) -> Any:
        return nav_to_pipeline(ctx, lang, requests)

    @app.callback(Output(ids.LANG, "value"), Input(ids.URL, "search"))
    def _lang_from_url(search: str | None) -> Any:
        return lang_from_url(ctx, search)

    @app.callback(
        Output(ids.PIPELINE_TITLE, "children"),
        Output(ids.NAV_MAP, "children"),
        Output(ids.NAV_MAP, "href"),
        Output(ids.LANG_LABEL, "children"),
        Output(ids.UPDATED_AT, "children"),
        Output(ids.PIPELINE_TABLE, "children"),
        Input(ids.REFRESH, "n_intervals"),
        Input(ids.LANG, "value"),
    )
    def _render(_tick: object, lang: object) -> Any:
        return render_pipeline(ctx, lang)

    return app
