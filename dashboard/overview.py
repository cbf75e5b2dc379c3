"""The Overview's side panel: KPI cards of the selected unit over a time range (live, 24 h,
7 d, 30 d or chosen days), the trend of the chosen metric over the same range, and the
active alerts of the unit and the units inside it.

A plain function of the context and the user's access (tests call it); the range controls
sit above the panel (dashboard/views/page.py) and their values come in as inputs. Every
figure goes through the same access-checked queries as the unit page (dashboard/kpi.py)
and the alerts console (dashboard/alerts_data.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from dash import html

from core.errors import RetryableError
from core.types import UnitRef
from dashboard.access import Access
from dashboard.alerts_data import AlertSource, active_alerts, subtree
from dashboard.alerts_delivery import alert_unit, device_map
from dashboard.context import DashboardContext
from dashboard.i18n import add_texts, format_when, text
from dashboard.kpi import RANGE_KINDS, RangeError, TimeRange, parse_range, unit_kpis, unit_trend
from dashboard.navigation import place_of
from dashboard.routes import area_href
from dashboard.views.kpi import data_attributes, kpi_cards, period_label
from dashboard.views.panel import message_panel, overview_panel, trend_figure

log = logging.getLogger("cityops.dashboard")

add_texts(
    {
        "ov_range_label": ("Thời gian", "Period"),
        "ov_range_live": ("Hiện tại", "Now"),
        "ov_range_24h": ("24 giờ", "24 h"),
        "ov_range_7d": ("7 ngày", "7 days"),
        "ov_range_30d": ("30 ngày", "30 days"),
        "ov_range_custom": ("Chọn ngày", "Pick days"),
        "ov_trend_title": ("{metric} ({unit}), {period}", "{metric} ({unit}), {period}"),
        "ov_trend_none": ("Không có dữ liệu trong khoảng thời gian này", "No data in this period"),
        "ov_unit_page": ("Trang đơn vị", "Unit page"),
        "ov_alerts_title": ("Cảnh báo đang diễn ra ({count})", "Active alerts ({count})"),
        "ov_alerts_none": (
            "Không có cảnh báo nào ở đơn vị này và các đơn vị trực thuộc",
            "No active alert in this unit or the units inside it",
        ),
        "ov_alerts_more": ("… và {count} cảnh báo khác", "… and {count} more"),
        "ov_alerts_console": ("Mở trang cảnh báo", "Open the alerts console"),
        "ov_alerts_error": (
            "Không đọc được trạng thái cảnh báo",
            "Could not read the alert states",
        ),
        "ov_severity_critical": ("Nghiêm trọng", "Critical"),
        "ov_severity_warning": ("Cảnh báo", "Warning"),
        "ov_severity_info": ("Thông tin", "Info"),
    }
)

ALERTS_SHOWN = 5


def range_options(lang: str) -> list[dict[str, str]]:
    return [{"label": text(f"ov_range_{kind}", lang), "value": kind} for kind in RANGE_KINDS]


def render_overview_panel(
    ctx: DashboardContext,
    access: Access,
    unit_value: object,
    metric_value: object,
    lang_value: object,
    size_value: object = None,
    place_data: object = None,
    range_value: object = "live",
    first_day: object = None,
    last_day: object = None,
    *,
    text_px: float,
) -> html.Div:
    """The panel of the selected unit, else of the place on the map, or a sentence saying
    why there is none (no unit, unknown or out of reach, a bad range, the store down)."""
    lang = ctx.lang(lang_value)
    if not isinstance(unit_value, str) or not unit_value:
        unit_value = place_of(place_data)
    if unit_value is None:
        return message_panel(text("pick_unit", lang))
    unit = ctx.hierarchy.get(unit_value)
    if unit is None or not access.can_see(unit.code):  # out of reach: as if there were none
        return message_panel(text("unknown_unit", lang, code=unit_value), kind="warning")
    metric_id = ctx.metric_id(metric_value)
    metric = ctx.metrics[metric_id]
    now = ctx.clock.now()
    try:
        period = parse_range(range_value, first_day, last_day, now, ctx.tz)
    except RangeError as exc:
        return message_panel(exc.message(lang), kind="warning")
    ref = UnitRef(unit.level, unit.code)
    try:
        frame = unit_kpis(ctx.data, access, ref, period, now)
        shown = None if period.live else period
        cards = kpi_cards(frame, ctx.metrics, lang, now, ctx.stale_after, ctx.tz, period=shown)
        series = unit_trend(ctx.data, access, metric_id, ref, period)
    except Exception as exc:
        _log_failure(f"panel of {unit.code}", exc)
        seconds = round(ctx.settings.dashboard.refresh_s)
        return message_panel(text("load_error", lang, seconds=seconds), kind="error")
    trend = None if series.empty else _trend(ctx, series, metric_id, lang, period, now, text_px)
    return overview_panel(
        ctx.hierarchy.full_name(unit.code, lang),
        area_href(ctx.url_prefix, unit.level, unit.code, metric_id, lang),
        text("ov_unit_page", lang),
        cards,
        text(
            "ov_trend_title",
            lang,
            metric=metric.label.get(lang),
            unit=metric.unit,
            period=text("kpi_period_24h", lang) if period.live else period_label(period, lang),
        ),
        trend,
        text("ov_trend_none", lang),
        unit_alerts(ctx, access, unit.code, lang),
    )


def _trend(
    ctx: DashboardContext,
    series: pd.DataFrame,
    metric_id: str,
    lang: str,
    period: TimeRange,
    now: datetime,
    text_px: float,
) -> Any:
    end = now if period.live else min(period.end, now)
    window = timedelta(hours=24) if period.live else period.length
    return trend_figure(
        series,
        ctx.metrics[metric_id],
        lang=lang,
        now=end,
        window=window,
        tz=ctx.tz,
        text_px=text_px,
    )


def unit_alerts(ctx: DashboardContext, access: Access, code: str, lang: str) -> html.Div:
    """The active alerts of ``code`` and the units inside it, most severe first (nothing
    when the dashboard runs without a state database, as in some tests)."""
    console = f"{ctx.url_prefix.rstrip('/')}/alerts/"
    if ctx.state_engine is None:
        return html.Div()
    try:
        source = AlertSource.from_context(ctx)
        inside = set(subtree(ctx.hierarchy, code))
        frame = active_alerts(source, access, lang)
        devices = device_map(source)  # a device alert belongs to its device's unit
        units = [
            alert_unit(source, rule, unit, devices)
            for rule, unit in zip(frame["rule_id"], frame["unit_code"], strict=True)
        ]
        mine = frame[[unit in inside for unit in units]]
    except Exception as exc:
        _log_failure(f"active alerts of {code}", exc)
        return html.Div(
            [
                html.H3(text("ov_alerts_title", lang, count="?"), className="panel-heading"),
                html.P(text("ov_alerts_error", lang), className="panel-note panel-error"),
            ],
            className="panel-alerts",
        )
    items = [_alert_item(row, ctx, lang) for row in mine.head(ALERTS_SHOWN).to_dict("records")]
    body: list[Any] = [
        html.H3(text("ov_alerts_title", lang, count=len(mine)), className="panel-heading")
    ]
    if not items:
        body.append(html.P(text("ov_alerts_none", lang), className="panel-note"))
    else:
        body.append(html.Ul(items, className="panel-alert-list"))
        if len(mine) > ALERTS_SHOWN:
            more = text("ov_alerts_more", lang, count=len(mine) - ALERTS_SHOWN)
            body.append(html.P(more, className="panel-note"))
    body.append(html.A(text("ov_alerts_console", lang), href=console, className="nav-link"))
    return html.Div(body, className="panel-alerts")


def _alert_item(row: dict[Any, Any], ctx: DashboardContext, lang: str) -> html.Li:
    since = row["since"]
    when = "" if pd.isna(since) else format_when(since.to_pydatetime(), ctx.tz)
    return html.Li(
        [
            html.Span(
                text(f"ov_severity_{row['severity']}", lang),
                className=f"alerts-severity alerts-severity-{row['severity']}",
            ),
            html.Span(str(row["title"]), className="alert-title"),
            html.Span(str(row["unit_name"]), className="alert-unit"),
            html.Span(when, className="alert-since"),
        ],
        className="panel-alert",
        **data_attributes(rule=str(row["rule_id"]), unit=str(row["unit_code"])),
    )


def _log_failure(what: str, exc: Exception) -> None:
    if isinstance(exc, RetryableError):
        log.warning("%s failed, will retry on the next refresh: %s", what, exc)
    else:
        log.exception("%s failed", what)
