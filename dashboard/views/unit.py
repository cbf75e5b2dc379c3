"""The pieces of a unit's page (dashboard/unit_page.py): breadcrumb, ranking table, trend
charts, the small map of the unit and its devices. Pure: frames in, components out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from core.settings import MetricSettings
from dashboard.exports import csv_link as export_link
from dashboard.i18n import add_texts, text
from dashboard.kpi import TimeRange
from dashboard.routes import area_href
from dashboard.views.devices import device_legend, device_trace
from dashboard.views.kpi import data_attributes, period_label
from dashboard.views.legend import device_legend_box
from dashboard.views.nav import aria
from dashboard.views.panel import trend_figure
from layers.levels import Unit

SHAPE_FILL: Final = "#F3F4F6"
SHAPE_LINE: Final = "#374151"
# As the map page's geo (views/map.py): no base map, the local world topology.
GEO: Final[dict[str, Any]] = {
    "visible": False,
    "fitbounds": "locations",
    "projection": {"type": "mercator"},
    "scope": "world",
    "resolution": 110,
    "bgcolor": "rgba(0,0,0,0)",
}

add_texts(
    {
        "unit_breadcrumb": ("Đơn vị cấp trên", "Parent units"),
        "unit_trend_title": ("{metric} ({unit}), {period}", "{metric} ({unit}), {period}"),
        "unit_trend_no_data": (
            "Không có dữ liệu trong khoảng thời gian này",
            "No data in this period",
        ),
        "unit_map_no_shape": (
            "Không có ranh giới của đơn vị này trên bản đồ",
            "This unit has no boundary on the map",
        ),
    }
)


def href_with(base: str, query: Mapping[str, str]) -> str:
    """``base`` with the page's query (metric, range, days) so a link keeps the view."""
    kept = {key: value for key, value in query.items() if value}
    return f"{base}?{urlencode(kept)}" if kept else base


def csv_link(href: str, lang: str) -> html.A:
    return export_link(href, lang, "csv-link")


def breadcrumb(
    chain: Sequence[Unit],
    can_open: Callable[[str], bool],
    prefix: str,
    lang: str,
    query: Mapping[str, str],
) -> html.Nav:
    """The unit's ancestors, top first, each linking to its own page (plain text where
    this user may not open it), the unit itself last."""
    items = []
    for position, unit in enumerate(chain):
        label = unit_name(unit, lang)
        if position == len(chain) - 1:
            body: Any = html.Span(label, className="crumb-here", **aria(current="page"))
        elif can_open(unit.code):
            body = dcc.Link(
                label,
                href=href_with(area_href(prefix, unit.level, unit.code), query),
                className="crumb",
            )
        else:
            body = html.Span(label, className="crumb-closed")
        items.append(html.Li(body))
    return html.Nav(
        html.Ol(items, className="breadcrumb"), **aria(label=text("unit_breadcrumb", lang))
    )


def unit_name(unit: Unit, lang: str) -> str:
    return unit.full_name if lang == "vi" or not unit.name_en else unit.name_en


def unit_trend_figure(
    series: pd.DataFrame,
    metric: MetricSettings,
    period: TimeRange,
    *,
    lang: str,
    tz: ZoneInfo,
) -> go.Figure:
    """The metric over the range on its band colours (the map panel's chart, with day
    ticks for ranges longer than two days)."""
    figure = trend_figure(
        series, metric, lang=lang, now=period.end, window=period.length, tz=tz, text_px=16.0
    )
    if period.length.total_seconds() > 2 * 86400:
        figure.update_xaxes(tickformat="%d/%m")
    return figure


def trend_card(
    metric_id: str,
    metric: MetricSettings,
    series: pd.DataFrame,
    period: TimeRange,
    *,
    lang: str,
    tz: ZoneInfo,
    csv_href: str,
    graph_id: Mapping[str, str],
) -> html.Section:
    title = text(
        "unit_trend_title",
        lang,
        metric=metric.label.get(lang),
        unit=metric.unit,
        period=period_label(period, lang) if not period.live else text("kpi_period_24h", lang),
    )
    body: Any
    if series.empty:
        body = html.P(text("unit_trend_no_data", lang), className="panel-note trend-no-data")
    else:
        body = dcc.Graph(
            id=dict(graph_id),
            figure=unit_trend_figure(series, metric, period, lang=lang, tz=tz),
            config={"displayModeBar": False, "responsive": True},
            className="unit-trend-graph",
            style={"height": "14rem"},  # Dash gives a responsive graph 100% of nothing
        )
    return html.Section(
        [
            html.Div(
                [html.H3(title, className="panel-heading"), csv_link(csv_href, lang)],
                className="unit-section-head",
            ),
            body,
        ],
        className="unit-trend",
        **data_attributes(metric=metric_id),
    )


def unit_map_figure(
    geo_url: str | None,
    shapes: Sequence[tuple[str, str]],
    devices: pd.DataFrame,
    *,
    lang: str,
    tz: ZoneInfo,
    metrics: Mapping[str, MetricSettings],
    revision: str,
) -> go.Figure:
    """The unit's shape (or its children's outlines: ``shapes`` are (code, name) of the
    features of ``geo_url`` to draw) and its devices coloured by state; no base map."""
    figure = go.Figure()
    if geo_url is not None and shapes:
        figure.add_trace(
            go.Choropleth(
                geojson=geo_url,
                featureidkey="id",
                locations=[code for code, _ in shapes],
                z=[0.0] * len(shapes),
                zmin=0.0,
                zmax=1.0,
                colorscale=[[0.0, SHAPE_FILL], [1.0, SHAPE_FILL]],
                showscale=False,
                customdata=[name for _, name in shapes],
                hovertemplate="%{customdata}<extra></extra>",
                marker={"line": {"color": SHAPE_LINE, "width": 1.0}},
            )
        )
    placed = devices[devices["lon"].notna() & devices["lat"].notna()] if len(devices) else devices
    if len(placed):
        figure.add_trace(device_trace(placed, lang=lang, tz=tz, metrics=metrics, text_px=16.0))
    figure.update_layout(
        geo=GEO,
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        paper_bgcolor="rgba(0,0,0,0)",
        height=360,
        dragmode=False,
        uirevision=revision,
        showlegend=False,
        hoverlabel={"font": {"family": "Noto Sans, sans-serif"}},
    )
    return figure


def device_states_legend(lang: str) -> html.Div:
    return device_legend_box(device_legend(lang), lang)
