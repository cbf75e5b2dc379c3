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
TEXT = "alerts-text"

DURATIONS: Final = ("30", "60", "240", "1440", "until")  # minutes, or until a given time
SEVERITY_CHOICES: Final = ("critical", "warning", "info")
STATE_CHOICES: Final = ("open", "resolved")

add_texts(
    {
        "alerts_title": ("Cảnh báo", "Alerts"),
        "alerts_active_heading": ("Cảnh báo đang diễn ra", "Active alerts"),
        "alerts_duty_heading": ("Người nhận cảnh báo", "Who is told"),
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


def _field(key: str, lang: str, control: Any, control_id: str) -> html.Div:
    return html.Div(
        [html.Label(label(key, lang), htmlFor=control_id), control], className="alerts-field"
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


def ack_form(lang: str) -> html.Div:
    """Shown when a row's "Acknowledge" is pressed: which alert, a comment, confirm."""
    return html.Div(
        [
            html.H3(label("alerts_ack_heading", lang)),
            html.P(id=ACK_TARGET, className="alerts-ack-target"),
            _field(
                "alerts_ack_comment",
                lang,
                dcc.Textarea(id=ACK_COMMENT, maxLength=1000, rows=2, className="alerts-input"),
                ACK_COMMENT,
            ),
            html.Div(
                [
                    html.Button(
                        label("alerts_ack_submit", lang), id=ACK_SUBMIT, className="alerts-button"
                    ),
                    html.Button(
                        label("alerts_ack_close", lang),
                        id=ACK_CLOSE,
                        className="alerts-button alerts-secondary",
                    ),
                ],
                className="alerts-buttons",
            ),
        ],
        id=ACK_FORM,
        className="alerts-form",
        hidden=True,
    )


def silence_form(
    lang: str, options: dict[str, list[dict[str, str]]], *, hidden: bool = False
) -> html.Div:
    """Silence a unit or a device (a rule: admins) for a duration or until a time. Hidden
    (not left out: the page's callbacks name its fields) for who may not act."""
    controls = [
        _field(
            "alerts_silence_kind",
            lang,
            dcc.RadioItems(
                id=SILENCE_KIND,
                options=options["kind"],
                value="unit",
                inline=True,
                className="segmented",
            ),
            SILENCE_KIND,
        ),
        _field(
            "alerts_silence_target",
            lang,
            dcc.Dropdown(
                id=SILENCE_TARGET,
                options=[],
                searchable=True,
                placeholder=text("alerts_silence_pick", lang),
                className="alerts-select",
            ),
            SILENCE_TARGET,
        ),
        _field(
            "alerts_silence_duration",
            lang,
            dcc.RadioItems(
                id=SILENCE_DURATION,
                options=options["duration"],
                value="60",
                inline=True,
                className="segmented",
            ),
            SILENCE_DURATION,
        ),
        _field(
            "alerts_silence_until",
            lang,
            html.Div(
                [
                    dcc.DatePickerSingle(
                        id=SILENCE_UNTIL_DAY,
                        display_format="DD/MM/YYYY",
                        first_day_of_week=1,  # weeks start on Monday
                        disabled=True,
                        placeholder=text("alerts_pick_day", lang),
                        className="alerts-day",
                    ),
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
            ),
            SILENCE_UNTIL_TIME,
        ),
        _field(
            "alerts_silence_reason",
            lang,
            dcc.Input(id=SILENCE_REASON, type="text", maxLength=1000, className="alerts-input"),
            SILENCE_REASON,
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
            control_id,
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
            _field(
                "alerts_filter_from",
                lang,
                dcc.DatePickerSingle(
                    id=HISTORY_FROM,
                    display_format="DD/MM/YYYY",
                    first_day_of_week=1,
                    clearable=True,
                    placeholder=text("alerts_pick_day", lang),
                    className="alerts-day",
                ),
                HISTORY_FROM,
            ),
            _field(
                "alerts_filter_to",
                lang,
                dcc.DatePickerSingle(
                    id=HISTORY_TO,
                    display_format="DD/MM/YYYY",
                    first_day_of_week=1,
                    clearable=True,
                    placeholder=text("alerts_pick_day", lang),
                    className="alerts-day",
                ),
                HISTORY_TO,
            ),
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
        dcc.Store(id=ACK_KEY, data=None),
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
    ]
