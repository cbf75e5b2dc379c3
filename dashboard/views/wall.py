"""The wall screen's pieces (dashboard/wall_page.py), as pure functions: data in,
components out. Every text comes from the i18n table below, Vietnamese first."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from dash import html

from dashboard.i18n import add_texts, format_number, text
from dashboard.views.kpi import data_attributes

add_texts(
    {
        "wall_title": ("Màn hình điều hành", "Operations wall"),
        "wall_weekdays": (
            "Thứ Hai|Thứ Ba|Thứ Tư|Thứ Năm|Thứ Sáu|Thứ Bảy|Chủ Nhật",
            "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday",
        ),
        "wall_stale": ("Dữ liệu cũ từ {time}", "Stale since {time}"),
        "wall_revoked": ("Liên kết đã bị thu hồi", "This wall link has been revoked"),
        "wall_no_access": (
            "Bạn không có quyền xem các đơn vị của màn hình này",
            "You may not see the units of this wall",
        ),
        "wall_scene_map": ("Bản đồ {metric}", "Map of {metric}"),
        "wall_scene_alerts": ("Cảnh báo đang diễn ra", "Active alerts"),
        "wall_scene_devices": ("Tình trạng thiết bị", "Devices"),
        "wall_scene_unit": ("Chỉ số của đơn vị", "The unit's figures"),
        "wall_online": ("Trực tuyến", "Online"),
        "wall_late": ("Trễ", "Late"),
        "wall_offline": ("Mất kết nối", "Offline"),
        "wall_devices_label": ("Thiết bị", "Devices"),
        "wall_alerts_none": ("Không có cảnh báo nào", "No active alert"),
        "wall_ticker_label": ("Cảnh báo", "Alerts"),
        "wall_severity_critical": ("Nghiêm trọng", "Critical"),
        "wall_severity_warning": ("Cảnh báo", "Warning"),
        "wall_severity_info": ("Thông tin", "Info"),
        "wall_no_data": ("Không có dữ liệu", "No data"),
    }
)

STATUS_ORDER = ("online", "late", "offline")


def clock_texts(now: datetime, tz: ZoneInfo, lang: str) -> tuple[str, str]:
    """("14:05", "Chủ Nhật, 29/11/2026") in the site's time zone."""
    local = now.astimezone(tz)
    weekday = text("wall_weekdays", lang).split("|")[local.weekday()]
    return local.strftime("%H:%M"), f"{weekday}, {local.strftime('%d/%m/%Y')}"


def client_texts(lang: str, tz: ZoneInfo) -> str:
    """What wall.js needs to speak (JSON for a data attribute): weekdays, the stale banner."""
    return json.dumps(
        {
            "weekdays": text("wall_weekdays", lang).split("|"),
            "stale": text("wall_stale", lang, time="{time}"),
            "revoked": text("wall_revoked", lang),
            "tz": str(tz.key),
        },
        ensure_ascii=False,
    )


def scene_name(page: str, title: tuple[str, str] | None, metric_label: str, lang: str) -> str:
    if title is not None:
        return title[0] if lang == "vi" else title[1]
    return text(f"wall_scene_{page}", lang, metric=metric_label)


def device_counts_bar(counts: Mapping[str, int] | None, lang: str) -> html.Div:
    """ "Thiết bị: 140 trực tuyến · 6 chậm · 4 mất kết nối" for the top bar."""
    if counts is None:
        return html.Div(text("wall_no_data", lang), className="wall-devices")
    items: list[Any] = [html.Span(text("wall_devices_label", lang), className="wall-label")]
    for status in STATUS_ORDER:
        items.append(
            html.Span(
                [
                    html.B(format_number(counts.get(status, 0), lang)),
                    " " + text(f"wall_{status}", lang),
                ],
                className=f"wall-count wall-count-{status}",
                **data_attributes(count=str(counts.get(status, 0))),
            )
        )
    return html.Div(items, className="wall-devices")


def device_scene(counts: Mapping[str, int] | None, lang: str) -> html.Div:
    """The devices scene: three big numbers."""
    if counts is None:
        return html.Div(text("wall_no_data", lang), className="wall-empty")
    tiles = [
        html.Div(
            [
                html.Div(format_number(counts.get(status, 0), lang), className="wall-big"),
                html.Div(text(f"wall_{status}", lang), className="wall-big-label"),
            ],
            className=f"wall-tile wall-tile-{status}",
        )
        for status in STATUS_ORDER
    ]
    return html.Div(tiles, className="wall-tiles")


def _since(value: Any, tz: ZoneInfo) -> str:
    if value is None or pd.isna(value):
        return ""
    return str(pd.Timestamp(value).tz_convert(tz).strftime("%H:%M %d/%m"))


def alert_rows(frame: pd.DataFrame | None, lang: str, tz: ZoneInfo) -> list[html.Li]:
    rows = []
    for row in [] if frame is None else frame.to_dict("records"):
        severity = str(row["severity"])
        rows.append(
            html.Li(
                [
                    html.Span(
                        text(f"wall_severity_{severity}", lang),
                        className=f"wall-sev wall-sev-{severity}",
                    ),
                    html.Span(str(row["title"]), className="wall-alert-title"),
                    html.Span(str(row["unit_name"]), className="wall-alert-unit"),
                    html.Span(_since(row["since"], tz), className="wall-alert-since"),
                ],
                className=f"wall-alert wall-alert-{severity}",
            )
        )
    return rows


def alerts_scene(frame: pd.DataFrame | None, lang: str, tz: ZoneInfo) -> html.Div:
    """The alerts scene: the list, most severe first."""
    if frame is None:
        return html.Div(text("wall_no_data", lang), className="wall-empty")
    if frame.empty:
        return html.Div(text("wall_alerts_none", lang), className="wall-empty wall-all-clear")
    return html.Div(html.Ul(alert_rows(frame, lang, tz), className="wall-alert-list"))


def ticker(frame: pd.DataFrame | None, lang: str, tz: ZoneInfo) -> list[Any]:
    """The bottom ticker: label, then the alerts (replaced every beat, never appended)."""
    label = html.Span(text("wall_ticker_label", lang), className="wall-ticker-label")
    if frame is None:
        return [label, html.Span(text("wall_no_data", lang), className="wall-ticker-empty")]
    if frame.empty:
        return [label, html.Span(text("wall_alerts_none", lang), className="wall-ticker-empty")]
    return [label, html.Ul(alert_rows(frame, lang, tz), className="wall-ticker-list")]


def stamp(now_ms: int, version: str, clock: str) -> str:
    """What wall.js watches: a new value every successful beat."""
    return f"{now_ms}|{version}|{clock}"


def message(text_value: str) -> html.Div:
    return html.Div(text_value, className="wall-empty")


__all__: Sequence[str] = (
    "alert_rows",
    "alerts_scene",
    "client_texts",
    "clock_texts",
    "device_counts_bar",
    "device_scene",
    "message",
    "scene_name",
    "stamp",
    "ticker",
)
