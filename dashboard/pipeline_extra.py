"""The pipeline page's other two tables: the last write per kind of device (is anything
of this kind still arriving?) and the newest dead letters with their reasons.

Pure data functions (a store or a dead-letter store in, a DataFrame out) and their views;
the page (dashboard/pipeline.py) caches and shows them, the CSV exports reuse them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from dash import html

from core.ports import DeadLetterStore, Store
from core.settings import MetricSettings
from dashboard.frames import TS_DTYPE
from dashboard.i18n import add_texts, format_number, format_when, text
from dashboard.views.devices import kind_label
from dashboard.views.panel import message_panel

add_texts(
    {
        "pipe_kinds_title": ("Lần ghi cuối theo loại thiết bị", "Last write per kind of device"),
        "pipe_kind": ("Loại", "Kind"),
        "pipe_last_write": ("Lần ghi cuối", "Last write"),
        "pipe_devices_24h": ("Thiết bị gửi trong 24 giờ", "Devices reporting in 24 h"),
        "pipe_age": ("({minutes} phút trước)", "({minutes} min ago)"),
        "pipe_kinds_none": (
            "Chưa có dữ liệu nào được ghi trong 7 ngày qua",
            "Nothing was written in the last 7 days",
        ),
        "pipe_letters_title": ("Tin lỗi gần đây", "Recent dead letters"),
        "pipe_received_at": ("Lúc nhận", "Received"),
        "pipe_topic": ("Chủ đề MQTT", "MQTT topic"),
        "pipe_reason": ("Lý do", "Reason"),
        "pipe_payload": ("Nội dung (đầu)", "Payload (start)"),
        "pipe_letters_none": ("Không có tin lỗi nào", "No dead letters"),
        "pipe_letters_off": (
            "Kho tin lỗi chưa được cấu hình cho bảng điều khiển",
            "The dead-letter store is not connected to the dashboard",
        ),
    }
)

KIND_LOOKBACK = timedelta(days=7)
DEVICE_WINDOW = timedelta(hours=24)
LETTERS_SHOWN = 50
PAYLOAD_CHARS = 120


def last_write_frame(
    store: Store, metrics: Mapping[str, MetricSettings], now: datetime
) -> pd.DataFrame:
    """kind (index) → last_write (UTC, NaT when nothing in 7 days) and devices (that sent
    any catalogue field of the kind within 24 h). One query per catalogue metric, grouped
    by device."""
    seen: dict[str, dict[str, datetime]] = {}
    for metric in metrics.values():
        latest = seen.setdefault(metric.kind, {})
        found = store.latest_by_unit(
            metric.ref, "device", since=now - KIND_LOOKBACK, aggregation="last"
        )
        for item in found:
            if item.code not in latest or item.ts > latest[item.code]:
                latest[item.code] = item.ts
    rows: dict[str, tuple[Any, int]] = {}
    for kind, latest in sorted(seen.items()):
        recent = sum(1 for ts in latest.values() if now - ts <= DEVICE_WINDOW)
        rows[kind] = (max(latest.values()) if latest else pd.NaT, recent)
    frame = pd.DataFrame(
        {
            "last_write": pd.DatetimeIndex([row[0] for row in rows.values()], dtype=TS_DTYPE),
            "devices": pd.Series([row[1] for row in rows.values()], dtype="int64"),
        }
    )
    frame.index = pd.Index(list(rows), name="kind", dtype="object")
    return frame


def dead_letter_frame(letters: DeadLetterStore, limit: int = LETTERS_SHOWN) -> pd.DataFrame:
    """The newest dead letters: received_at (UTC), topic, reason, payload (text, cut)."""
    recent = letters.recent(limit)
    return pd.DataFrame(
        {
            "received_at": pd.DatetimeIndex([x.received_at for x in recent], dtype=TS_DTYPE),
            "topic": pd.Series([x.topic for x in recent], dtype="object"),
            "reason": pd.Series([x.reason for x in recent], dtype="object"),
            "payload": pd.Series([_excerpt(x.payload) for x in recent], dtype="object"),
        }
    )


def _excerpt(payload: bytes) -> str:
    """The start of a payload as text; bytes that are not UTF-8 shown as \\xNN."""
    shown = payload[: PAYLOAD_CHARS * 4].decode("utf-8", errors="backslashreplace")
    return shown if len(shown) <= PAYLOAD_CHARS else shown[:PAYLOAD_CHARS] + "…"


def kinds_table(frame: pd.DataFrame, *, lang: str, now: datetime, tz: ZoneInfo) -> Any:
    if frame.empty or frame["last_write"].isna().all():
        return message_panel(text("pipe_kinds_none", lang))
    head = html.Tr(
        [html.Th(text(k, lang)) for k in ("pipe_kind", "pipe_last_write", "pipe_devices_24h")]
    )
    body = []
    for kind, row in frame.iterrows():
        last = row["last_write"]
        when = "—" if pd.isna(last) else format_when(last.to_pydatetime(), tz)
        age = "" if pd.isna(last) else _age(now - last.to_pydatetime(), lang)
        body.append(
            html.Tr(
                [
                    html.Td(kind_label(str(kind), lang)),
                    html.Td(f"{when} {age}".strip()),
                    html.Td(format_number(int(row["devices"]), lang)),
                ],
                **_data_kind(str(kind)),
            )
        )
    return html.Table([html.Thead(head), html.Tbody(body)], className="pipeline-table text-table")


def _data_kind(kind: str) -> dict[str, Any]:
    return {"data-kind": kind}


def _age(age: timedelta, lang: str) -> str:
    minutes = max(0, round(age.total_seconds() / 60))
    return text("pipe_age", lang, minutes=format_number(minutes, lang))


def letters_table(frame: pd.DataFrame | None, *, lang: str, tz: ZoneInfo) -> Any:
    if frame is None:
        return message_panel(text("pipe_letters_off", lang))
    if frame.empty:
        return message_panel(text("pipe_letters_none", lang))
    keys = ("pipe_received_at", "pipe_topic", "pipe_reason", "pipe_payload")
    head = html.Tr([html.Th(text(key, lang)) for key in keys])
    body = [
        html.Tr(
            [
                html.Td(format_when(row["received_at"].to_pydatetime(), tz)),
                html.Td(html.Code(row["topic"])),
                html.Td(row["reason"]),
                html.Td(html.Code(row["payload"]), className="payload-cell"),
            ]
        )
        for _, row in frame.iterrows()
    ]
    return html.Table([html.Thead(head), html.Tbody(body)], className="pipeline-table text-table")
