"""KPI cards: one card per catalogue metric with the big number, its band, the change
against the period before, and when it was last measured. Pure: a frame of
:func:`dashboard.kpi.kpi_frame` in, Dash components out.

Used by the unit page and by the overview's panel, so it needs nothing of either: a frame
with only ``value``, ``ts`` and ``devices`` (``DashboardData.unit_latest``) gives cards
without the change line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import pandas as pd
from dash import html

from core.settings import MetricSettings
from core.text import format_number
from dashboard.i18n import add_texts, format_duration, format_when, text
from dashboard.kpi import TimeRange, lower_is_better
from dashboard.views.bands import NO_DATA_COLOUR, band_colour, band_label, band_scale, value_text
from dashboard.views.map import is_stale
from dashboard.views.nav import aria

UP: Final = "▲"
DOWN: Final = "▼"
SAME: Final = "="

add_texts(
    {
        "kpi_period_live": ("Hiện tại", "Now"),
        "kpi_period_24h": ("24 giờ qua", "last 24 hours"),
        "kpi_period_7d": ("7 ngày qua", "last 7 days"),
        "kpi_period_30d": ("30 ngày qua", "last 30 days"),
        "kpi_period_days": ("{first}–{last}", "{first}–{last}"),
        "kpi_vs_live": ("so với 24 giờ trước", "vs 24 hours earlier"),
        "kpi_vs_24h": ("so với 24 giờ trước đó", "vs the 24 hours before"),
        "kpi_vs_7d": ("so với 7 ngày trước đó", "vs the 7 days before"),
        "kpi_vs_30d": ("so với 30 ngày trước đó", "vs the 30 days before"),
        "kpi_vs_days": ("so với {first}–{last}", "vs {first}–{last}"),
        "kpi_previous": ("{versus}: {value}", "{versus}: {value}"),
        "kpi_no_previous": ("Không có số liệu để so sánh", "No earlier value to compare"),
        "kpi_agg_mean": ("Trung bình {period}", "Mean, {period}"),
        "kpi_agg_max": ("Cao nhất {period}", "Highest, {period}"),
        "kpi_agg_min": ("Thấp nhất {period}", "Lowest, {period}"),
        "kpi_agg_sum": ("Tổng {period}", "Total, {period}"),
        "kpi_agg_last": ("Cuối kỳ {period}", "Last value, {period}"),
        "kpi_last_reading": ("Lần đo cuối: {time}", "Last reading: {time}"),
        "kpi_stale_age": ("Dữ liệu cũ, {age} trước", "Old data, {age} ago"),
        "kpi_better": ("tốt lên", "better"),
        "kpi_worse": ("xấu đi", "worse"),
        "kpi_cards_label": ("Chỉ số chính", "Key figures"),
    }
)


def data_attributes(**values: str) -> dict[str, Any]:
    """``data-*`` attributes: for styling, and for tests and the e2e to find things."""
    return {f"data-{key}": value for key, value in values.items()}


def _day(day: date | None) -> str:
    return "" if day is None else day.strftime("%d/%m/%Y")


def period_label(period: TimeRange | None, lang: str) -> str:
    """ "24 giờ qua", "7 ngày qua", "02/11/2026–08/11/2026" …; None is live."""
    if period is None or period.live:
        return text("kpi_period_live", lang)
    if period.kind == "custom":
        return text(
            "kpi_period_days", lang, first=_day(period.first_day), last=_day(period.last_day)
        )
    return text(f"kpi_period_{period.kind}", lang)


def versus_label(period: TimeRange | None, lang: str, tz: ZoneInfo) -> str:
    """What the change is measured against: "so với 24 giờ trước" …"""
    if period is None or period.live:
        return text("kpi_vs_live", lang)
    if period.kind == "custom":
        start, end = period.previous
        first = start.astimezone(tz).date()
        last = (end - timedelta(seconds=1)).astimezone(tz).date()
        return text("kpi_vs_days", lang, first=_day(first), last=_day(last))
    return text(f"kpi_vs_{period.kind}", lang)


def _number(value: Any) -> float | None:
    if value is None or value is pd.NaT:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _moment(value: Any) -> datetime | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    return pd.Timestamp(value).to_pydatetime()


def change_text(
    metric: MetricSettings, change: float, change_pct: float | None, lang: str
) -> tuple[str, str]:
    """("▲ 12,3 µg/m³ (+25,6 %)", "worse"|"better"|"same"): the arrow, the absolute change
    rounded like the value, the relative one; whether it is good news for this metric."""
    scale = band_scale(metric)
    shown = round(change, metric.decimals)
    if shown == 0:
        arrow, trend = SAME, "same"
    else:
        arrow = UP if shown > 0 else DOWN
        trend = "worse" if (shown > 0) == lower_is_better(metric) else "better"
    words = f"{arrow} {value_text(scale, abs(shown), lang)}"
    if change_pct is not None:
        sign = "+" if change_pct > 0 else ("−" if change_pct < 0 else "")
        words += f" ({sign}{format_number(abs(change_pct), 1, lang)} %)"
    return words, trend


def _change_line(
    row: Mapping[str, Any], metric: MetricSettings, lang: str, versus: str
) -> list[Any]:
    if "previous" not in row:
        return []  # a frame without comparison (the overview's latest values)
    previous = _number(row.get("previous"))
    change = _number(row.get("change"))
    if previous is None or change is None:
        return [html.Div(text("kpi_no_previous", lang), className="kpi-change kpi-change-none")]
    words, trend = change_text(metric, change, _number(row.get("change_pct")), lang)
    before = value_text(band_scale(metric), previous, lang)
    title = text(f"kpi_{trend}", lang) if trend != "same" else None
    return [
        html.Div(
            [
                html.Span(words, className="kpi-delta", title=title),
                html.Span(text("kpi_previous", lang, versus=versus, value=before)),
            ],
            className=f"kpi-change kpi-change-{trend}",
            **data_attributes(trend=trend),
        )
    ]


def kpi_card(
    metric_id: str,
    metric: MetricSettings,
    row: Mapping[str, Any],
    *,
    lang: str,
    now: datetime,
    stale_after: timedelta,
    tz: ZoneInfo,
    period: TimeRange | None = None,
) -> html.Div:
    """The card of one metric; ``row`` is its row of the frame (missing: no data)."""
    scale = band_scale(metric)
    value = _number(row.get("value"))
    ts = _moment(row.get("ts"))
    title = html.Div(metric.label.get(lang), className="kpi-label")
    live = period is None or period.live
    caption = (
        ""
        if live
        else text(f"kpi_agg_{metric.aggregation}", lang, period=period_label(period, lang))
    )
    if value is None:
        return html.Div(
            [
                title,
                html.Div(text("no_data", lang), className="kpi-value kpi-no-data"),
                html.Div(caption, className="kpi-caption") if caption else None,
            ],
            className="kpi-card kpi-card-no-data",
            style={"borderTopColor": NO_DATA_COLOUR},
            **data_attributes(metric=metric_id, state="no-data"),
        )
    number, _, unit = value_text(scale, value, lang).partition(" ")
    colour = band_colour(scale, value)
    # Old data only means something when the range reaches now (a past week is complete).
    stale = (
        ts is not None
        and (period is None or period.includes(now))
        and is_stale(ts, now, metric.stale_after(stale_after))
    )
    parts: list[Any] = [
        title,
        html.Div(
            [html.Span(number, className="kpi-number"), html.Span(unit, className="kpi-unit")],
            className="kpi-value",
        ),
    ]
    if caption:
        parts.append(html.Div(caption, className="kpi-caption"))
    if metric.bands:
        parts.append(
            html.Div(
                [
                    html.Span(className="swatch", style={"backgroundColor": colour}),
                    html.Span(band_label(scale, value, lang)),
                ],
                className="kpi-band",
            )
        )
    parts.extend(_change_line(row, metric, lang, versus_label(period, lang, tz)))
    when: list[Any] = []
    if ts is not None:
        key = "measured_at" if live else "kpi_last_reading"
        when.append(html.Span(text(key, lang, time=format_when(ts, tz))))
    devices = _number(row.get("devices"))
    if devices:
        when.append(html.Span(text("devices", lang, count=format_number(devices, 0, lang))))
    parts.append(html.Div(when, className="kpi-when"))
    if stale and ts is not None:
        age = format_duration((now - ts).total_seconds(), lang)
        parts.append(html.Div(text("kpi_stale_age", lang, age=age), className="kpi-stale"))
    return html.Div(
        parts,
        className="kpi-card" + (" kpi-card-stale" if stale else ""),
        style={"borderTopColor": colour},
        **data_attributes(metric=metric_id, state="stale" if stale else "fresh"),
    )


def kpi_cards(
    frame: pd.DataFrame,
    metrics: Mapping[str, MetricSettings],
    lang: str,
    now: datetime,
    stale_after: timedelta,
    tz: ZoneInfo,
    *,
    period: TimeRange | None = None,
) -> html.Div:
    """One card per catalogue metric, in catalogue order (a metric missing from ``frame``
    says "no data"). ``period`` None is live."""
    rows: dict[str, dict[str, Any]] = {
        str(metric_id): {str(key): value for key, value in record.items()}
        for metric_id, record in frame.to_dict("index").items()
    }
    cards = [
        kpi_card(
            metric_id,
            metric,
            rows.get(metric_id, {}),
            lang=lang,
            now=now,
            stale_after=stale_after,
            tz=tz,
            period=period,
        )
        for metric_id, metric in metrics.items()
    ]
    return html.Div(
        cards,
        className="kpi-cards",
        role="list",
        **aria(label=text("kpi_cards_label", lang)),
    )
