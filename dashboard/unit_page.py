"""A unit's own page, ``/area/<level>/<code>``: its KPI cards, its children ranked by one
metric (or, at the lowest level, its devices), a trend per metric over the chosen range,
and a small map of the unit with its devices.

The URL is the page's state: ``?metric=&range=&start=&end=`` (the selectors write it, a
link or a reload reads it back). Callbacks are plain functions of the context and the
signed-in user's :class:`~dashboard.access.Access` (tests call them); a unit the user may
not see answers exactly like an unknown code.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import dash
from dash import Input, Output, dcc, html

from core.errors import RetryableError
from core.types import UnitRef
from dashboard import ids
from dashboard.access import Access
from dashboard.auth import current_access
from dashboard.context import DashboardContext
from dashboard.i18n import add_texts, format_clock, text
from dashboard.kpi import RangeError, TimeRange, parse_range, unit_kpis, unit_trend
from dashboard.pages import mount_page
from dashboard.plotlyjs import ROUTE as PLOTLY_JS_ROUTE
from dashboard.ranking import children_ranking
from dashboard.routes import area_href, parse_location, place_href, unit_href
from dashboard.scoped import ScopedData
from dashboard.unit_controls import (
    UNIT_BEAT,
    UNIT_HEAD,
    UNIT_KPIS,
    UNIT_MAP,
    UNIT_MAP_GRAPH,
    UNIT_RANKING,
    UNIT_RANKING_TABLE,
    UNIT_STATUS,
    UNIT_TREND_GRAPH,
    UNIT_TRENDS,
    query_of,
    register_controls,
    unit_body,
)
from dashboard.unit_exports import CHILDREN, KPIS, declare_exports, export_links, trend_link
from dashboard.views.kpi import kpi_cards, period_label
from dashboard.views.panel import message_panel
from dashboard.views.ranking import parse_sort, ranking_table
from dashboard.views.unit import (
    breadcrumb,
    csv_link,
    device_states_legend,
    href_with,
    trend_card,
    unit_map_figure,
    unit_name,
)
from layers.levels import Unit

log = logging.getLogger("cityops.dashboard")

UNIT_PATH = "area/"

add_texts(
    {
        "unit_page_title": ("Đơn vị hành chính", "Administrative unit"),
        "unit_on_map": ("Xem trên bản đồ", "See on the map"),
        "unit_ranking_children": (
            "Xếp hạng {level} theo {metric}",
            "{level} ranking by {metric}",
        ),
        "unit_pick": ("Chọn một đơn vị hành chính:", "Choose an administrative unit:"),
        "unit_ranking_devices": ("Thiết bị theo {metric}", "Devices by {metric}"),
        "unit_ranking_empty": ("Không có dữ liệu", "No data"),
        "unit_map_title": ("Thiết bị trong đơn vị", "Devices in the unit"),
        "unit_trends_title": ("Diễn biến theo thời gian", "Over time"),
        "unit_status": ("{period} · cập nhật lúc {time}", "{period} · updated at {time}"),
        "unit_kpis_csv": ("Chỉ số chính", "Key figures"),
    }
)


class UnitPage(NamedTuple):
    """What the render callback writes, one entry per output."""

    head: Any
    status: Any
    kpis: Any
    ranking: Any
    map: Any
    trends: Any


def page_query(
    metric_id: str, period_query: dict[str, str], lang: str | None = None
) -> dict[str, str]:
    """The query of links that keep the view: metric, range (and ``lang`` when the URL
    names one)."""
    return {"metric": metric_id, **period_query, **({"lang": lang} if lang else {})}


def _unit_head(
    ctx: DashboardContext, access: Access, unit: Unit, lang: str, query: dict[str, str]
) -> html.Div:
    prefix = ctx.url_prefix
    chain = ctx.hierarchy.ancestors(unit.code)
    has_children = bool(ctx.hierarchy.children(unit.code))
    metric = query.get("metric")
    on_map = (
        place_href(prefix, unit.code, metric)
        if has_children
        else unit_href(prefix, unit.code, metric)
    )
    return html.Div(
        [
            breadcrumb(chain, access.can_see, prefix, lang, query),
            html.H2(unit_name(unit, lang), className="unit-title"),
            html.Span(ctx.hierarchy.level_label(unit.level, lang), className="unit-level"),
            html.A(text("unit_on_map", lang), href=on_map, className="unit-map-link"),
        ],
        className="unit-head-body",
    )


def _ranking_section(
    ctx: DashboardContext,
    access: Access,
    unit: Unit,
    metric_id: str,
    period: TimeRange,
    lang: str,
    query: dict[str, str],
    csv_href: str,
    sort: tuple[str, bool],
) -> html.Section:
    metric = ctx.metrics[metric_id]
    frame = children_ranking(ctx.data, access, unit.code, metric_id, period)
    children = ctx.hierarchy.children(unit.code)
    label = metric.label.get(lang)
    if children:
        level = ctx.hierarchy.level_label(children[0].level, lang)
        title = text("unit_ranking_children", lang, level=level, metric=label)
    else:
        title = text("unit_ranking_devices", lang, metric=label)

    def link(code: str) -> str:
        return href_with(area_href(ctx.url_prefix, children[0].level, code), query)

    def sort_href(value: str) -> str:
        here = area_href(ctx.url_prefix, unit.level, unit.code)
        return href_with(here, {**query, "sort": value})

    body: Any = (
        html.P(text("unit_ranking_empty", lang), className="panel-note")
        if frame.empty
        else ranking_table(
            frame,
            metric,
            lang=lang,
            tz=ctx.tz,
            table_id=UNIT_RANKING_TABLE,
            link=link if children else None,
            sort=sort,
            sort_href=sort_href,
        )
    )
    return html.Section(
        [
            html.Div(
                [html.H3(title, className="panel-heading"), csv_link(csv_href, lang)],
                className="unit-section-head",
            ),
            body,
        ],
        className="unit-ranking-body",
    )


def _map_section(ctx: DashboardContext, access: Access, unit: Unit, lang: str) -> html.Section:
    """The unit's children outlines (or its own shape) from the map's geometry, and its
    devices by state."""
    geo_url: str | None = None
    shapes: list[tuple[str, str]] = []
    try:
        view = ctx.views.of_place(unit.code)
        if view.place != unit.code:  # the lowest level: the unit is one shape of its parent's view
            view = ctx.views.of_place(unit.parent_code)
        drawn = {item.code: item.name.get(lang) for item in view.units}
        wanted = (
            [child.code for child in ctx.hierarchy.children(unit.code)]
            if view.place == unit.code
            else [unit.code]
        )
        # Far islands (the map's inset, e.g. Đặc khu Hoàng Sa) would shrink the rest to a dot.
        shapes = [
            (code, drawn[code]) for code in wanted if code in drawn and code not in view.inset
        ]
        geo_url = view.geo_url
    except KeyError:  # a unit outside the map's boundaries: devices only
        shapes = []
    devices = ScopedData(ctx.data, access).devices(within=unit.code)
    parts: list[Any] = [html.H3(text("unit_map_title", lang), className="panel-heading")]
    if not shapes and devices.empty:
        parts.append(html.P(text("unit_map_no_shape", lang), className="panel-note"))
    else:
        figure = unit_map_figure(
            geo_url if shapes else None,
            shapes,
            devices,
            lang=lang,
            tz=ctx.tz,
            metrics=ctx.metrics,
            revision=unit.code,
        )
        parts.append(
            dcc.Graph(
                id=UNIT_MAP_GRAPH,
                figure=figure,
                config={
                    "displayModeBar": False,
                    "responsive": True,
                    "topojsonURL": f"{ctx.url_prefix.rstrip('/')}/assets/topojson/",
                },
                className="unit-map-graph",
                style={"height": "22rem"},
            )
        )
        parts.append(device_states_legend(lang))
    return html.Section(parts, className="unit-map-body")


def _pick_unit(ctx: DashboardContext, access: Access, lang: str) -> html.Div:
    """Links to the user's own units (an admin: home), for a URL that names none."""
    home = ctx.views.places.home()
    codes = access.top_units() or ([home] if home is not None and access.everything else [])
    units = [unit for unit in (ctx.hierarchy.get(code) for code in codes) if unit is not None]
    items = [
        html.Li(
            dcc.Link(unit_name(unit, lang), href=area_href(ctx.url_prefix, unit.level, unit.code))
        )
        for unit in units
    ]
    return html.Div(
        [html.P(text("unit_pick", lang), className="panel-note"), html.Ul(items)],
        className="panel-body",
    )


def render_unit_page(
    ctx: DashboardContext,
    access: Access,
    pathname: str | None,
    search: str | None,
    lang_value: object,
) -> UnitPage:
    """The page of the unit in ``pathname`` with the metric and range of ``search``."""
    lang = ctx.lang(lang_value)
    selection = parse_location(pathname, search)
    code = selection.unit
    if code is None:  # /area/ itself, or not a unit code at all
        return UnitPage(_pick_unit(ctx, access, lang), "", None, None, None, None)
    unit = ctx.hierarchy.get(code)
    if unit is None or not access.can_see(unit.code):  # out of reach: as if there were none
        missing = message_panel(text("unknown_unit", lang, code=code), kind="warning")
        return UnitPage(missing, "", None, None, None, None)
    query = query_of(search)
    metric_id = ctx.metric_id(selection.metric)
    now = ctx.clock.now()
    try:
        period = parse_range(query.get("range"), query.get("start"), query.get("end"), now, ctx.tz)
    except RangeError as exc:
        head = _unit_head(ctx, access, unit, lang, {"metric": metric_id})
        hint = message_panel(exc.message(lang), kind="warning")
        return UnitPage(head, hint, None, None, None, None)
    shown_query = page_query(metric_id, period.query(), selection.lang)
    head = _unit_head(ctx, access, unit, lang, shown_query)
    links = export_links(ctx, unit.code, metric_id, period)
    ref = UnitRef(unit.level, unit.code)
    try:
        frame = unit_kpis(ctx.data, access, ref, period, now)
        cards = html.Div(
            [
                kpi_cards(frame, ctx.metrics, lang, now, ctx.stale_after, ctx.tz, period=period),
                csv_link(links[KPIS], lang),
            ],
            className="unit-kpis-body",
        )
        sort = parse_sort(query.get("sort"))
        ranking = _ranking_section(
            ctx, access, unit, metric_id, period, lang, shown_query, links[CHILDREN], sort
        )
        small_map = _map_section(ctx, access, unit, lang)
        trends = [
            trend_card(
                each,
                metric,
                unit_trend(ctx.data, access, each, ref, period),
                period,
                lang=lang,
                tz=ctx.tz,
                csv_href=trend_link(ctx, unit.code, each, period),
                graph_id={"type": UNIT_TREND_GRAPH, "metric": each},
            )
            for each, metric in ctx.metrics.items()
        ]
    except Exception as exc:
        if isinstance(exc, RetryableError):  # the store is unreachable: no traceback
            log.warning("unit page %s failed, will retry: %s", unit.code, exc)
        else:
            log.exception("unit page %s failed", unit.code)
        seconds = round(ctx.settings.dashboard.refresh_s)
        error = message_panel(text("load_error", lang, seconds=seconds), kind="error")
        nothing = dash.no_update
        return UnitPage(head, error, nothing, nothing, nothing, nothing)
    status = text(
        "unit_status", lang, period=period_label(period, lang), time=format_clock(now, ctx.tz)
    )
    trends_body = html.Div(
        [html.H3(text("unit_trends_title", lang), className="panel-heading"), *trends]
    )
    return UnitPage(head, status, cards, ranking, small_map, trends_body)


def mount_unit_page(main: dash.Dash, ctx: DashboardContext) -> dash.Dash:
    """Serve the page at ``<main's prefix>area/<level>/<code>``; declare its CSV exports.
    Mount it after ``mount_plotly_js(main, …)``: the page loads the same geo bundle."""
    declare_exports(ctx)

    def register(app: dash.Dash) -> None:
        register_controls(app, ctx)

        @app.callback(
            Output(UNIT_HEAD, "children"),
            Output(UNIT_STATUS, "children"),
            Output(UNIT_KPIS, "children"),
            Output(UNIT_RANKING, "children"),
            Output(UNIT_MAP, "children"),
            Output(UNIT_TRENDS, "children"),
            Input(ids.URL, "pathname"),
            Input(ids.URL, "search"),
            Input(ids.LANG, "value"),
            Input(UNIT_BEAT, "data"),  # the refresh beats this page redraws on
        )
        def _render(pathname: Any, search: Any, lang: Any, _beat: Any) -> Any:
            return tuple(render_unit_page(ctx, current_access(), pathname, search, lang))

    app = mount_page(
        main,
        ctx,
        path=UNIT_PATH,
        title_key="unit_page_title",
        layout=lambda lang: unit_body(ctx, lang),
        register=register,
    )
    # The geo bundle of plotly.js that the map page loads (dashboard/plotlyjs.py), so this
    # page never falls back to the full bundle.
    for script in main.scripts.get_all_scripts():  # type: ignore[no-untyped-call]
        url = str(script.get("external_url", ""))
        if PLOTLY_JS_ROUTE in url:
            bundle = {"external_url": url, "external_only": True}
            app.scripts.append_script(bundle)  # type: ignore[no-untyped-call]
    return app
