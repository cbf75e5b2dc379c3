"""The alerts console's named queries and actions, always within one user's access.

Every function takes the user's :class:`~dashboard.access.Access` and returns only the
alerts, silences and people told of units that user may see (a device's alert is its
unit's); a unit out of reach answers exactly like a unit without alerts. Acting
(acknowledge, note, silence, cancel) needs a role that may act (admin, operator) **and**
the unit in reach: a crafted callback for another commune is refused with the same words
as an unknown one.

No Dash here: the page (dashboard/alerts_page.py) and the CSV exports call these. Who is
told and the e-mails are in dashboard/alerts_delivery.py, the silences in
dashboard/alerts_silences.py, the history of past alerts and the notes in
dashboard/alerts_history.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeVar
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine, RowMapping, select
from sqlalchemy.exc import SQLAlchemyError

from alerts import rule_text
from alerts.actions import (
    Ack,
    AckKey,
    ActionError,
    AlertActions,
    covering,
)
from alerts.repository import AlertRepository, alert_states
from core.errors import CityOpsError, RetryableError
from core.ports import Clock
from core.settings import AlertRule, Settings
from dashboard.access import Access
from dashboard.alerts_delivery import (
    EpisodeDelivery,
    alert_unit,
    chain_text,
    deliveries,
    device_map,
    duty_chain,
    load_roster,
    notes_text,
    place_name,
    sees_alert,
    told_text,
)
from layers.levels import Hierarchy
from layers.registry import Device

if TYPE_CHECKING:
    from dashboard.context import DashboardContext

log = logging.getLogger("cityops.dashboard")
T = TypeVar("T")

ACTIVE_STATES: Final = ("pending", "firing", "no_data", "error")
SEVERITIES: Final = ("critical", "warning", "info")
_STATE_RANK: Final = {"firing": 0, "no_data": 1, "error": 2, "pending": 3}

ACTIVE_COLUMNS: Final = [
    "rule_id",
    "title",
    "severity",
    "metric",
    "unit_code",
    "level",
    "unit_name",
    "state",
    "value",
    "metric_unit",
    "since",
    "fired_at",
    "episode",
    "acked_by",
    "acked_at",
    "ack_comment",
    "silence_id",
    "silenced_until",
    "silence_reason",
    "on_duty",  # the duty chain now, one line
    "told",  # who was told, with their e-mail's status, one line
    "email_status",  # of the firing event: sent | pending | failed | none | silenced ...
    "notes",
    "duty_steps",
    "told_rows",
    "note_rows",
]
# Objects for the page's cells; the CSV has the one-line texts above instead.
OBJECT_COLUMNS: Final = ("duty_steps", "told_rows", "note_rows")
ERROR_COLUMNS: Final = ["rule_id", "title", "units", "error"]


class NotAllowed(ActionError, PermissionError):
    """The user's role may not act, or the unit is not theirs (the same words as an
    unknown unit, so a refusal tells nothing about other units)."""


class NoSuchAlert(ActionError, LookupError):
    """No open alert with this key among the user's units (resolved since, or never)."""


def role_refused() -> NotAllowed:
    return NotAllowed(
        "vai trò của bạn chỉ được xem, không được xác nhận hay tạm tắt cảnh báo",
        "your role may view alerts but not acknowledge or silence them",
    )


def not_yours(what_vi: str, what_en: str) -> NotAllowed:
    return NotAllowed(
        f"không có {what_vi} này trong các đơn vị của bạn",
        f"there is no such {what_en} in your units",
    )


@dataclass(frozen=True, slots=True)
class AlertSource:
    """What the queries read: the state database, the rules, the units and devices."""

    engine: Engine
    settings: Settings
    hierarchy: Hierarchy
    clock: Clock
    tz: ZoneInfo
    devices: Callable[[], Sequence[Device]] = field(default=lambda: [])

    @classmethod
    def from_context(cls, ctx: DashboardContext) -> AlertSource:
        if ctx.state_engine is None:
            raise RetryableError("the dashboard has no state database for alerts")
        return cls(
            ctx.state_engine,
            ctx.settings,
            ctx.hierarchy,
            ctx.clock,
            ctx.tz,
            devices=ctx.data.registry,
        )

    @property
    def actions(self) -> AlertActions:
        return AlertActions(self.engine, self.clock)

    @property
    def rules(self) -> dict[str, AlertRule]:
        return {rule.id: rule for rule in self.settings.alerts.rules}

    def prepare(self) -> None:
        """Create or migrate the tables read here (the alert engine may not have run yet:
        then the console shows no alerts instead of an error)."""
        self.actions.migrate()
        try:
            AlertRepository(self.engine).create_schema()
        except CityOpsError:
            # The alert engine starting at the same moment may have created a table
            # between our check and our CREATE; a second look finds it there.
            time.sleep(0.2)
            AlertRepository(self.engine).create_schema()

    def unit_name(self, code: str, lang: str) -> str:
        return self.hierarchy.full_name(code, lang) if self.hierarchy.get(code) else code

    def title(self, rule_id: str, lang: str) -> str:
        rule = self.rules.get(rule_id)
        if rule is None:
            return rule_id
        if rule.title is not None:
            return rule.title.get(lang)
        metric = self.settings.metrics.get(rule.metric)
        return rule_text.title(rule, metric).get(lang) if metric is not None else rule_id

    def device_units(self) -> dict[str, str | None]:
        return {device.device_id: device.unit_code for device in self.devices()}


def _states(source: AlertSource, access: Access) -> list[RowMapping]:
    """Rows of alert_states in an active state for the rules configured now (a rule taken
    out of the configuration is never evaluated again: its rows are left out), visible."""
    query = select(alert_states).where(alert_states.c.state.in_(ACTIVE_STATES))
    try:
        with source.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
    except SQLAlchemyError as exc:
        raise RetryableError(f"alert states could not be read: {exc}") from exc
    rules = source.rules
    devices = device_map(source)
    return [
        row
        for row in rows
        if row["rule_id"] in rules
        and sees_alert(access, alert_unit(source, row["rule_id"], row["unit_code"], devices))
    ]


def times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def optional(what: str, read: Callable[[], T]) -> T | None:
    """A part of the active list read on its own: when the database or the roster fails
    it, the list still shows, that part "không có dữ liệu" (logged)."""
    try:
        return read()
    except CityOpsError as exc:
        log.warning("alerts console: %s could not be read: %s", what, exc)
        return None


def active_alerts(source: AlertSource, access: Access, lang: str = "vi") -> pd.DataFrame:
    """Pending, firing and no-data alerts (and errors inside an open episode) of the units
    the user sees, with the rule's title and severity, the unit's full name, the current
    acknowledgement, the silence muting it, the duty chain now, who was told and how their
    e-mail went, and the notes. Most severe first, then firing before the others, then the
    most recent. The ``*_rows``/``duty_steps`` columns hold objects for the page (the CSV
    leaves them out: :func:`exportable`)."""
    rules = source.rules
    now = source.clock.now()
    devices = device_map(source)
    rows = [
        row
        for row in _states(source, access)
        if row["state"] != "error" or row["fired_at"] is not None
    ]
    keys = [
        AckKey(row["rule_id"], row["unit_code"], row["episode"])
        for row in rows
        if row["fired_at"] is not None
    ]
    acks = source.actions.acks(keys)
    silences = source.actions.active_silences(now)
    roster = optional("the duty roster", lambda: load_roster(source))
    outbox = optional("who was told", lambda: deliveries(source, keys))
    notes = optional("the notes", lambda: source.actions.notes(keys))
    records = []
    for row in rows:
        rule = rules[row["rule_id"]]
        code = row["unit_code"]
        unit = source.hierarchy.get(code)
        place = alert_unit(source, rule.id, code, devices)
        metric = source.settings.metrics.get(rule.metric)
        key = AckKey(rule.id, code, row["episode"])
        fired = row["fired_at"] is not None
        ack = acks.get(key)
        device = code if place != code else None
        muted = covering(silences, rule.id, place or code, device, source.hierarchy)
        chain = duty_chain(source, roster, place, now) if roster is not None else None
        sent = (outbox.get(key) or EpisodeDelivery()) if outbox is not None and fired else None
        told = sent.people() if sent is not None else None
        written = tuple(notes.get(key, ())) if notes is not None and fired else None
        records.append(
            {
                "rule_id": rule.id,
                "title": source.title(rule.id, lang),
                "severity": rule.severity,
                "metric": rule.metric,
                "unit_code": code,
                "level": unit.level if unit else None,
                "unit_name": place_name(source, rule.id, code, lang, devices),
                "state": row["state"],
                "value": row["value"],
                "metric_unit": metric.unit if metric else "",
                "since": row["since"],
                "fired_at": row["fired_at"],
                "episode": row["episode"] if fired else None,
                "acked_by": ack.acked_by if ack else None,
                "acked_at": ack.acked_at if ack else None,
                "ack_comment": ack.comment if ack else None,
                "silence_id": muted.id if muted else None,
                "silenced_until": muted.ends_at if muted else None,
                "silence_reason": muted.reason if muted else None,
                "on_duty": chain_text(chain, lang) if chain is not None else None,
                "told": told_text(told, source.tz) if told is not None else None,
                "email_status": sent.email_status() if sent is not None else None,
                "notes": notes_text(written, source.tz) if written is not None else None,
                "duty_steps": chain,
                "told_rows": told,
                "note_rows": written,
            }
        )
    records.sort(key=lambda r: r["since"], reverse=True)
    records.sort(key=lambda r: (SEVERITIES.index(r["severity"]), _STATE_RANK[r["state"]]))
    frame = pd.DataFrame(records, columns=ACTIVE_COLUMNS)
    frame["episode"] = frame["episode"].astype("Int64")
    frame["silence_id"] = frame["silence_id"].astype("Int64")
    return times(frame, "since", "fired_at", "acked_at", "silenced_until")


def exportable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the columns of objects for the page (the CSV has their text)."""
    return frame.drop(columns=[column for column in OBJECT_COLUMNS if column in frame.columns])


def evaluation_errors(source: AlertSource, access: Access, lang: str = "vi") -> pd.DataFrame:
    """Per rule, how many of the user's units could not be evaluated (the store failed)
    outside an open episode: one line each instead of a row per unit."""
    found: dict[str, tuple[int, str]] = {}
    for row in _states(source, access):
        if row["state"] == "error" and row["fired_at"] is None:
            units, _ = found.get(row["rule_id"], (0, ""))
            found[row["rule_id"]] = (units + 1, row["error"] or "")
    records = [
        {"rule_id": rule_id, "title": source.title(rule_id, lang), "units": n, "error": error}
        for rule_id, (n, error) in sorted(found.items())
    ]
    return pd.DataFrame(records, columns=ERROR_COLUMNS)


def subtree(hierarchy: Hierarchy, code: str) -> list[str]:
    """``code`` and every unit inside it, parents before children."""
    found, queue = [], [code]
    while queue:
        current = queue.pop(0)
        found.append(current)
        queue.extend(child.code for child in hierarchy.children(current))
    return found


def unit_choices(source: AlertSource, access: Access, lang: str = "vi") -> list[tuple[str, str]]:
    """(code, "full name (code)") of the units the user sees, each top unit before what is
    inside it; an admin's start at the deployment's scope (``layers.scope``)."""
    if access.everything:
        scope = source.settings.layers.scope
        hierarchy = source.hierarchy
        if scope is not None and hierarchy.get(scope) is not None:
            tops = [scope]
        else:
            tops = [unit.code for unit in hierarchy.units_at(hierarchy.levels[0])]
    else:
        tops = access.top_units()
    codes: list[str] = []
    for top in tops:
        codes.extend(code for code in subtree(source.hierarchy, top) if code not in codes)
    return [(code, f"{source.unit_name(code, lang)} ({code})") for code in codes]


def codes_within(source: AlertSource, access: Access, unit: str | None) -> set[str] | None:
    """The unit codes a query may return: inside ``unit`` (None: anywhere) and visible.
    None means any code (an admin without a unit filter)."""
    if unit is None and access.everything:
        return None
    if unit is not None and source.hierarchy.get(unit) is None:
        return {unit} if access.everything else set()
    roots: Iterable[str] = [unit] if unit is not None else access.top_units()
    return {
        code for root in roots for code in subtree(source.hierarchy, root) if access.can_see(code)
    }


# ---------------------------------------------------------------------------- actions


def check_unit(access: Access, unit_code: str, what_vi: str, what_en: str) -> None:
    if not access.can_act:
        raise role_refused()
    if not isinstance(unit_code, str) or not access.can_see(unit_code):
        raise not_yours(what_vi, what_en)


def _open_episode(source: AlertSource, rule_id: str, unit_code: str) -> int | None:
    query = select(alert_states.c.episode, alert_states.c.fired_at).where(
        alert_states.c.rule_id == rule_id, alert_states.c.unit_code == unit_code
    )
    try:
        with source.engine.connect() as connection:
            row = connection.execute(query).one_or_none()
    except SQLAlchemyError as exc:
        raise RetryableError(f"alert state could not be read: {exc}") from exc
    return None if row is None or row.fired_at is None else int(row.episode)


def check_alert(source: AlertSource, access: Access, rule_id: str, unit_code: str) -> None:
    """The user may act on alerts of this unit (a device alert: of the device's unit)."""
    unit = alert_unit(source, rule_id, unit_code) if isinstance(unit_code, str) else None
    check_unit(access, unit if unit is not None else "", "cảnh báo", "alert")


def acknowledge(
    source: AlertSource,
    access: Access,
    rule_id: str,
    unit_code: str,
    episode: int,
    comment: str = "",
) -> Ack:
    """Acknowledge the open episode ``episode`` of (rule, unit) as the signed-in user.
    NoSuchAlert when it is no longer open (resolved, or a new episode since)."""
    check_alert(source, access, rule_id, unit_code)
    if _open_episode(source, rule_id, unit_code) != episode:
        raise NoSuchAlert(
            "cảnh báo này không còn mở (đã hết hoặc đã sang đợt mới); danh sách đã được cập nhật",
            "this alert is no longer open (resolved, or a new episode); the list is refreshed",
        )
    return source.actions.acknowledge(rule_id, unit_code, episode, access.username, comment)


def unacknowledge(
    source: AlertSource, access: Access, rule_id: str, unit_code: str, episode: int
) -> bool:
    """Withdraw the acknowledgements of an episode; False when it had none."""
    check_alert(source, access, rule_id, unit_code)
    return source.actions.unacknowledge(rule_id, unit_code, episode, access.username)
