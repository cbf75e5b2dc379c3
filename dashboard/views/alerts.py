"""The alerts console's tables: active alerts, store errors, silences and the history.
Pure: DataFrames from dashboard/alerts_data.py in, components out. Who is told, the notes
and the e-mails are in dashboard/views/alerts_delivery.py; the forms and the page's
component ids in dashboard/views/alerts_forms.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import pandas as pd
from dash import html

from core.settings import MetricSettings
from dashboard.exports import csv_link as export_link
from dashboard.i18n import add_texts, format_duration, format_number, format_when, text
from dashboard.routes import area_href
from dashboard.views.alerts_delivery import (
    alert_key,
    data_attrs,
    note_button,
    notes_block,
    present,
    records,
    table,
    told_cell,
    when,
)
from dashboard.views.alerts_forms import (
    ACK_BUTTON,
    CANCEL_BUTTON,
    PRESS,
    SILENCE_BUTTON,
    UNACK_BUTTON,
)
from dashboard.views.panel import message_panel

add_texts(
    {
        "alerts_col_severity": ("Mức độ", "Severity"),
        "alerts_col_alert": ("Cảnh báo", "Alert"),
        "alerts_col_unit": ("Đơn vị", "Unit"),
        "alerts_col_value": ("Giá trị", "Value"),
        "alerts_col_state": ("Trạng thái", "State"),
        "alerts_col_since": ("Từ lúc", "Since"),
        "alerts_col_ack": ("Xác nhận", "Acknowledged"),
        "alerts_col_actions": ("Thao tác", "Actions"),
        "alerts_col_fired": ("Bắt đầu", "Started"),
        "alerts_col_resolved": ("Kết thúc", "Ended"),
        "alerts_col_duration": ("Kéo dài", "Lasted"),
        "alerts_col_email": ("Thư báo", "E-mail"),
        "alerts_col_kind": ("Loại", "Kind"),
        "alerts_col_target": ("Đối tượng", "Target"),
        "alerts_col_reason": ("Lý do", "Reason"),
        "alerts_col_author": ("Người tạo", "Created by"),
        "alerts_col_until": ("Đến", "Until"),
        "alerts_severity_critical": ("Nghiêm trọng", "Critical"),
        "alerts_severity_warning": ("Cảnh báo", "Warning"),
        "alerts_severity_info": ("Thông tin", "Info"),
        "alerts_severity_none": ("–", "–"),
        "alerts_state_pending": ("Đang theo dõi", "Pending"),
        "alerts_state_firing": ("Đang cảnh báo", "Firing"),
        "alerts_state_no_data": ("Mất dữ liệu", "No data"),
        "alerts_state_error": ("Lỗi đánh giá", "Evaluation error"),
        "alerts_status_open": ("Đang diễn ra", "Open"),
        "alerts_status_resolved": ("Đã kết thúc", "Resolved"),
        "alerts_status_ended": ("Đã dừng, không rõ giờ", "Ended, time unknown"),
        "alerts_email_pending": ("chờ gửi", "waiting"),
        "alerts_email_sent": ("đã gửi", "sent"),
        "alerts_email_failed": ("gửi lỗi", "failed"),
        "alerts_email_silenced": ("giữ lại: đang tạm tắt", "held: silenced"),
        "alerts_email_suppressed": (
            "không gửi: đã hết trong lúc tạm tắt",
            "not sent: over while silenced",
        ),
        "alerts_email_dropped": ("không gửi: không có ai để báo", "not sent: nobody to tell"),
        "alerts_email_none": ("–", "–"),
        "alerts_kind_unit": ("Đơn vị", "Unit"),
        "alerts_kind_device": ("Thiết bị", "Device"),
        "alerts_kind_rule": ("Quy tắc", "Rule"),
        "alerts_acked": ("{user}, {time}", "{user}, {time}"),
        "alerts_not_acked": ("Chưa xác nhận", "Not yet"),
        "alerts_silenced_until": ("Tạm tắt đến {time}", "Silenced until {time}"),
        "alerts_ack_button": ("Xác nhận", "Acknowledge"),
        "alerts_unack_button": ("Bỏ xác nhận", "Withdraw"),
        "alerts_silence_button": ("Tạm tắt đơn vị", "Silence unit"),
        "alerts_cancel_button": ("Hủy tạm tắt", "Cancel"),
        "alerts_none_active": (
            "Không có cảnh báo nào đang diễn ra trong các đơn vị của bạn",
            "No alert is going on in your units",
        ),
        "alerts_none_history": (
            "Không có cảnh báo nào khớp bộ lọc",
            "No alert matches the filters",
        ),
        "alerts_none_silences": ("Không có lệnh tạm tắt nào", "Nothing is silenced"),
        "alerts_history_limit": (
            "Chỉ hiện {count} đợt mới nhất; thu hẹp bộ lọc hoặc tải CSV",
            "Showing the newest {count} episodes only; narrow the filters",
        ),
        "alerts_store_error": (
            "Không đánh giá được «{title}» cho {units} đơn vị: {error}",
            "«{title}» could not be evaluated for {units} units: {error}",
        ),
    }
)


def _since(value: Any, now: datetime, tz: ZoneInfo, lang: str) -> str:
    """ "14:05 02/11 (12 phút trước)": local time and age."""
    if not present(value):
        return text("not_available", lang)
    moment = value.to_pydatetime()
    age = format_duration(max(0.0, (now - moment).total_seconds()), lang)
    return text("ago", lang, time=format_when(moment, tz), age=age)


def severity_badge(severity: Any, lang: str) -> html.Span:
    name = severity if severity in ("critical", "warning", "info") else "none"
    return html.Span(
        text(f"alerts_severity_{name}", lang),
        className=f"alerts-severity alerts-severity-{name}",
        **data_attrs(severity=name),
    )


def value_text(value: Any, metric: MetricSettings | None, lang: str) -> str:
    """The value with the metric's decimals and unit ("92,4 µg/m³"); "–" when unknown."""
    if not present(value):
        return text("not_available", lang)
    decimals = metric.decimals if metric is not None else 1
    number = format_number(float(value), lang, decimals)
    return f"{number} {metric.unit}" if metric is not None and metric.unit else number


def unit_link(row: Mapping[str, Any], prefix: str, lang: str) -> Any:
    """The unit's full name, linked to its page when the hierarchy knows it."""
    level = row.get("level")
    if not present(level):
        return row["unit_name"]
    return html.A(
        row["unit_name"], href=area_href(prefix, str(level), str(row["unit_code"]), lang=lang)
    )


def _ack_cell(row: Mapping[str, Any], tz: ZoneInfo, lang: str) -> list[Any]:
    if not present(row.get("acked_by")):
        return [html.Span(text("alerts_not_acked", lang), className="alerts-not-acked")]
    cell: list[Any] = [
        html.Span(
            text("alerts_acked", lang, user=row["acked_by"], time=when(row["acked_at"], tz)),
            className="alerts-acked",
        )
    ]
    if row.get("ack_comment"):
        cell.append(html.Div(row["ack_comment"], className="alerts-comment"))
    return cell


def _actions(row: Mapping[str, Any], lang: str) -> list[Any]:
    buttons: list[Any] = []
    if present(row.get("episode")):
        key = alert_key(row)
        if present(row.get("acked_by")):
            buttons.append(
                html.Button(
                    text("alerts_unack_button", lang),
                    id={"type": UNACK_BUTTON, "key": key},
                    className="alerts-button alerts-secondary",
                    **PRESS,
                )
            )
        else:
            buttons.append(
                html.Button(
                    text("alerts_ack_button", lang),
                    id={"type": ACK_BUTTON, "key": key},
                    className="alerts-button",
                    **PRESS,
                )
            )
    if present(row.get("level")):
        buttons.append(
            html.Button(
                text("alerts_silence_button", lang),
                id={"type": SILENCE_BUTTON, "unit": str(row["unit_code"])},
                className="alerts-button alerts-secondary",
                **PRESS,
            )
        )
    if present(row.get("episode")):
        buttons.append(note_button(row, lang, "active"))
    return buttons


def active_table(
    frame: pd.DataFrame,
    *,
    lang: str,
    now: datetime,
    tz: ZoneInfo,
    prefix: str,
    metrics: Mapping[str, MetricSettings],
    can_act: bool,
) -> Any:
    """One row per active alert, most severe first; buttons only for who may act."""
    if frame.empty:
        return message_panel(text("alerts_none_active", lang))
    headers = [
        "alerts_col_severity",
        "alerts_col_alert",
        "alerts_col_unit",
        "alerts_col_value",
        "alerts_col_state",
        "alerts_col_since",
        "alerts_col_told",
        "alerts_col_ack",
    ] + (["alerts_col_actions"] if can_act else [])
    rows = []
    for row in records(frame):
        state = str(row["state"])
        alert_cell: list[Any] = [html.Span(row["title"], className="alerts-title")]
        if present(row.get("silenced_until")):
            until = when(row["silenced_until"], tz)
            alert_cell.append(
                html.Div(
                    text("alerts_silenced_until", lang, time=until),
                    className="alerts-silenced",
                    title=str(row.get("silence_reason") or ""),
                )
            )
        alert_cell.extend(notes_block(row, tz, lang))
        cells: list[Any] = [
            severity_badge(row["severity"], lang),
            alert_cell,
            unit_link(row, prefix, lang),
            value_text(row["value"], metrics.get(str(row["metric"])), lang),
            html.Span(text(f"alerts_state_{state}", lang), className=f"alerts-state-{state}"),
            _since(row["since"], now, tz, lang),
            told_cell(row, tz, lang),
            _ack_cell(row, tz, lang),
        ]
        if can_act:
            cells.append(_actions(row, lang))
        rows.append(
            html.Tr(
                [html.Td(cell) for cell in cells],
                className=f"alerts-row alerts-row-{row['severity']}",
                **data_attrs(rule=str(row["rule_id"]), unit=str(row["unit_code"]), state=state),
            )
        )
    return table(headers, rows, lang, "alerts-active-table")


def errors_note(frame: pd.DataFrame, lang: str) -> list[Any]:
    """One warning line per rule whose units could not be evaluated."""
    return [
        message_panel(
            text("alerts_store_error", lang, title=row.title, units=row.units, error=row.error),
            kind="warning",
        )
        for row in frame.itertuples()
    ]


def silences_table(frame: pd.DataFrame, *, lang: str, now: datetime, tz: ZoneInfo) -> Any:
    """The silences in force; a cancel button where the user may cancel."""
    if frame.empty:
        return message_panel(text("alerts_none_silences", lang))
    headers = [
        "alerts_col_kind",
        "alerts_col_target",
        "alerts_col_reason",
        "alerts_col_author",
        "alerts_col_until",
        "alerts_col_actions",
    ]
    rows = []
    for row in records(frame):
        cancel = (
            html.Button(
                text("alerts_cancel_button", lang),
                id={"type": CANCEL_BUTTON, "id": int(row["id"])},
                className="alerts-button alerts-secondary",
                **PRESS,
            )
            if row["can_cancel"]
            else ""
        )
        until = row["ends_at"].to_pydatetime()
        left = format_duration((until - now).total_seconds(), lang)
        cells = [
            text(f"alerts_kind_{row['kind']}", lang),
            row["target_name"],
            row["reason"],
            row["author"],
            f"{format_when(until, tz)} ({left})",
            cancel,
        ]
        rows.append(
            html.Tr([html.Td(cell) for cell in cells], **data_attrs(silence=str(row["id"])))
        )
    return table(headers, rows, lang, "alerts-silences-table")


EMAIL_STATES = ("pending", "sent", "failed", "silenced", "suppressed", "dropped", "none")


def email_cell(status: Any, lang: str) -> html.Span:
    """The e-mail of an episode's firing event; "không có dữ liệu" when it could not be read."""
    if not present(status):
        return html.Span(text("alerts_no_data", lang), className="alerts-no-data")
    name = status if status in EMAIL_STATES else "none"
    return html.Span(
        text(f"alerts_email_{name}", lang),
        className=f"alerts-email-{name}",
        **data_attrs(email=name),
    )


def history_table(
    frame: pd.DataFrame,
    *,
    lang: str,
    tz: ZoneInfo,
    prefix: str,
    limit: int,
    can_act: bool = False,
) -> Any:
    """Episodes, newest first, with their notes, and a note when the limit cut the list;
    a "note" button per episode for who may act."""
    if frame.empty:
        return message_panel(text("alerts_none_history", lang))
    headers = [
        "alerts_col_severity",
        "alerts_col_alert",
        "alerts_col_unit",
        "alerts_col_state",
        "alerts_col_fired",
        "alerts_col_resolved",
        "alerts_col_duration",
        "alerts_col_ack",
        "alerts_col_email",
    ] + (["alerts_col_actions"] if can_act else [])
    rows = []
    for row in records(frame):
        duration = row.get("duration_s")
        cells = [
            severity_badge(row["severity"], lang),
            [html.Span(row["title"]), *notes_block(row, tz, lang)],
            unit_link(row, prefix, lang),
            text(f"alerts_status_{row['status']}", lang),
            when(row["fired_at"], tz),
            when(row["resolved_at"], tz),
            format_duration(float(cast(float, duration)), lang) if present(duration) else "",
            row["acked_by"] if present(row.get("acked_by")) else "",
            email_cell(row.get("email_status"), lang),
        ]
        if can_act:
            cells.append(note_button(row, lang, "history"))
        rows.append(
            html.Tr(
                [html.Td(cell) for cell in cells],
                **data_attrs(
                    rule=str(row["rule_id"]),
                    unit=str(row["unit_code"]),
                    episode=str(row["episode"]),
                ),
            )
        )
    parts: list[Any] = [table(headers, rows, lang, "alerts-history-table")]
    if len(frame) >= limit:
        parts.insert(
            0, html.P(text("alerts_history_limit", lang, count=limit), className="alerts-note")
        )
    return html.Div(parts)


def csv_link(href: str, lang: str) -> html.A:
    return export_link(href, lang, "alerts-csv")
