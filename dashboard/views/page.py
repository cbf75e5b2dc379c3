"""The page skeleton: header (site name, metric and language selectors, last update,
dead-letter badge), the map with its legend, and the unit panel. Texts are filled in the
default language here and replaced by callbacks when the language changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from dash import dcc, html

from core.settings import Label, MetricSettings
from dashboard import ids
from dashboard.i18n import LANGS, text
from dashboard.views.nav import aria
from dashboard.views.panel import message_panel

# A placeholder until the first callback draws the map: no axes, no grid, nothing to fetch.
EMPTY_FIGURE: dict[str, Any] = {
    "data": [],
    "layout": {
        "xaxis": {"visible": False},
        "yaxis": {"visible": False},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
    },
}


def metric_options(metrics: Mapping[str, MetricSettings], lang: str) -> list[dict[str, str]]:
    return [{"label": metric.label.get(lang), "value": key} for key, metric in metrics.items()]


def lang_options() -> list[dict[str, str]]:
    return [{"label": text(f"lang_{lang}", lang), "value": lang} for lang in LANGS]


def lang_control(lang: str) -> html.Div:
    """The language selector of every page's header (``ids.LANG``)."""
    return html.Div(
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
    )


def map_graph_config(topojson_url: str) -> dict[str, Any]:
    """plotly.js config of the map. ``topojsonURL``: the geo trace fetches a world topology
    even with the base map hidden; it must come from this server, not from the CDN."""
    return {
        "topojsonURL": topojson_url,
        "displayModeBar": False,
        "displaylogo": False,
        "scrollZoom": False,
        "responsive": True,
    }


def page_layout(
    *,
    site_name: Label,
    metrics: Mapping[str, MetricSettings],
    metric_id: str,
    lang: str,
    refresh_s: float,
    topojson_url: str,
    show_dead_letters: bool,
    nav: Any = None,
    user: Any = None,
) -> html.Div:
    header = html.Header(
        [
            html.H1(site_name.get(lang), id=ids.SITE_TITLE, className="site-title"),
            html.Nav(nav, id=ids.NAV_LINKS, className="nav-links"),
            html.Div(user, id=ids.USER_BOX),
            html.Div(className="header-break"),
            html.Div(
                [
                    html.Label(text("metric_label", lang), id=ids.METRIC_LABEL, htmlFor=ids.METRIC),
                    dcc.RadioItems(
                        id=ids.METRIC,
                        options=metric_options(metrics, lang),
                        value=metric_id,
                        inline=True,
                        className="segmented",
                    ),
                ],
                className="control",
            ),
            lang_control(lang),
            html.Div(
                [
                    html.Span(id=ids.UPDATED_AT, className="updated-at"),
                    html.Span(
                        id=ids.DEAD_LETTERS,
                        className="badge",
                        title=text("dead_letters_hint", lang),
                        hidden=not show_dead_letters,
                    ),
                ],
                className="status",
            ),
        ],
        className="header",
    )
    navigation = html.Div(
        [
            html.Nav(
                html.Ol(id=ids.BREADCRUMB, className="breadcrumb"),
                className="breadcrumb-nav",
                **aria(label=text("breadcrumb_label", lang)),
            ),
            html.Div(
                [
                    html.Label(text("history_label", lang), id=ids.DAY_LABEL, htmlFor=ids.DAY),
                    dcc.DatePickerSingle(
                        id=ids.DAY,
                        date=None,
                        display_format="DD/MM/YYYY",
                        first_day_of_week=1,  # weeks start on Monday
                        clearable=True,  # cleared = live
                        placeholder=text("history_live", lang),
                        className="map-day",
                    ),
                ],
                className="day-box",
            ),
            html.Div(
                [
                    html.Label(
                        text("search_label", lang),
                        id=ids.SEARCH_LABEL,
                        htmlFor=ids.SEARCH,
                        className="visually-hidden",
                    ),
                    dcc.Input(
                        id=ids.SEARCH,
                        type="search",
                        placeholder=text("search_placeholder", lang),
                        debounce=0.3,
                        autoComplete="off",
                        className="unit-search",
                    ),
                    html.Ul(id=ids.SEARCH_RESULTS, className="search-results"),
                ],
                className="search-box",
            ),
        ],
        className="map-nav",
    )
    map_area = html.Section(
        [
            navigation,
            dcc.Graph(
                id=ids.MAP,
                figure=EMPTY_FIGURE,
                config=cast(Any, map_graph_config(topojson_url)),
                className="map-graph",
                responsive=True,
            ),
            html.Div(id=ids.MAP_STATUS, className="map-status", role="status"),
            html.Div(id=ids.HISTORY_NOTE, className="history-note", role="note"),
            html.Aside(id=ids.LEGEND, className="legend-box"),
        ],
        className="map-area",
    )
    controls = html.Div(
        [
            html.Span(text("ov_range_label", lang), id=ids.RANGE_LABEL),
            dcc.RadioItems(
                id=ids.RANGE,
                options=[],  # filled in the page's language by a callback
                value="live",
                inline=True,
                className="segmented",
            ),
            dcc.DatePickerRange(
                id=ids.RANGE_DAYS,
                first_day_of_week=1,  # weeks start on Monday
                display_format="DD/MM/YYYY",
                style={"display": "none"},
            ),
        ],
        className="control panel-controls",
    )
    panel = html.Aside(
        [controls, html.Div(message_panel(text("pick_unit", lang)), id=ids.PANEL)],
        className="unit-panel",
    )
    return html.Div(
        [
            # callback-nav: a callback that sets href (a click on the map) moves the page
            # without a reload, and the location callback answers it like a link's click.
            dcc.Location(id=ids.URL, refresh="callback-nav"),
            dcc.Store(id=ids.PLACE, data=None),
            dcc.Interval(id=ids.REFRESH, interval=int(refresh_s * 1000)),
            dcc.Store(id=ids.SELECTED_UNIT, data=None),
            dcc.Store(id=ids.MAP_DRAWN, data=None),
            dcc.Store(id=ids.MAP_UPDATE, data=None),
            dcc.Store(id=ids.MAP_APPLIED, data=None),
            dcc.Store(id=ids.TEXT_PX, data=None),
            header,
            html.Main([map_area, panel], className="main"),
        ],
        className="page",
        lang=lang,
    )
