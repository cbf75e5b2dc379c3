"""The alerts console's registered callbacks: each reads the signed-in user's access and
the inputs, calls a plain function of dashboard/alerts_page.py, and places the result;
and its CSV exports, the same rows as the tables for the signed-in user.

Row buttons are re-created on every refresh (a new n_clicks each time). Their presses are
recorded at the click itself by assets/press.js, into the PRESSED store, and the callbacks
act on that store, never on the buttons' n_clicks: a refresh that redraws the buttons
between the click and Dash's reading of the inputs cannot turn a press into "nothing was
pressed" (CI saw one "Hủy tạm tắt" click do nothing while the tables were refreshing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dash
import pandas as pd
from dash import ALL, Input, Output, State

from dashboard import alerts_silences, ids
from dashboard.access import Access
from dashboard.alerts_data import AlertSource, active_alerts, exportable, unit_choices
from dashboard.alerts_delivery import failed_emails
from dashboard.alerts_history import HistoryFilter, alert_history
from dashboard.alerts_page import (
    acknowledge_alert,
    add_note_to_alert,
    cancel_silence,
    describe_alert,
    render_alerts,
    silence,
    unacknowledge_alert,
)
from dashboard.alerts_silences import silence_targets
from dashboard.auth import current_access
from dashboard.context import DashboardContext
from dashboard.i18n import as_lang
from dashboard.views import alerts_forms as f


def pressed_row(data: object, button_type: str) -> dict[str, Any] | None:
    """The id of the row button of ``button_type`` in the PRESSED store's ``data``, or None
    when the press was of another kind (or the store holds nothing usable)."""
    if not isinstance(data, dict):
        return None
    pressed = data.get("id")
    if not isinstance(pressed, dict) or pressed.get("type") != button_type:
        return None
    return pressed


def _bump(version: object) -> int:
    return (version if isinstance(version, int) else 0) + 1


def target_options(
    ctx: DashboardContext, access: Access, kind: object, lang_value: object, current: object
) -> tuple[list[dict[str, str]], Any]:
    """The choices of the silence form's target for ``kind``; the chosen one kept if valid."""
    lang = ctx.lang(lang_value)
    targets = silence_targets(AlertSource.from_context(ctx), access, lang)
    choices = [{"label": name, "value": value} for value, name in targets.get(str(kind), [])]
    keep = current if any(choice["value"] == current for choice in choices) else None
    return choices, keep


def relabelled_options(ctx: DashboardContext, access: Access, lang_value: object) -> list[Any]:
    lang = ctx.lang(lang_value)
    source = AlertSource.from_context(ctx)
    options = f.form_options(
        lang, may_silence_rules=access.everything, units=unit_choices(source, access, lang)
    )
    rules = [{"label": source.title(rule, lang), "value": rule} for rule in source.rules]
    return [
        options["kind"],
        options["duration"],
        options["severity"],
        options["state"],
        options["unit"],
        rules,
    ]


def register_exports(ctx: DashboardContext) -> None:
    """The CSV downloads: the same rows as the tables, for the signed-in user (with the
    notes, who was told and the e-mail status as text)."""

    def source() -> AlertSource:
        return AlertSource.from_context(ctx)

    def active(ctx: DashboardContext, access: Access, args: Mapping[str, str]) -> pd.DataFrame:
        return exportable(active_alerts(source(), access, as_lang(args.get("lang"))))

    def history(ctx: DashboardContext, access: Access, args: Mapping[str, str]) -> pd.DataFrame:
        chosen = HistoryFilter.from_args(args)
        lang = as_lang(args.get("lang"))
        return exportable(alert_history(source(), access, chosen, lang))

    def silences(ctx: DashboardContext, access: Access, args: Mapping[str, str]) -> pd.DataFrame:
        frame = alerts_silences.silences_frame(source(), access, as_lang(args.get("lang")))
        return frame.drop(columns=["can_cancel"])

    def failed(ctx: DashboardContext, access: Access, args: Mapping[str, str]) -> pd.DataFrame:
        return failed_emails(source(), access, as_lang(args.get("lang")))

    ctx.exports.add("alerts_active", active)
    ctx.exports.add("alerts_history", history)
    ctx.exports.add("alerts_silences", silences)
    ctx.exports.add("alerts_failed_emails", failed)


@dataclass(frozen=True)
class _Form:
    """The ids of a small form opened by a button on an alert row (acknowledge, note)."""

    key: str
    form: str
    target: str
    text: str
    button: str  # the row buttons' pattern type
    close: str
    submit: str


_AckForm = _Form(
    f.ACK_KEY, f.ACK_FORM, f.ACK_TARGET, f.ACK_COMMENT,
    f.ACK_BUTTON, f.ACK_CLOSE, f.ACK_SUBMIT,
)  # fmt: skip
_NoteForm = _Form(
    f.NOTE_KEY, f.NOTE_FORM, f.NOTE_TARGET, f.NOTE_TEXT,
    f.NOTE_BUTTON, f.NOTE_CLOSE, f.NOTE_SUBMIT,
)  # fmt: skip
Submit = Callable[[DashboardContext, Access, object, object, object], Any]


def _form_callbacks(app: dash.Dash, ctx: DashboardContext, form: _Form, submit: Submit) -> None:
    """Open the form for the pressed row (or close it), and submit it."""

    @app.callback(
        Output(form.key, "data"),
        Output(form.form, "hidden"),
        Output(form.target, "children"),
        Output(form.text, "value"),
        Input(f.PRESSED, "data"),
        Input(form.close, "n_clicks"),
        State(ids.LANG, "value"),
        prevent_initial_call=True,
    )
    def _choose(data: object, close: object, lang_value: object) -> Any:
        if dash.ctx.triggered_id == form.close:
            return (None, True, "", "") if close else dash.no_update
        pressed = pressed_row(data, form.button)
        if pressed is None:
            return dash.no_update
        key = pressed["key"]
        lang = ctx.lang(lang_value)
        return key, False, describe_alert(ctx, current_access(), key, lang), ""

    @app.callback(
        Output(f.MESSAGE, "children", allow_duplicate=True),
        Output(f.VERSION, "data", allow_duplicate=True),
        Output(form.form, "hidden", allow_duplicate=True),
        Input(form.submit, "n_clicks"),
        State(form.key, "data"),
        State(form.text, "value"),
        State(ids.LANG, "value"),
        State(f.VERSION, "data"),
        prevent_initial_call=True,
    )
    def _submit(
        clicks: object, key: object, text: object, lang_value: object, version: object
    ) -> Any:
        if not clicks:
            return dash.no_update
        done = submit(ctx, current_access(), key, text, lang_value)
        return done.message, _bump(version) if done.changed else dash.no_update, done.changed


def register(app: dash.Dash, ctx: DashboardContext) -> None:
    """Bind the page's callbacks on ``app`` (the page's own Dash app)."""

    @app.callback(
        Output({"type": f.TEXT, "key": ALL}, "children"),
        Output(f.SILENCE_KIND, "options"),
        Output(f.SILENCE_DURATION, "options"),
        Output(f.HISTORY_SEVERITY, "options"),
        Output(f.HISTORY_STATE, "options"),
        Output(f.HISTORY_UNIT, "options"),
        Output(f.HISTORY_RULE, "options"),
        Output(f.MESSAGE, "children", allow_duplicate=True),  # the last outcome, in the old one
        *[Output(component, "placeholder") for component, _ in f.PLACEHOLDERS],
        Input(ids.LANG, "value"),
        prevent_initial_call=True,
    )
    def _relabel(lang_value: object) -> Any:
        keys = [output["id"]["key"] for output in dash.ctx.outputs_list[0]]
        lang = ctx.lang(lang_value)
        return [
            f.texts_for(keys, lang),
            *relabelled_options(ctx, current_access(), lang),
            "",
            *f.texts_for([key for _, key in f.PLACEHOLDERS], lang),
        ]

    @app.callback(
        Output(f.UPDATED, "children"),
        Output(f.ERRORS, "children"),
        Output(f.ACTIVE, "children"),
        Output(f.ACTIVE_CSV, "children"),
        Output(f.DUTY, "children"),
        Output(f.EMAILS, "children"),
        Output(f.EMAILS_CSV, "children"),
        Output(f.SILENCES, "children"),
        Output(f.SILENCES_CSV, "children"),
        Output(f.HISTORY, "children"),
        Output(f.HISTORY_CSV, "children"),
        Input(ids.REFRESH, "n_intervals"),
        Input(ids.LANG, "value"),
        Input(f.VERSION, "data"),
        Input(f.HISTORY_UNIT, "value"),
        Input(f.HISTORY_SEVERITY, "value"),
        Input(f.HISTORY_RULE, "value"),
        Input(f.HISTORY_STATE, "value"),
        Input(f.HISTORY_FROM, "date"),
        Input(f.HISTORY_TO, "date"),
    )
    def _render(
        _tick: object,
        lang_value: object,
        _version: object,
        unit: str | None,
        severity: str | None,
        rule: str | None,
        state: str | None,
        date_from: str | None,
        date_to: str | None,
    ) -> Any:
        filters = {
            "unit": unit,
            "severity": severity,
            "rule": rule,
            "state": state,
            "from": date_from,
            "to": date_to,
        }
        return tuple(render_alerts(ctx, current_access(), lang_value, filters))

    @app.callback(
        Output(f.SILENCE_TARGET, "options"),
        Output(f.SILENCE_TARGET, "value"),
        Input(f.SILENCE_KIND, "value"),
        Input(ids.LANG, "value"),
        State(f.SILENCE_TARGET, "value"),
    )
    def _targets(kind: object, lang_value: object, current: object) -> Any:
        return target_options(ctx, current_access(), kind, lang_value, current)

    @app.callback(
        Output(f.SILENCE_UNTIL_DAY, "disabled"),
        Output(f.SILENCE_UNTIL_TIME, "disabled"),
        Input(f.SILENCE_DURATION, "value"),
    )
    def _until(duration: object) -> Any:
        return duration != "until", duration != "until"

    _form_callbacks(app, ctx, _AckForm, acknowledge_alert)
    _form_callbacks(app, ctx, _NoteForm, add_note_to_alert)

    @app.callback(  # one callback for both: the same outputs and input would clash
        Output(f.MESSAGE, "children", allow_duplicate=True),
        Output(f.VERSION, "data", allow_duplicate=True),
        Input(f.PRESSED, "data"),
        State(ids.LANG, "value"),
        State(f.VERSION, "data"),
        prevent_initial_call=True,
    )
    def _unacknowledge_or_cancel(data: object, lang_value: object, version: object) -> Any:
        if (pressed := pressed_row(data, f.UNACK_BUTTON)) is not None:
            done = unacknowledge_alert(ctx, current_access(), pressed["key"], lang_value)
        elif (pressed := pressed_row(data, f.CANCEL_BUTTON)) is not None:
            done = cancel_silence(ctx, current_access(), pressed["id"], lang_value)
        else:
            return dash.no_update
        return done.message, _bump(version) if done.changed else dash.no_update

    @app.callback(
        Output(f.SILENCE_KIND, "value"),
        Output(f.SILENCE_TARGET, "value", allow_duplicate=True),
        Input(f.PRESSED, "data"),
        prevent_initial_call=True,
    )
    def _silence_row(data: object) -> Any:
        pressed = pressed_row(data, f.SILENCE_BUTTON)
        if pressed is None:
            return dash.no_update
        return "unit", pressed["unit"]

    @app.callback(
        Output(f.MESSAGE, "children", allow_duplicate=True),
        Output(f.VERSION, "data", allow_duplicate=True),
        Output(f.SILENCE_REASON, "value"),
        Input(f.SILENCE_SUBMIT, "n_clicks"),
        State(f.SILENCE_KIND, "value"),
        State(f.SILENCE_TARGET, "value"),
        State(f.SILENCE_DURATION, "value"),
        State(f.SILENCE_UNTIL_DAY, "date"),
        State(f.SILENCE_UNTIL_TIME, "value"),
        State(f.SILENCE_REASON, "value"),
        State(ids.LANG, "value"),
        State(f.VERSION, "data"),
        prevent_initial_call=True,
    )
    def _silence(
        clicks: object,
        kind: object,
        target: object,
        duration: object,
        until_day: object,
        until_time: object,
        reason: object,
        lang_value: object,
        version: object,
    ) -> Any:
        if not clicks:
            return dash.no_update
        done = silence(
            ctx,
            current_access(),
            kind,
            target,
            duration,
            reason,
            until_day=until_day,
            until_time=until_time,
            lang_value=lang_value,
        )
        if not done.changed:
            return done.message, dash.no_update, dash.no_update
        return done.message, _bump(version), ""
