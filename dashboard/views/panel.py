"""The side panel of one unit: its full name, the latest value of every catalogue metric
coloured by band, and a 24-hour trend of the selected metric over its band colours.

No data and old data are written out in words; the panel never shows an empty chart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from core.settings import MetricSettings
from dashboard import ids
from dashboard.i18n import format_when, text
from dashboard.views.bands import (
    NO_DATA_COLOUR,
    BandScale,
    band_colour,
    band_label,
    band_scale,
    value_text,
)
from dashboard.views.map import BASE_TEXT_PX, is_stale

BAND_BACKGROUND_OPACITY = 0.22
TREND_LINE = "#1F2937"


def _present(value: Any) -> bool:
    return (
        value is not None
        and value is not pd.NaT
        and not (isinstance(value, float) and math.isnan(value))
    )


def _data_attributes(metric_id: str, state: str) -> dict[str, Any]:
    """``data-metric`` / ``data-state`` on a row: for styling and for tests to find it."""
    return {"data-metric": metric_id, "data-state": state}


def metric_rows(
    latest: pd.DataFrame,
    metrics: Mapping[str, MetricSettings],
    *,
    lang: str,
    now: datetime,
    stale_after: timedelta,
    tz: ZoneInfo,
    selected_metric: str | None = None,
) -> html.Ul:
    """One row per catalogue metric: swatch, label, value with unit, band, and when."""
    rows = []
    for metric_id, metric in metrics.items():
        scale = band_scale(metric)
        value = latest["value"].get(metric_id) if metric_id in latest.index else None
        raw_ts = latest["ts"].get(metric_id) if metric_id in latest.index else None
        classes = "metric-row" + (" metric-row-selected" if metric_id == selected_metric else "")
        label = html.Span(metric.label.get(lang), className="metric-name")
        if not (_present(value) and _present(raw_ts)):
            rows.append(
                html.Li(
                    [
                        html.Span(className="swatch", style={"backgroundColor": NO_DATA_COLOUR}),
                        label,
                        html.Span(text("no_data", lang), className="metric-value metric-no-data"),
                    ],
                    className=classes,
                    **_data_attributes(metric_id, "no-data"),
                )
            )
            continue
        number = float(cast(float, value))
        ts = pd.Timestamp(cast(datetime, raw_ts)).to_pydatetime()
        stale = is_stale(ts, now, metric.stale_after(stale_after))
        when = (
            text("stale_since", lang, time=format_when(ts, tz))
            if stale
            else text("measured_at", lang, time=format_when(ts, tz))
        )
        rows.append(
            html.Li(
                [
                    html.Span(
                        className="swatch",
                        style={"backgroundColor": band_colour(scale, number)},
                    ),
                    label,
                    html.Span(value_text(scale, number, lang), className="metric-value"),
                    html.Span(
                        band_label(scale, number, lang) if metric.bands else "",
                        className="metric-band",
                    ),
                    html.Span(when, className="metric-when" + (" metric-stale" if stale else "")),
                ],
                className=classes,
                **_data_attributes(metric_id, "stale" if stale else "fresh"),
            )
        )
    return html.Ul(rows, className="metric-rows")


def _band_shapes(scale: BandScale, bottom: float, top: float) -> list[dict[str, Any]]:
    edges = [bottom, *scale.limits, top]
    shapes = []
    for colour, low, high in zip(scale.colours, edges[:-1], edges[1:], strict=True):
        low, high = max(low, bottom), min(high, top)
        if high <= low:
            continue
        shapes.append(
            {
                "type": "rect",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": low,
                "y1": high,
                "fillcolor": colour,
                "opacity": BAND_BACKGROUND_OPACITY,
                "line": {"width": 0},
                "layer": "below",
            }
        )
    return shapes


def trend_y_range(scale: BandScale, values: pd.Series) -> tuple[float, float]:
    """From the lowest band (or lower data) up to the limit of the highest band reached,
    so the bands around the data are visible and the line never touches the top."""
    data_low, data_high = float(values.min()), float(values.max())
    bottom = min(max(scale.low, 0.0), data_low)  # start at 0 unless the data go below it
    above = [limit for limit in scale.limits if limit > data_high]
    top = above[0] if above else data_high + 0.1 * max(data_high - bottom, scale.resolution)
    return bottom, max(top, bottom + scale.resolution)


def trend_figure(
    series: pd.DataFrame,
    metric: MetricSettings,
    *,
    lang: str,
    now: datetime,
    window: timedelta,
    tz: ZoneInfo,
    text_px: float = BASE_TEXT_PX,
) -> go.Figure:
    """The line of ``series`` (ts, value) over the metric's band colours, in local time."""
    scale = band_scale(metric)
    zoom = text_px / BASE_TEXT_PX
    # plotly.js draws dates as wall-clock time and ignores offsets: hand it local naive time.
    local = series["ts"].dt.tz_convert(tz).dt.tz_localize(None)
    bottom, top = trend_y_range(scale, series["value"])
    figure = go.Figure(
        go.Scatter(
            x=local,
            y=series["value"],
            mode="lines+markers",
            line={"color": TREND_LINE, "width": 3 * zoom},
            marker={
                "size": 6 * zoom,
                "color": [band_colour(scale, v) for v in series["value"]],
                "line": {"color": TREND_LINE, "width": zoom},
            },
            hovertemplate=f"%{{y:.{scale.decimals}f}} {metric.unit}<br>%{{x|%H:%M %d/%m}}"
            "<extra></extra>",
        )
    )
    start = now.astimezone(tz).replace(tzinfo=None) - window
    figure.update_layout(
        shapes=_band_shapes(scale, bottom, top),
        margin={"l": 10 * zoom, "r": 10 * zoom, "t": 10 * zoom, "b": 10 * zoom},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="#FFFFFF",
        showlegend=False,
        separators=",." if lang == "vi" else ".,",
        font={"family": "Noto Sans, sans-serif", "size": 0.75 * text_px, "color": TREND_LINE},
        hoverlabel={"font": {"size": text_px, "family": "Noto Sans, sans-serif"}},
        xaxis={
            "range": [start, start + window],
            "tickformat": "%H:%M" if window <= timedelta(days=1) else "%d/%m",
            "fixedrange": True,
            "showgrid": False,
        },
        yaxis={
            "range": [bottom, top],
            "fixedrange": True,
            "gridcolor": "#E5E7EB",
            "nticks": 6,
        },
    )
    return figure


def unit_panel(
    title: str,
    rows: html.Ul,
    metric: MetricSettings,
    trend: go.Figure | None,
    *,
    lang: str,
) -> html.Div:
    """The panel of a unit; ``trend`` is None when the window has no data."""
    trend_part: html.Div | html.P | dcc.Graph
    if trend is None:
        trend_part = html.P(text("trend_no_data", lang), className="panel-note trend-no-data")
    else:
        trend_part = dcc.Graph(
            id=ids.TREND,
            figure=trend,
            config={"displayModeBar": False, "responsive": True},
            className="trend-graph",
        )
    return html.Div(
        [
            html.H2(title, className="panel-title"),
            html.H3(text("latest_values", lang), className="panel-heading"),
            rows,
            html.H3(
                text("trend_title", lang, metric=metric.label.get(lang), unit=metric.unit),
                className="panel-heading",
            ),
            trend_part,
        ],
        className="panel-body",
    )


def overview_panel(
    title: str,
    unit_href: str,
    unit_link: str,
    cards: Any,
    trend_title: str,
    trend: go.Figure | None,
    trend_none: str,
    alerts: Any,
) -> html.Div:
    """The Overview's panel of a unit: title and the link to its page, KPI cards, the
    trend of the chosen metric, the active alerts of the unit and the units inside it."""
    trend_part: html.P | dcc.Graph
    if trend is None:
        trend_part = html.P(trend_none, className="panel-note trend-no-data")
    else:
        trend_part = dcc.Graph(
            id=ids.TREND,
            figure=trend,
            config={"displayModeBar": False, "responsive": True},
            className="trend-graph",
        )
    return html.Div(
        [
            html.Div(
                [
                    html.H2(title, className="panel-title"),
                    html.A(unit_link, href=unit_href, className="nav-link unit-page-link"),
                ],
                className="panel-head",
            ),
            cards,
            html.H3(trend_title, className="panel-heading"),
            trend_part,
            alerts,
        ],
        className="panel-body",
    )


def message_panel(message: str, *, kind: str = "hint") -> html.Div:
    """A panel with one sentence: the hint to pick a unit, an unknown code, an error."""
    return html.Div(html.P(message, className=f"panel-note panel-{kind}"), className="panel-body")
