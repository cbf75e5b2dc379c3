"""The alerts console, ``/alerts/``: active alerts with acknowledgements, who is told and
how their e-mail went, notes, who is on duty, the e-mails that failed, silences, and the
history with filters, each with its CSV download (issues #5, #6).

Callbacks are plain functions of a :class:`DashboardContext` and the user's
:class:`Access` (tests call them with crafted users); :func:`mount_alerts_page` binds them
with ``current_access()`` (dashboard/alerts_callbacks.py, with the CSV exports). Reading
and acting go through dashboard/alerts_data.py, alerts_delivery.py, alerts_silences.py
and alerts_history.py, which keep to the user's units; the buttons are only drawn for who
may act, and the functions refuse anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple

import dash

from alerts.actions import ActionError, InvalidAction
from core.errors import ConfigError, RetryableError
from dashboard import alerts_silences
from dashboard.access import Access
from dashboard.alerts_data import (
    AlertSource,
    acknowledge,
    active_alerts,
    evaluation_errors,
    unacknowledge,
    unit_choices,
)
from dashboard.alerts_delivery import (
    FAILED_LIMIT,
    alert_unit,
    email_queue,
    failed_emails,
    on_duty,
    place_name,
    sees_alert,
)
from dashboard.alerts_history import HISTORY_LIMIT, HistoryFilter, add_note, alert_history
from dashboard.auth import current_access
from dashboard.context import DashboardContext
from dashboard.exports import export_href
from dashboard.i18n import add_texts, format_clock, text
from dashboard.pages import mount_page
from dashboard.views.alerts import (
    active_table,
    csv_link,
    errors_note,
    history_table,
    silences_table,
)
from dashboard.views.alerts_delivery import duty_panel, emails_panel
from dashboard.views.alerts_forms import DURATIONS, alerts_layout, form_options
from dashboard.views.panel import message_panel

log = logging.getLogger("cityops.dashboard")

ALERTS_PATH = "alerts/"

add_texts(
    {
        "alerts_done_ack": ("Đã xác nhận: {alert}", "Acknowledged: {alert}"),
        "alerts_done_unack": ("Đã bỏ xác nhận: {alert}", "Acknowledgement withdrawn: {alert}"),
        "alerts_done_nothing": ("Không có xác nhận nào để bỏ", "There was no acknowledgement"),
        "alerts_done_note": ("Đã lưu ghi chú: {alert}", "Note saved: {alert}"),
        "alerts_done_silence": (
            "Đã tạm tắt {target} đến {time}",
            "{target} is silenced until {time}",
        ),
        "alerts_done_cancel": ("Đã hủy tạm tắt {target}", "Silence of {target} cancelled"),
        "alerts_alert_name": ("{title} – {unit}", "{title} – {unit}"),
        "alerts_bad_key": ("Không rõ cảnh báo nào", "Which alert is not clear"),
        "alerts_bad_until": (
            "Chọn ngày và giờ kết thúc (HH:MM) của lệnh tạm tắt",
            "Pick the day and the time (HH:MM) the silence ends",
        ),
        "alerts_bad_duration": ("Chọn thời gian tạm tắt", "Pick how long to silence"),
        "alerts_action_failed": (
            "Không lưu được, hãy thử lại sau ít phút",
            "Could not save, try again in a minute",
        ),
    }
)


class AlertsView(NamedTuple):
    """What one refresh of the page shows (in the order of the render callback's outputs)."""

    updated: Any
    errors: Any
    active: Any
    active_csv: Any
    duty: Any
    emails: Any
    emails_csv: Any
    silences: Any
    silences_csv: Any
    history: Any
    history_csv: Any


class Outcome(NamedTuple):
    """The message of an action and whether something changed (then the tables refresh)."""

    message: Any
    changed: bool


def _load_failed(ctx: DashboardContext, lang: str, exc: Exception) -> Any:
    if isinstance(exc, RetryableError):
        log.warning("alerts page refresh failed, will retry: %s", exc)
    else:
        log.exception("alerts page refresh failed")
    seconds = round(ctx.settings.dashboard.refresh_s)
    return message_panel(text("load_error", lang, seconds=seconds), kind="error")


def _duty(ctx: DashboardContext, source: AlertSource, access: Access, lang: str) -> Any:
    after = ctx.settings.alerts.escalation.after_min
    try:
        return duty_panel(on_duty(source, access, lang), lang, after_min=after)
    except ConfigError as exc:  # a bad roster file: say which line, keep the rest
        log.warning("alerts console: the duty roster could not be read: %s", exc)
        return duty_panel([], lang, after_min=after, error=str(exc))


def _emails(ctx: DashboardContext, source: AlertSource, access: Access, lang: str) -> Any:
    try:
        failed = failed_emails(source, access, lang)
        queue = email_queue(source, access)
    except Exception as exc:
        return _load_failed(ctx, lang, exc)
    return emails_panel(
        queue, failed, now=ctx.clock.now(), tz=ctx.tz, lang=lang, limit=FAILED_LIMIT
    )


def render_alerts(
    ctx: DashboardContext,
    access: Access,
    lang_value: object,
    filters: Mapping[str, str | None] | None = None,
) -> AlertsView:
    """Every table of the page for ``access``, the history filtered by ``filters`` (the
    query arguments of :meth:`HistoryFilter.from_args`)."""
    lang = ctx.lang(lang_value)
    prefix = ctx.url_prefix
    keep = dash.no_update
    try:
        source = AlertSource.from_context(ctx)
        now = ctx.clock.now()
        active = active_table(
            active_alerts(source, access, lang),
            lang=lang,
            now=now,
            tz=ctx.tz,
            prefix=prefix,
            metrics=ctx.metrics,
            can_act=access.can_act,
        )
        errors = errors_note(evaluation_errors(source, access, lang), lang)
        silences = silences_table(
            alerts_silences.silences_frame(source, access, lang), lang=lang, now=now, tz=ctx.tz
        )
        duty = _duty(ctx, source, access, lang)
    except Exception as exc:
        return AlertsView(keep, keep, _load_failed(ctx, lang, exc), *([keep] * 8))
    history: Any
    history_csv: Any
    try:
        chosen = HistoryFilter.from_args(filters or {})
        history = history_table(
            alert_history(source, access, chosen, lang),
            lang=lang,
            tz=ctx.tz,
            prefix=prefix,
            limit=HISTORY_LIMIT,
            can_act=access.can_act,
        )
        history_csv = csv_link(
            export_href(prefix, "alerts_history", lang=lang, **chosen.args()), lang
        )
    except ActionError as exc:  # a bad filter value: say which
        history, history_csv = message_panel(exc.in_lang(lang), kind="warning"), None
    except Exception as exc:
        history, history_csv = _load_failed(ctx, lang, exc), keep
    return AlertsView(
        updated=text("updated_at", lang, time=format_clock(now, ctx.tz)),
        errors=errors,
        active=active,
        active_csv=csv_link(export_href(prefix, "alerts_active", lang=lang), lang),
        duty=duty,
        emails=_emails(ctx, source, access, lang),
        emails_csv=csv_link(export_href(prefix, "alerts_failed_emails", lang=lang), lang),
        silences=silences,
        silences_csv=csv_link(export_href(prefix, "alerts_silences", lang=lang), lang),
        history=history,
        history_csv=history_csv,
    )


# ---------------------------------------------------------------------------- actions


def _attempt(lang: str, action: Callable[[], str]) -> Outcome:
    """Run an action: its success message, or why not in the user's language."""
    try:
        done = action()
    except ActionError as exc:
        return Outcome(message_panel(exc.in_lang(lang), kind="warning"), False)
    except Exception as exc:
        if isinstance(exc, RetryableError):
            log.warning("alert action failed, may be retried: %s", exc)
        else:
            log.exception("alert action failed")
        return Outcome(message_panel(text("alerts_action_failed", lang), kind="error"), False)
    return Outcome(message_panel(done, kind="alerts-ok"), True)


def parse_key(key: object) -> tuple[str, str, int]:
    """``rule|unit|episode`` of a row's button; InvalidAction for anything else."""
    parts = key.split("|") if isinstance(key, str) else []
    if len(parts) != 3 or not parts[2].isdigit():
        raise InvalidAction(text("alerts_bad_key", "vi"), text("alerts_bad_key", "en"))
    return parts[0], parts[1], int(parts[2])


def describe_alert(ctx: DashboardContext, access: Access, key: object, lang: str) -> str:
    """ "PM2.5 at Bad level – Hai Van Ward, Da Nang City" for a key the user may see."""
    try:
        rule_id, unit_code, _ = parse_key(key)
    except InvalidAction:
        return ""
    source = AlertSource.from_context(ctx)
    if not sees_alert(access, alert_unit(source, rule_id, unit_code)):
        return ""
    return text(
        "alerts_alert_name",
        lang,
        title=source.title(rule_id, lang),
        unit=place_name(source, rule_id, unit_code, lang),
    )


def acknowledge_alert(
    ctx: DashboardContext, access: Access, key: object, comment: object, lang_value: object = None
) -> Outcome:
    lang = ctx.lang(lang_value)

    def act() -> str:
        rule_id, unit_code, episode = parse_key(key)
        note = comment if isinstance(comment, str) else ""
        acknowledge(AlertSource.from_context(ctx), access, rule_id, unit_code, episode, note)
        return text("alerts_done_ack", lang, alert=describe_alert(ctx, access, key, lang))

    return _attempt(lang, act)


def unacknowledge_alert(
    ctx: DashboardContext, access: Access, key: object, lang_value: object = None
) -> Outcome:
    lang = ctx.lang(lang_value)

    def act() -> str:
        rule_id, unit_code, episode = parse_key(key)
        if not unacknowledge(AlertSource.from_context(ctx), access, rule_id, unit_code, episode):
            return text("alerts_done_nothing", lang)
        return text("alerts_done_unack", lang, alert=describe_alert(ctx, access, key, lang))

    return _attempt(lang, act)


def add_note_to_alert(
    ctx: DashboardContext, access: Access, key: object, note: object, lang_value: object = None
) -> Outcome:
    """Write a note on the episode ``key`` (open or in the history) as the user."""
    lang = ctx.lang(lang_value)

    def act() -> str:
        rule_id, unit_code, episode = parse_key(key)
        written = note if isinstance(note, str) else ""
        add_note(AlertSource.from_context(ctx), access, rule_id, unit_code, episode, written)
        return text("alerts_done_note", lang, alert=describe_alert(ctx, access, key, lang))

    return _attempt(lang, act)


def silence_end(
    ctx: DashboardContext, minutes: object, until_day: object = None, until_time: object = None
) -> datetime:
    """When a silence chosen on the form ends: now + 30 min, 1 h, 4 h, 24 h, or the local
    day and HH:MM given. InvalidAction when the choice is incomplete."""
    if minutes == "until":
        try:
            day = date.fromisoformat(str(until_day)[:10])
            hour, minute = (int(part) for part in str(until_time).strip().split(":"))
            return datetime.combine(day, time(hour, minute), ctx.tz)
        except (TypeError, ValueError):
            raise InvalidAction(
                text("alerts_bad_until", "vi"), text("alerts_bad_until", "en")
            ) from None
    if minutes not in DURATIONS:
        raise InvalidAction(text("alerts_bad_duration", "vi"), text("alerts_bad_duration", "en"))
    return ctx.clock.now() + timedelta(minutes=int(str(minutes)))


def silence(
    ctx: DashboardContext,
    access: Access,
    kind: object,
    target: object,
    minutes: object,
    reason: object,
    *,
    until_day: object = None,
    until_time: object = None,
    lang_value: object = None,
) -> Outcome:
    """Silence a unit or device (a rule: admins) for ``minutes`` ("30", "60", "240",
    "1440") or, with ``minutes="until"``, until the local ``until_day`` and ``until_time``."""
    lang = ctx.lang(lang_value)

    def act() -> str:
        until = silence_end(ctx, minutes, until_day, until_time)
        made = alerts_silences.silence(
            AlertSource.from_context(ctx),
            access,
            str(kind or ""),
            str(target or ""),
            until,
            reason if isinstance(reason, str) else "",
        )
        name = _target_name(ctx, made.kind, made.target, lang)
        when = until.astimezone(ctx.tz).strftime("%H:%M %d/%m/%Y")
        return text("alerts_done_silence", lang, target=name, time=when)

    return _attempt(lang, act)


def _target_name(ctx: DashboardContext, kind: str, target: str, lang: str) -> str:
    source = AlertSource.from_context(ctx)
    if kind == "unit":
        return source.unit_name(target, lang)
    if kind == "rule":
        return source.title(target, lang)
    return target


def cancel_silence(
    ctx: DashboardContext, access: Access, silence_id: object, lang_value: object = None
) -> Outcome:
    lang = ctx.lang(lang_value)

    def act() -> str:
        if isinstance(silence_id, bool) or not isinstance(silence_id, int):
            raise InvalidAction(text("alerts_bad_key", "vi"), text("alerts_bad_key", "en"))
        done = alerts_silences.cancel_silence(AlertSource.from_context(ctx), access, silence_id)
        name = _target_name(ctx, done.kind, done.target, lang)
        return text("alerts_done_cancel", lang, target=name)

    return _attempt(lang, act)


# ---------------------------------------------------------------------------- page


def alerts_body(ctx: DashboardContext, access: Access, lang: str) -> list[Any]:
    """The page's body for ``access`` (the shell around it: dashboard/pages.py)."""
    source = AlertSource.from_context(ctx)
    options = form_options(
        lang, may_silence_rules=access.everything, units=unit_choices(source, access, lang)
    )
    rules = [(rule.id, source.title(rule.id, lang)) for rule in ctx.settings.alerts.rules]
    return alerts_layout(lang, can_act=access.can_act, options=options, rules=rules)


def _signed_in(ctx: DashboardContext) -> Access:
    """The user's access; nobody's when Dash builds the layout outside a request (the
    same components either way: only what is shown differs)."""
    try:
        return current_access()
    except PermissionError:
        return Access.nobody(ctx.hierarchy)


def mount_alerts_page(main: dash.Dash, ctx: DashboardContext) -> dash.Dash:
    """Serve the console at ``<main's prefix>alerts/`` on ``main``'s server, with its CSV
    exports; creates or migrates the tables it reads."""
    # It imports this module's functions.
    from dashboard.alerts_callbacks import register, register_exports

    AlertSource.from_context(ctx).prepare()
    register_exports(ctx)
    return mount_page(
        main,
        ctx,
        path=ALERTS_PATH,
        title_key="alerts_title",
        layout=lambda lang: alerts_body(ctx, _signed_in(ctx), lang),
        register=lambda app: register(app, ctx),
    )
