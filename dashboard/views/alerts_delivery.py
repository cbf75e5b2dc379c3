"""The alerts console's cells and panels about people: who is on duty, who was told about an
alert and whether their e-mail went, the notes written about it, the e-mail queue and the
e-mails that failed; plus the small table helpers the console's views share. Pure: rows
and records from dashboard/alerts_data.py and dashboard/alerts_delivery.py in, components
out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

import pandas as pd
from dash import html

from alerts.actions import Note
from alerts.facts import DutyStep, Person
from alerts.roster import DESK_NAME
from dashboard.i18n import add_texts, format_duration, format_when, text
from dashboard.views.alerts_forms import NOTE_BUTTON, PRESS
from dashboard.views.panel import message_panel

if TYPE_CHECKING:
    from dashboard.alerts_delivery import EmailQueue, OnDuty, Told

add_texts(
    {
        "alerts_col_told": ("Người được báo", "Who is told"),
        "alerts_col_recipient": ("Người nhận", "Recipient"),
        "alerts_col_subject": ("Tiêu đề", "Subject"),
        "alerts_col_carried": ("Cảnh báo trong thư", "Alerts in it"),
        "alerts_col_error": ("Lỗi", "Error"),
        "alerts_col_attempts": ("Số lần thử", "Attempts"),
        "alerts_col_last_attempt": ("Lần thử cuối", "Last attempt"),
        "alerts_told_heading": ("Đã báo", "Told"),
        "alerts_told_nobody": ("Chưa báo ai", "Nobody told yet"),
        "alerts_step_first": ("báo ngay", "at once"),
        "alerts_step_up": ("chuyển cấp {step}", "escalation {step}"),
        "alerts_told_sent": ("đã gửi {time}", "sent {time}"),
        "alerts_told_pending": ("chờ gửi", "waiting"),
        "alerts_told_failed": ("gửi lỗi", "failed"),
        "alerts_chain_heading": ("Trực lúc này", "On duty now"),
        "alerts_chain_step": ("{step} – {unit}:", "{step} – {unit}:"),
        "alerts_chain_nobody": (
            "Không có ai để báo: không ai trực và chưa cấu hình trực ban",
            "Nobody to tell: nobody on duty and no duty desk configured",
        ),
        "alerts_notes_heading": ("Ghi chú xử lý", "Notes"),
        "alerts_note_by": ("{author}, {time}:", "{author}, {time}:"),
        "alerts_note_button": ("Ghi chú", "Add a note"),
        "alerts_no_data": ("không có dữ liệu", "no data"),
        "alerts_duty_rule": (
            "Cảnh báo đến người đang trực của đơn vị (không ai trực: đơn vị cấp trên), rồi "
            "trực ban; chưa ai xác nhận sau {minutes} phút thì báo tiếp bước sau.",
            "An alert goes to the unit's officers on duty (nobody: the unit above), then the "
            "duty desk; not acknowledged within {minutes} min, the next step is told.",
        ),
        "alerts_duty_nobody": (
            "Không có ai đang trực trong các đơn vị của bạn và chưa cấu hình trực ban",
            "Nobody is on duty in your units and no duty desk is configured",
        ),
        "alerts_roster_error": (
            "Không đọc được lịch trực: {error}",
            "The duty roster could not be read: {error}",
        ),
        "alerts_queue_waiting": (
            "Đang chờ gửi: {count} thư, lâu nhất {age}",
            "E-mails waiting to be sent: {count}, the oldest for {age}",
        ),
        "alerts_queue_empty": ("Không có thư nào đang chờ gửi", "No e-mail is waiting"),
        "alerts_queue_undelivered": (
            "{count} thông báo đang chờ gộp thành thư",
            "{count} notices are waiting to be grouped into e-mails",
        ),
        "alerts_queue_error": ("Lần thử gần nhất lỗi: {error}", "Last attempt failed: {error}"),
        "alerts_failed_none": (
            "Không có thư nào bị từ chối trong các đơn vị của bạn",
            "No e-mail about your units was refused",
        ),
        "alerts_failed_hidden": (
            "(thư gộp, có thêm {count} cảnh báo ngoài đơn vị của bạn)",
            "(grouped with {count} alerts outside your units)",
        ),
        "alerts_failed_limit": (
            "Chỉ hiện {count} thư mới nhất",
            "Showing the newest {count} e-mails only",
        ),
    }
)


# ---------------------------------------------------------------------------- helpers


def data_attrs(**values: str) -> dict[str, Any]:
    """``data-*`` attributes, for styling and for tests to find rows and cells."""
    return {f"data-{key}": value for key, value in values.items()}


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], frame.to_dict("records"))


def present(value: Any) -> bool:
    return (
        value is not None
        and value is not pd.NaT
        and not (isinstance(value, float) and math.isnan(value))
    )


def when(value: Any, tz: ZoneInfo) -> str:
    """A time of a frame (Timestamp) or of a record (datetime) as "14:05 02/11" local."""
    if not present(value):
        return ""
    moment = value.to_pydatetime() if isinstance(value, pd.Timestamp) else value
    return format_when(moment, tz)


def table(headers: Sequence[str], rows: list[Any], lang: str, class_name: str) -> html.Table:
    head = html.Thead(html.Tr([html.Th(text(key, lang), scope="col") for key in headers]))
    return html.Table([head, html.Tbody(rows)], className=f"alerts-table {class_name}")


def alert_key(row: Mapping[str, Any]) -> str:
    """``rule|unit|episode``: what the row's buttons act on."""
    return f"{row['rule_id']}|{row['unit_code']}|{int(row['episode'])}"


def _subhead(key: str, lang: str) -> html.Div:
    return html.Div(text(key, lang), className="alerts-subhead")


def _no_data(lang: str) -> html.Span:
    return html.Span(text("alerts_no_data", lang), className="alerts-no-data")


def _who(person: Person) -> list[Any]:
    if person.name == DESK_NAME:
        return [html.Span(person.email, className="alerts-person")]
    return [
        html.Span(person.name, className="alerts-person"),
        " ",
        html.Span(f"<{person.email}>", className="alerts-email"),
    ]


# ---------------------------------------------------------------------------- cells


def told_cell(row: Mapping[str, Any], tz: ZoneInfo, lang: str) -> list[Any]:
    """Who was told about the episode and how their e-mail went (once it fired), then who
    an alert of this unit goes to now, step by step."""
    parts: list[Any] = []
    if present(row.get("episode")):
        told = row.get("told_rows")
        parts.append(_subhead("alerts_told_heading", lang))
        if not isinstance(told, tuple):
            parts.append(_no_data(lang))
        elif not told:
            parts.append(html.Span(text("alerts_told_nobody", lang), className="alerts-note"))
        else:
            parts.append(
                html.Ul([_told_item(item, tz, lang) for item in told], className="alerts-told")
            )
    chain = row.get("duty_steps")
    parts.append(_subhead("alerts_chain_heading", lang))
    if not isinstance(chain, list):
        parts.append(_no_data(lang))
    elif not chain:
        parts.append(html.Span(text("alerts_chain_nobody", lang), className="alerts-note"))
    else:
        parts.append(html.Ul([_step_item(step, lang) for step in chain], className="alerts-chain"))
    return parts


def step_text(step: int, lang: str) -> str:
    """Step 0 of the duty chain is told at once; step n by the n-th escalation."""
    if step == 0:
        return text("alerts_step_first", lang)
    return text("alerts_step_up", lang, step=step)


def _told_item(told: Told, tz: ZoneInfo, lang: str) -> html.Li:
    if told.status == "sent":
        status = text("alerts_told_sent", lang, time=when(told.sent_at, tz))
    else:
        status = text(f"alerts_told_{told.status}", lang)
    return html.Li(
        [
            *_who(told.person),
            html.Span(f" · {step_text(told.step, lang)} · "),
            html.Span(status, className=f"alerts-told-{told.status}"),
        ],
        **data_attrs(email=told.person.email, status=told.status),
    )


def _step_item(step: DutyStep, lang: str) -> html.Li:
    names = ", ".join(
        person.email if person.name == DESK_NAME else person.name for person in step.people
    )
    return html.Li(
        [
            html.Span(
                text(
                    "alerts_chain_step",
                    lang,
                    step=step_text(step.step, lang).capitalize(),
                    unit=step.unit_name.get(lang),
                ),
                className="alerts-chain-unit",
            ),
            " ",
            html.Span(names, title=", ".join(person.email for person in step.people)),
        ],
        **data_attrs(step=str(step.step)),
    )


def notes_block(row: Mapping[str, Any], tz: ZoneInfo, lang: str) -> list[Any]:
    """The notes written about the episode, oldest first, with author and local time."""
    notes = row.get("note_rows")
    if not present(row.get("episode")) or (isinstance(notes, tuple) and not notes):
        return []
    if not isinstance(notes, tuple):
        return [html.Div([_subhead("alerts_notes_heading", lang), _no_data(lang)])]
    items = [_note_item(note, tz, lang) for note in cast(tuple[Note, ...], notes)]
    return [
        html.Div([_subhead("alerts_notes_heading", lang), html.Ul(items)], className="alerts-notes")
    ]


def _note_item(note: Note, tz: ZoneInfo, lang: str) -> html.Li:
    by = text("alerts_note_by", lang, author=note.author, time=when(note.at, tz))
    return html.Li(
        [html.Span(by, className="alerts-note-by"), " ", html.Span(note.text)],
        **data_attrs(note=str(note.id)),
    )


def note_button(row: Mapping[str, Any], lang: str, where: str) -> html.Button:
    """ "Ghi chú" of an episode's row (``where``: "active" or "history": one episode may
    be in both tables, and ids must be unique on the page)."""
    return html.Button(
        text("alerts_note_button", lang),
        id={"type": NOTE_BUTTON, "key": alert_key(row), "at": where},
        className="alerts-button alerts-secondary alerts-note-button",
        **PRESS,
    )


# ---------------------------------------------------------------------------- panels


def duty_panel(
    entries: Sequence[OnDuty], lang: str, *, after_min: float, error: str | None = None
) -> html.Div:
    """Who is on duty now in the user's units and above, the desk last."""
    if error is not None:
        listing: Any = message_panel(text("alerts_roster_error", lang, error=error), kind="error")
    elif not entries:
        listing = html.P(text("alerts_duty_nobody", lang), className="panel-note")
    else:
        listing = html.Ul(
            [
                html.Li(
                    [
                        html.Span(f"{entry.unit_name}:", className="alerts-chain-unit"),
                        " ",
                        *_people(entry.people),
                    ],
                    **data_attrs(unit=entry.unit_code or "desk"),
                )
                for entry in entries
            ],
            className="alerts-duty",
        )
    minutes = f"{after_min:g}"
    rule = html.P(text("alerts_duty_rule", lang, minutes=minutes), className="alerts-note")
    return html.Div([listing, rule])


def _people(people: Sequence[Person]) -> list[Any]:
    parts: list[Any] = []
    for index, person in enumerate(people):
        if index:
            parts.append(", ")
        parts.extend(_who(person))
    return parts


def emails_panel(
    queue: EmailQueue | None,
    failed: pd.DataFrame,
    *,
    now: datetime,
    tz: ZoneInfo,
    lang: str,
    limit: int,
) -> html.Div:
    """The queue (how many e-mails wait, since when, the last error) and the e-mails
    refused for good."""
    parts: list[Any] = []
    if queue is not None:
        parts.append(_queue_line(queue, now, lang))
    if failed.empty:
        parts.append(message_panel(text("alerts_failed_none", lang)))
        return html.Div(parts)
    headers = [
        "alerts_col_last_attempt",
        "alerts_col_recipient",
        "alerts_col_subject",
        "alerts_col_carried",
        "alerts_col_error",
        "alerts_col_attempts",
    ]
    rows = []
    for row in records(failed):
        subject: Any = row["subject"]
        if not present(subject):
            hidden = int(row["hidden_alerts"])
            subject = html.Span(
                text("alerts_failed_hidden", lang, count=hidden), className="alerts-note"
            )
        cells = [
            when(row["last_attempt_at"], tz) or when(row["created_at"], tz),
            row["recipient"],
            subject,
            row["alerts"],
            html.Span(row["last_error"] or "", className="alerts-error-text"),
            str(row["attempts"]),
        ]
        rows.append(html.Tr([html.Td(cell) for cell in cells], **data_attrs(email=str(row["id"]))))
    if len(failed) >= limit:
        parts.append(
            html.P(text("alerts_failed_limit", lang, count=limit), className="alerts-note")
        )
    parts.append(table(headers, rows, lang, "alerts-failed-table"))
    return html.Div(parts)


def _queue_line(queue: EmailQueue, now: datetime, lang: str) -> html.Div:
    if queue.waiting:
        age = format_duration(queue.age_s(now), lang)
        lines = [text("alerts_queue_waiting", lang, count=queue.waiting, age=age)]
    else:
        lines = [text("alerts_queue_empty", lang)]
    if queue.undelivered:
        lines.append(text("alerts_queue_undelivered", lang, count=queue.undelivered))
    if queue.waiting and queue.last_error:
        lines.append(text("alerts_queue_error", lang, error=queue.last_error))
    stuck = " alerts-queue-stuck" if queue.stuck(now) else ""
    return html.Div(
        [html.P(line) for line in lines],
        className=f"alerts-queue{stuck}",
        **data_attrs(waiting=str(queue.waiting)),
    )
