"""The alerts console's layout: its component ids, sections, and the forms to acknowledge,
silence and filter the history. Pure: a language and the user's choices in, components out.

Every fixed text carries the id ``{"type": TEXT, "key": <text key>}``, so one callback
relabels the page when the language changes without rebuilding the forms (what was typed
stays); the options of the choice lists are relabelled by :func:`form_options`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from dash import dcc, html

from dashboard.i18n import add_texts, text

# Component ids of the page (the shell's URL, REFRESH and LANG are in dashboard/ids.py).
UPDATED = "alerts-updated"
MESSAGE = "alerts-message"  # the outcome of the last action
VERSION = "alerts-version"  # dcc.Store bumped by every action, so the tables refresh at once
PRESSED = "alerts-pressed"  # dcc.Store {"id": row button pressed, "at": ms}, set in the browser
PRESS: dict[str, Any] = {"data-press-store": PRESSED}  # row buttons: assets/press.js
ERRORS = "alerts-errors"
ACTIVE = "alerts-active"
ACTIVE_CSV = "alerts-active-csv"
DUTY = "alerts-duty"
SILENCES = "alerts-silences"
SILENCES_CSV = "alerts-silences-csv"
HISTORY = "alerts-history"
HISTORY_CSV = "alerts-history-csv"
ACK_FORM = "alerts-ack-form"
ACK_KEY = "alerts-ack-key"  # dcc.Store: "rule|unit|episode" of the alert being acknowledged
ACK_TARGET = "alerts-ack-target"
ACK_COMMENT = "alerts-ack-comment"
ACK_SUBMIT = "alerts-ack-submit"
ACK_CLOSE = "alerts-ack-close"
NOTE_FORM = "alerts-note-form"
NOTE_KEY = "alerts-note-key"  # dcc.Store: "rule|unit|episode" of the alert being noted
NOTE_TARGET = "alerts-note-target"
NOTE_TEXT = "alerts-note-text"
NOTE_SUBMIT = "alerts-note-submit"
NOTE_CLOSE = "alerts-note-close"
EMAILS = "alerts-emails"  # the e-mail queue and the e-mails that failed
EMAILS_CSV = "alerts-emails-csv"
SILENCE_FORM = "alerts-silence-form"
SILENCE_KIND = "alerts-silence-kind"
SILENCE_TARGET = "alerts-silence-target"
SILENCE_DURATION = "alerts-silence-duration"
SILENCE_UNTIL_DAY = "alerts-silence-until-day"
SILENCE_UNTIL_TIME = "alerts-silence-until-time"  # HH:MM, local time
SILENCE_REASON = "alerts-silence-reason"
SILENCE_SUBMIT = "alerts-silence-submit"
HISTORY_UNIT = "alerts-history-unit"
HISTORY_SEVERITY = "alerts-history-severity"
HISTORY_RULE = "alerts-history-rule"
HISTORY_STATE = "alerts-history-state"
HISTORY_FROM = "alerts-history-from"
HISTORY_TO = "alerts-history-to"
# Pattern-matching id types: the row buttons and the fixed texts.
ACK_BUTTON = "alerts-ack-button"
UNACK_BUTTON = "alerts-unack-button"
SILENCE_BUTTON = "alerts-silence-button"
CANCEL_BUTTON = "alerts-cancel-button"
NOTE_BUTTON = "alerts-note-button"  # {"type", "key", "at": "active" | "history"}
TEXT = "alerts-text"

DURATIONS: Final = ("30", "60", "240", "1440", "until")  # minutes, or until a given time
SEVERITY_CHOICES: Final = ("critical", "warning", "info")
STATE_CHOICES: Final = ("open", "resolved")

add_texts(
    {
        "alerts_title": ("Cảnh báo", "Alerts"),
        "alerts_active_heading": ("Cảnh báo đang diễn ra", "Active alerts"),
        "alerts_duty_heading": ("Người đang trực", "Who is on duty"),
        "alerts_emails_heading": ("E-mail không gửi được", "E-mails that could not be sent"),
        "alerts_silences_heading": ("Tạm tắt cảnh báo", "Silences"),
        "alerts_history_heading": ("Lịch sử cảnh báo", "Alert history"),
        "alerts_view_only": (
            "Vai trò của bạn chỉ được xem: không có nút xác nhận hay tạm tắt",
            "Your role may view only: there are no acknowledge or silence buttons",
        ),
        "alerts_ack_heading": ("Xác nhận cảnh báo", "Acknowledge an alert"),
        "alerts_ack_comment": ("Ghi chú (không bắt buộc)", "Comment (optional)"),
        "alerts_ack_submit": ("Xác nhận", "Acknowledge"),
        "alerts_ack_close": ("Đóng", "Close"),
        "alerts_note_heading": ("Ghi chú xử lý", "Note on an alert"),
        "alerts_note_text": (
            "Đã làm gì, xử lý thế nào (bắt buộc)",
            "What was done, how it was resolved (required)",
        ),
        "alerts_note_submit": ("Lưu ghi chú", "Save the note"),
        "alerts_note_close": ("Đóng", "Close"),  # its own key: a text's id appears once
        "alerts_silence_heading": ("Tạm tắt cảnh báo mới", "New silence"),
        "alerts_silence_kind": ("Tạm tắt", "Silence"),
        "alerts_silence_target": ("Đối tượng", "Target"),
        "alerts_silence_duration": ("Trong", "For"),
        "alerts_silence_until": ("Đến lúc (giờ địa phương)", "Until (local time)"),
        "alerts_silence_reason": ("Lý do (bắt buộc)", "Reason (required)"),
        "alerts_silence_submit": ("Tạm tắt", "Silence"),
        "alerts_silence_pick": ("Chọn đơn vị hoặc thiết bị", "Pick a unit or a device"),
        "alerts_duration_30": ("30 phút", "30 min"),
        "alerts_duration_60": ("1 giờ", "1 h"),
        "alerts_duration_240": ("4 giờ", "4 h"),
        "alerts_duration_1440": ("24 giờ", "24 h"),
        "alerts_duration_until": ("Đến lúc…", "Until…"),
        "alerts_filter_unit": ("Đơn vị (gồm cấp dưới)", "Unit (and inside it)"),
        "alerts_filter_severity": ("Mức độ", "Severity"),
        "alerts_filter_rule": ("Quy tắc", "Rule"),
        "alerts_filter_state": ("Trạng thái", "State"),
        "alerts_filter_from": ("Từ ngày", "From"),
        "alerts_filter_to": ("Đến ngày", "To"),
        "alerts_filter_any": ("Tất cả", "All"),
        "alerts_pick_day": ("Chọn ngày", "Pick a day"),
    }
)


_LIVE: Final[dict[str, Any]] = {"aria-live": "polite"}


# (component, text key) of every placeholder, relabelled with the fixed texts.
PLACEHOLDERS: Final = (
    (SILENCE_TARGET, "alerts_silence_pick"),
    (SILENCE_UNTIL_DAY, "alerts_pick_day"),
    (HISTORY_UNIT, "alerts_filter_any"),
    (HISTORY_SEVERITY, "alerts_filter_any"),
    (HISTORY_RULE, "alerts_filter_any"),
    (HISTORY_STATE, "alerts_filter_any"),
    (HISTORY_FROM, "alerts_pick_day"),
    (HISTORY_TO, "alerts_pick_day"),
)


def label(key: str, lang: str, **props: Any) -> html.Span:
    """A fixed text the language switch relabels (see :func:`texts_for`)."""
    return html.Span(text(key, lang), id={"type": TEXT, "key": key}, **props)


def texts_for(keys: Sequence[str], lang: str) -> list[str]:
    """The fixed texts of the page in ``lang``, in the order of their ids."""
    return [text(key, lang) for key in keys]


def _field(key: str, lang: str, control: Any, control_id: str | None = None) -> html.Div:
    """A labelled control (the label names ``control_id``, else the control's own id)."""
    target = control_id or control.id
    return html.Div(
        [html.Label(label(key, lang), htmlFor=target), control], className="alerts-field"
    )


def _options(prefix: str, values: Sequence[str], lang: str) -> list[dict[str, str]]:
    return [{"label": text(f"{prefix}{value}", lang), "value": value} for value in values]


def form_options(
    lang: str, *, may_silence_rules: bool, units: Sequence[tuple[str, str]]
) -> dict[str, list[dict[str, str]]]:
    """The options of every choice list in ``lang`` (units: (code, label) pairs)."""
    kinds = ("unit", "device", "rule") if may_silence_rules else ("unit", "device")
    return {
        "kind": _options("alerts_kind_", kinds, lang),
        "duration": _options("alerts_duration_", DURATIONS, lang),
        "severity": _options("alerts_severity_", SEVERITY_CHOICES, lang),
        "state": _options("alerts_status_", STATE_CHOICES, lang),
        "unit": [{"label": name, "value": code} for code, name in units],
    }


def _text_form(
    lang: str,
    *,
    form_id: str,
    heading: str,
    target_id: str,
    field: str,
    text_id: str,
    submit: str,
    submit_id: str,
    close: str,
    close_id: str,
    class_name: str = "alerts-form",
) -> html.Div:
    """A hidden form naming one alert, with a text and confirm / close buttons."""
    return html.Div(
        [
            html.H3(label(heading, lang)),
            html.P(id=target_id, className="alerts-ack-target"),
            _field(
                field,
                lang,
                dcc.Textarea(id=text_id, maxLength=1000, rows=2, className="alerts-input"),
            ),
            html.Div(
                [
                    html.Button(label(submit, lang), id=submit_id, className="alerts-button"),
                    html.Button(
                        label(close, lang),
                        id=close_id,
                        className="alerts-button alerts-secondary",
                    ),
                ],
                className="alerts-buttons",
            ),
        ],
        id=form_id,
        className=class_name,
        hidden=True,
    )


def ack_form(lang: str) -> html.Div:
    """Shown when a row's "Acknowledge" is pressed: which alert, a comment, confirm."""
    return _text_form(
        lang,
        form_id=ACK_FORM,
        heading="alerts_ack_heading",
        target_id=ACK_TARGET,
        field="alerts_ack_comment",
        text_id=ACK_COMMENT,
        submit="alerts_ack_submit",
        submit_id=ACK_SUBMIT,
        close="alerts_ack_close",
        close_id=ACK_CLOSE,
    )


def note_form(lang: str) -> html.Div:
    """Shown when a row's "Note" is pressed (active or history: it floats over the page
    so it is at hand wherever the row is)."""
    return _text_form(
        lang,
        form_id=NOTE_FORM,
        heading="alerts_note_heading",
        target_id=NOTE_TARGET,
        field="alerts_note_text",
        text_id=NOTE_TEXT,
        submit="alerts_note_submit",
        submit_id=NOTE_SUBMIT,
        close="alerts_note_close",
        close_id=NOTE_CLOSE,
        class_name="alerts-form alerts-dialog",
    )


def _day(control_id: str, lang: str, **props: Any) -> dcc.DatePickerSingle:
    """A local day, shown DD/MM/YYYY, weeks starting on Monday."""
    return dcc.DatePickerSingle(
        id=control_id,
        display_format="DD/MM/YYYY",
        first_day_of_week=1,
        placeholder=text("alerts_pick_day", lang),
        className="alerts-day",
        **props,
    )


def _segmented(control_id: str, options: list[dict[str, str]], value: str) -> dcc.RadioItems:
    return dcc.RadioItems(
        id=control_id, options=options, value=value, inline=True, className="segmented"
    )


def silence_form(
    lang: str, options: dict[str, list[dict[str, str]]], *, hidden: bool = False
) -> html.Div:
    """Silence a unit or a device (a rule: admins) for a duration or until a time. Hidden
    (not left out: the page's callbacks name its fields) for who may not act."""
    until = html.Div(
        [
            _day(SILENCE_UNTIL_DAY, lang, disabled=True),
            dcc.Input(
                id=SILENCE_UNTIL_TIME,
                type="text",
                placeholder="17:30",
                maxLength=5,
                disabled=True,
                className="alerts-input alerts-time",
            ),
        ],
        className="alerts-until",
    )
    target = dcc.Dropdown(
        id=SILENCE_TARGET,
        options=[],
        searchable=True,
        placeholder=text("alerts_silence_pick", lang),
        className="alerts-select",
    )
    controls = [
        _field("alerts_silence_kind", lang, _segmented(SILENCE_KIND, options["kind"], "unit")),
        _field("alerts_silence_target", lang, target),
        _field(
            "alerts_silence_duration",
            lang,
            _segmented(SILENCE_DURATION, options["duration"], "60"),
        ),
        _field("alerts_silence_until", lang, until, SILENCE_UNTIL_TIME),
        _field(
            "alerts_silence_reason",
            lang,
            dcc.Input(id=SILENCE_REASON, type="text", maxLength=1000, className="alerts-input"),
        ),
        html.Button(
            label("alerts_silence_submit", lang), id=SILENCE_SUBMIT, className="alerts-button"
        ),
    ]
    return html.Div(
        [
            html.H3(label("alerts_silence_heading", lang)),
            html.Div(controls, className="alerts-fields"),
        ],
        id=SILENCE_FORM,
        className="alerts-form",
        hidden=hidden,
    )


def history_filters(
    lang: str, options: dict[str, list[dict[str, str]]], rules: Sequence[tuple[str, str]]
) -> html.Div:
    """Unit (with what is inside it), severity, rule, open/resolved, and local days."""

    def choice(key: str, control_id: str, choices: list[dict[str, str]]) -> html.Div:
        return _field(
            key,
            lang,
            dcc.Dropdown(
                id=control_id,
                options=choices,
                clearable=True,
                placeholder=text("alerts_filter_any", lang),
                className="alerts-select",
            ),
        )

    return html.Div(
        [
            choice("alerts_filter_unit", HISTORY_UNIT, options["unit"]),
            choice("alerts_filter_severity", HISTORY_SEVERITY, options["severity"]),
            choice(
                "alerts_filter_rule",
                HISTORY_RULE,
                [{"label": title, "value": rule} for rule, title in rules],
            ),
            choice("alerts_filter_state", HISTORY_STATE, options["state"]),
            _field("alerts_filter_from", lang, _day(HISTORY_FROM, lang, clearable=True)),
            _field("alerts_filter_to", lang, _day(HISTORY_TO, lang, clearable=True)),
        ],
        className="alerts-fields alerts-filters",
    )


def _section(heading: str, lang: str, *parts: Any, class_name: str = "") -> html.Section:
    return html.Section(
        [html.H2(label(heading, lang)), *parts], className=f"alerts-section {class_name}".strip()
    )


def alerts_layout(
    lang: str,
    *,
    can_act: bool,
    options: dict[str, list[dict[str, str]]],
    rules: Sequence[tuple[str, str]],
) -> list[Any]:
    """The page body: the tables start empty and are filled by the render callback."""
    note = [] if can_act else [html.P(label("alerts_view_only", lang), className="alerts-note")]
    return [
        dcc.Store(id=VERSION, data=0),
        dcc.Store(id=PRESSED, data=None),
        dcc.Store(id=ACK_KEY, data=None),
        dcc.Store(id=NOTE_KEY, data=None),
        html.Div(html.Span(id=UPDATED, className="updated-at"), className="status"),
        html.Div(id=MESSAGE, className="alerts-message", role="status", **_LIVE),
        _section(
            "alerts_active_heading",
            lang,
            *note,
            html.Div(id=ERRORS),
            html.Div(id=ACTIVE),
            html.Div(id=ACTIVE_CSV, className="alerts-csv-box"),
            ack_form(lang),
        ),
        _section("alerts_duty_heading", lang, html.Div(id=DUTY)),
        _section(
            "alerts_emails_heading",
            lang,
            html.Div(id=EMAILS),
            html.Div(id=EMAILS_CSV, className="alerts-csv-box"),
        ),
        _section(
            "alerts_silences_heading",
            lang,
            html.Div(id=SILENCES),
            html.Div(id=SILENCES_CSV, className="alerts-csv-box"),
            silence_form(lang, options, hidden=not can_act),
        ),
        _section(
            "alerts_history_heading",
            lang,
            history_filters(lang, options, rules),
            html.Div(id=HISTORY),
            html.Div(id=HISTORY_CSV, className="alerts-csv-box"),
        ),
        note_form(lang),
    ]
