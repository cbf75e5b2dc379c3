"""Who is told about alerts, for the console: the duty roster now, who was e-mailed about
each episode and whether the e-mail went, the e-mails that failed for good and the queue
still waiting. No Dash; every answer within one user's :class:`~dashboard.access.Access`.

The alert engine writes all of this (docs/design/014-alert-delivery.md): an event per
(rule, unit, episode, kind) in ``notification_log``, one ``alert_deliveries`` row per
person told about it, and the ``alert_emails`` that carried them. An alert of a rule at
the ``device`` level names a device, not a unit: its unit (for access and for the duty
chain) is the device's in the registry; a device the registry does not know is an
admin's only, like an unknown unit code.

The queries here take what they need from an :class:`~dashboard.alerts_data.AlertSource`
(only its attributes: this module is imported by dashboard/alerts_data.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, Final, Literal

import pandas as pd
from sqlalchemy import and_, func, select, tuple_

from alerts.actions import AckKey, Note
from alerts.delivery_tables import alert_deliveries, alert_emails
from alerts.facts import DutyStep, Person
from alerts.outbox import Outbox, ToldRow
from alerts.repository import notification_log, transaction
from alerts.roster import DESK_LABEL, DESK_NAME, Roster
from core.settings_base import Label
from dashboard.access import Access
from layers.registry import Device

if TYPE_CHECKING:
    from dashboard.alerts_data import AlertSource

DEVICE_LEVEL: Final = "device"
WAITING: Final = ("pending", "sending")  # e-mails not sent yet
QUEUE_WARN_S: Final = 120.0  # a due e-mail is sent within seconds: older means trouble
FAILED_LIMIT: Final = 50  # the newest failed e-mails shown
_FAILED_SCAN: Final = 500  # read this many to find the newest of the user's units
_CHUNK: Final = 500  # keys per statement, well under SQLite's parameter limit

FAILED_COLUMNS: Final = [
    "id",
    "recipient",
    "subject",  # None when the e-mail also carried alerts of units out of the user's reach
    "alerts",
    "hidden_alerts",
    "last_error",
    "attempts",
    "created_at",
    "last_attempt_at",
]


def sees_anything(access: Access) -> bool:
    return access.everything or bool(access.units)


def device_map(source: AlertSource) -> dict[str, Device]:
    return {device.device_id: device for device in source.devices()}


def at_device(source: AlertSource, rule_id: str) -> bool:
    rule = source.rules.get(rule_id)
    return rule is not None and rule.level == DEVICE_LEVEL


def alert_unit(
    source: AlertSource, rule_id: str, code: str, devices: Mapping[str, Device] | None = None
) -> str | None:
    """The administrative unit an alert is about: ``code`` itself, or for a rule at the
    device level the device's unit (None when the registry does not place it)."""
    if not at_device(source, rule_id):
        return code
    device = (devices if devices is not None else device_map(source)).get(code)
    return device.unit_code if device is not None else None


def place_name(
    source: AlertSource,
    rule_id: str,
    code: str,
    lang: str,
    devices: Mapping[str, Device] | None = None,
) -> str:
    """The unit's full name; for a device "Trạm Hải Vân 1 (aq-0001), Phường Hải Vân, …"."""
    if not at_device(source, rule_id):
        return source.unit_name(code, lang)
    device = (devices if devices is not None else device_map(source)).get(code)
    if device is None:
        return code
    named = f"{device.name} ({code})" if device.name else code
    return f"{named}, {source.unit_name(device.unit_code, lang)}" if device.unit_code else named


def sees_alert(access: Access, unit: str | None) -> bool:
    """Whether ``access`` sees an alert about ``unit`` (from :func:`alert_unit`)."""
    return access.can_see(unit) if unit is not None else access.everything


# ---------------------------------------------------------------------------- roster


_ROSTERS: dict[tuple[Any, ...], Roster] = {}
_ROSTERS_LOCK = threading.Lock()


def load_roster(source: AlertSource) -> Roster:
    """The duty roster of the settings (ConfigError naming a bad entry or CSV line), read
    again only when the roster file changes, not on every refresh of the page."""
    settings = source.settings
    path = settings.alerts.roster_file
    mtime_ns = size = 0
    if path is not None:
        try:
            stat = settings.path(path).stat()
            mtime_ns, size = stat.st_mtime_ns, stat.st_size
        except OSError:
            pass  # Roster.from_settings names the missing file
    alerts = settings.alerts
    key = (
        tuple(alerts.roster),
        settings.site.timezone,
        settings.hierarchy.units_file,
        None if path is None else str(settings.path(path)),
        mtime_ns,
        size,
    )
    with _ROSTERS_LOCK:
        cached = _ROSTERS.get(key)
    if cached is not None:
        return cached
    roster = Roster.from_settings(
        settings, known_unit=lambda code: source.hierarchy.get(code) is not None
    )
    with _ROSTERS_LOCK:
        _ROSTERS.clear()  # one roster per dashboard: the newest
        _ROSTERS[key] = roster
    return roster


def unit_label(source: AlertSource, code: str) -> Label:
    return Label(vi=source.unit_name(code, "vi"), en=source.unit_name(code, "en"))


def duty_chain(
    source: AlertSource, roster: Roster, unit: str | None, at: datetime
) -> list[DutyStep]:
    """Who an alert about ``unit`` goes to at ``at``, step by step, as the alert engine
    routes it (alerts/dispatch.py): the unit's officers on duty, the units above, the desk."""
    hierarchy = source.hierarchy
    if unit is None or hierarchy.get(unit) is None:
        start, parents = unit or "", []
    else:
        start = unit
        parents = [found.code for found in hierarchy.ancestors(unit)][::-1][1:]
    return roster.chain(
        start,
        parents,
        at,
        desk=source.settings.alerts.recipients,
        unit_name=lambda code: unit_label(source, code),
    )


@dataclass(frozen=True, slots=True)
class OnDuty:
    """Who is on duty now for one unit (``unit_code`` None: the duty desk)."""

    unit_code: str | None
    unit_name: str
    people: tuple[Person, ...]


def on_duty(source: AlertSource, access: Access, lang: str = "vi") -> list[OnDuty]:
    """Who is on duty now in the units the user reaches (their units, what is inside them
    and the units above, where an alert climbs), highest unit first; the desk last.
    ConfigError when the roster cannot be read."""
    if not sees_anything(access):
        return []
    roster = load_roster(source)
    now = source.clock.now()
    hierarchy = source.hierarchy
    units = {entry.unit for entry in roster.entries() if access.reaches(entry.unit)}
    ordered = sorted(
        units, key=lambda code: (len(hierarchy.ancestors(code)), source.unit_name(code, lang))
    )
    found = [
        OnDuty(code, source.unit_name(code, lang), people)
        for code in ordered
        if (people := roster.on_duty(code, now))
    ]
    desk = tuple(
        Person(email=address, name=DESK_NAME) for address in source.settings.alerts.recipients
    )
    if desk:
        found.append(OnDuty(None, DESK_LABEL.get(lang), desk))
    return found


def person_text(person: Person) -> str:
    """ "Nguyễn Văn An <an@example.vn>"; the duty desk by its address."""
    return person.email if person.name == DESK_NAME else f"{person.name} <{person.email}>"


def chain_text(steps: Sequence[DutyStep], lang: str) -> str:
    """The chain in one line (the CSV): "0. Phường Hải Vân, …: An <an@…>; 1. Trực ban: …"."""
    return "; ".join(
        f"{step.step}. {step.unit_name.get(lang)}: "
        + ", ".join(person_text(person) for person in step.people)
        for step in steps
    )


# ---------------------------------------------------------------------------- told


@dataclass(frozen=True, slots=True)
class Told:
    """One person told about an episode: the chain step they were first told at, and
    whether any of their e-mails went (when the first did), else pending or failed."""

    person: Person
    step: int
    status: Literal["sent", "pending", "failed"]
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class EpisodeDelivery:
    """What the outbox holds about one episode."""

    told: tuple[ToldRow, ...] = ()
    firing_status: str | None = None  # notification_log.status of its "firing" event

    def people(self) -> tuple[Told, ...]:
        """Each person once, in the order they were told."""
        found: dict[str, list[ToldRow]] = {}
        for row in self.told:
            found.setdefault(row.person.email.lower(), []).append(row)
        people = []
        for rows in found.values():
            sent = [row.sent_at for row in rows if row.email_status == "sent" and row.sent_at]
            status: Literal["sent", "pending", "failed"] = "pending"
            if any(row.email_status == "sent" for row in rows):
                status = "sent"
            elif any(row.email_status == "failed" for row in rows):
                status = "failed"
            people.append(
                Told(rows[0].person, min(row.step for row in rows), status, min(sent, default=None))
            )
        return tuple(people)

    def email_status(self) -> str:
        """The e-mail of the firing event: ``failed`` when one of its e-mails failed,
        ``pending`` while one is still to go, ``sent`` when all went, ``none`` when nobody
        was e-mailed; without deliveries the event's own status (silenced, suppressed,
        dropped, or sent/failed for events from before the outbox)."""
        firing = [row.email_status for row in self.told if row.kind == "firing"]
        if firing:
            if "failed" in firing:
                return "failed"
            return "sent" if all(status == "sent" for status in firing) else "pending"
        status = self.firing_status
        if status in ("pending", "sent", "failed", "silenced", "suppressed", "dropped"):
            return status
        return "none"


def _person(row: Mapping[str, Any]) -> Person:
    lang: Literal["vi", "en"] = "en" if row["lang"] == "en" else "vi"
    return Person(row["email"], row["name"], lang, row["person_unit"])


def deliveries(
    source: AlertSource, keys: Iterable[AckKey | tuple[str, str, int]]
) -> dict[AckKey, EpisodeDelivery]:
    """Per episode that has events: who was told (dropped deliveries left out), each
    e-mail's status, and the firing event's status. One statement per 500 episodes."""
    wanted = sorted({AckKey(*key) for key in keys})
    log_c, d, e = notification_log.c, alert_deliveries.c, alert_emails.c
    episode = tuple_(log_c.rule_id, log_c.unit_code, log_c.episode)
    rows: list[Any] = []
    with transaction(source.engine, "read who was told of alerts") as connection:
        for start in range(0, len(wanted), _CHUNK):
            query = (
                select(
                    log_c.id.label("event_id"),
                    log_c.rule_id,
                    log_c.unit_code,
                    log_c.episode,
                    log_c.kind,
                    log_c.status.label("event_status"),
                    d.id.label("delivery_id"),
                    d.email,
                    d.name,
                    d.lang,
                    d.person_unit,
                    d.step,
                    d.status.label("delivery_status"),
                    e.status.label("email_status"),
                    e.sent_at,
                )
                .select_from(notification_log)
                .outerjoin(alert_deliveries, and_(d.event_id == log_c.id, d.status != "dropped"))
                .outerjoin(alert_emails, e.id == d.email_id)
                .where(episode.in_(wanted[start : start + _CHUNK]))
                .order_by(log_c.id, d.id)
            )
            rows.extend(connection.execute(query).mappings())
    told: dict[AckKey, list[ToldRow]] = {}
    firing: dict[AckKey, str] = {}
    for row in rows:
        key = AckKey(row["rule_id"], row["unit_code"], row["episode"])
        told.setdefault(key, [])
        if row["kind"] == "firing":
            firing[key] = row["event_status"]
        if row["delivery_id"] is not None:
            told[key].append(
                ToldRow(
                    _person(row),
                    row["step"],
                    row["kind"],
                    row["event_id"],
                    row["delivery_status"],
                    row["email_status"],
                    row["sent_at"],
                )
            )
    return {key: EpisodeDelivery(tuple(rows_), firing.get(key)) for key, rows_ in told.items()}


def told_text(people: Sequence[Told], tz: tzinfo) -> str:
    """Who was told in one line (the CSV): "An <an@…> (0): sent 2026-11-02 08:05; …"."""
    parts = []
    for told in people:
        when = f" {told.sent_at.astimezone(tz):%Y-%m-%d %H:%M}" if told.sent_at else ""
        parts.append(f"{person_text(told.person)} ({told.step}): {told.status}{when}")
    return "; ".join(parts)


def notes_text(notes: Sequence[Note], tz: tzinfo) -> str:
    """The notes in one line (the CSV): "2026-11-02 08:05 hai-van: Đã xử lý | …"."""
    return " | ".join(
        f"{note.at.astimezone(tz):%Y-%m-%d %H:%M} {note.author}: {note.text}" for note in notes
    )


# ---------------------------------------------------------------------------- e-mails


@dataclass(frozen=True, slots=True)
class EmailQueue:
    """E-mails not yet sent: how many, since when the oldest waits, the last error of a
    retried one (an SMTP outage shows here), and deliveries not yet in an e-mail."""

    waiting: int
    oldest: datetime | None
    last_error: str | None
    undelivered: int

    def age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.oldest).total_seconds()) if self.oldest else 0.0

    def stuck(self, now: datetime) -> bool:
        return self.age_s(now) > QUEUE_WARN_S


def email_queue(source: AlertSource, access: Access) -> EmailQueue | None:
    """The outbox's queue (the whole deployment's: one SMTP server serves every unit);
    None for a user who sees nothing."""
    if not sees_anything(access):
        return None
    counts = Outbox(source.engine, source.clock).counts()
    e = alert_emails.c
    with transaction(source.engine, "read the e-mail queue") as connection:
        oldest = connection.execute(
            select(func.min(e.created_at)).where(e.status.in_(WAITING))
        ).scalar_one_or_none()
        last_error = connection.execute(
            select(e.last_error)
            .where(e.status.in_(WAITING), e.last_error.is_not(None))
            .order_by(e.last_attempt_at.desc(), e.id.desc())
            .limit(1)
        ).scalar_one_or_none()
    waiting = sum(counts.get(status, 0) for status in WAITING)
    return EmailQueue(waiting, oldest, last_error, counts.get("deliveries_pending", 0))


def failed_emails(
    source: AlertSource, access: Access, lang: str = "vi", limit: int = FAILED_LIMIT
) -> pd.DataFrame:
    """E-mails refused for good that carried an alert of the user's units, newest first,
    with those alerts ("title – unit"); the subject only when every alert it carried is
    the user's (a grouped e-mail to the province names other communes)."""
    if not sees_anything(access):
        return pd.DataFrame([], columns=FAILED_COLUMNS)
    devices = device_map(source)
    records = []
    for email in Outbox(source.engine, source.clock).failed_emails(_FAILED_SCAN):
        carried = email["alerts"]
        mine = [
            (rule_id, code)
            for rule_id, code in carried
            if sees_alert(access, alert_unit(source, rule_id, code, devices))
        ]
        if not mine and not access.everything:
            continue
        records.append(
            {
                "id": email["id"],
                "recipient": email["recipient"],
                "subject": email["subject"] if len(mine) == len(carried) else None,
                "alerts": "; ".join(
                    f"{source.title(rule, lang)} – {place_name(source, rule, code, lang, devices)}"
                    for rule, code in mine
                ),
                "hidden_alerts": len(carried) - len(mine),
                "last_error": email["last_error"],
                "attempts": email["attempts"],
                "created_at": email["created_at"],
                "last_attempt_at": email["last_attempt_at"],
            }
        )
        if len(records) >= limit:
            break
    frame = pd.DataFrame(records, columns=FAILED_COLUMNS)
    for column in ("created_at", "last_attempt_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
