"""Shared setup of the alerts console tests: a state database on a SQLite file with alert
states, events, deliveries and e-mails written as the alert engine writes them, the
shipped configuration (rules pm25-bad, flood-alarm-3, air-no-data at the device level …)
and geography (Đà Nẵng: 48, with the communes 20194 Hải Vân and 20260 Cẩm Lệ), a duty
roster, and crafted users' access."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, select, update

from alerts.delivery_tables import alert_deliveries, alert_emails
from alerts.facts import Person
from alerts.outbox import Outbox
from alerts.repository import alert_states, notification_log
from core.db import make_engine
from core.settings import Settings
from core.settings_alerts import RosterEntry
from core.types import Notification
from dashboard.access import Access
from dashboard.alerts_data import AlertSource
from layers.levels import Hierarchy
from layers.registry import Device
from tests.conftest import FakeClock

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội time
HAI_VAN, CAM_LE, DA_NANG = "20194", "20260", "48"

DEVICES = [
    Device("aq-0001", "air", "Trạm Hải Vân 1", 108.1, 16.1, HAI_VAN, {}),
    Device("aq-0002", "air", "Trạm Cẩm Lệ 1", 108.2, 16.0, CAM_LE, {}),
]


def state_db(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    return engine


def source(
    engine: Engine, settings: Settings, hierarchy: Hierarchy, clock: FakeClock
) -> AlertSource:
    made = AlertSource(engine, settings, hierarchy, clock, TZ, devices=lambda: DEVICES)
    made.prepare()
    return made


def add_state(
    engine: Engine,
    rule_id: str,
    unit_code: str,
    state: str,
    *,
    since: datetime = NOW,
    value: float | None = 92.4,
    fired_at: datetime | None = None,
    episode: int = 0,
    error: str | None = None,
) -> None:
    row: dict[str, Any] = {
        "rule_id": rule_id,
        "unit_code": unit_code,
        "state": state,
        "since": since,
        "value": value,
        "last_eval": NOW,
        "fired_at": fired_at,
        "active_at": fired_at,
        "resolved_at": None,
        "episode": episode,
        "error": error,
    }
    with engine.begin() as connection:
        connection.execute(insert(alert_states), row)


def add_log(
    engine: Engine,
    rule_id: str,
    unit_code: str,
    episode: int,
    kind: str,
    at: datetime,
    status: str = "sent",
    facts: str | None = None,
) -> int:
    """An event of the notification log; its id. Events the outbox routes need ``facts``
    (any text: routing only asks whether there are facts) and ``status="pending"``."""
    row: dict[str, Any] = {
        "rule_id": rule_id,
        "unit_code": unit_code,
        "episode": episode,
        "kind": kind,
        "status": status,
        "reason": "first" if kind == "firing" else "resolved",
        "created_at": at,
        "attempts": 1,
        "recipients": "[]",
        "subject": "s",
        "body_text": "b",
        "headers": "{}",
        "facts": facts,
    }
    with engine.begin() as connection:
        return int(
            connection.execute(
                insert(notification_log).returning(notification_log.c.id), row
            ).scalar_one()
        )


# ---------------------------------------------------------------------------- who is told

AN = Person("an@haivan.example.vn", "Nguyễn Văn An", "vi", HAI_VAN)
BINH = Person("binh@camle.example.vn", "Trần Thị Bình", "vi", CAM_LE)
CUONG = Person("cuong@danang.example.vn", "Phạm Văn Cường", "en", DA_NANG)
DESK = Person("truc-ban@example.gov.vn", "Trực ban")
SMTP_REFUSED = "550 5.1.1 <an@haivan.example.vn>: mailbox unavailable"


ROSTER = [
    # Hải Vân: An all day, and a night shift (19:00–07:00: off at 08:00, NOW).
    RosterEntry(unit=HAI_VAN, name=AN.name, email=AN.email),
    RosterEntry(
        unit=HAI_VAN, name="Lê Thị Đêm", email="dem@haivan.example.vn", start=time(19), end=time(7)
    ),
    RosterEntry(unit=CAM_LE, name=BINH.name, email=BINH.email),
    # The city: Cường on weekdays (NOW is a Monday), in English.
    RosterEntry(unit=DA_NANG, name=CUONG.name, email=CUONG.email, lang="en", days=(0, 1, 2, 3, 4)),
]


def with_roster(settings: Settings, roster: Sequence[RosterEntry] = ROSTER) -> Settings:
    """The shipped settings with this duty roster instead of the shipped one (no file)."""
    alerts = settings.alerts.model_copy(update={"roster": list(roster), "roster_file": None})
    return settings.model_copy(update={"alerts": alerts})


EmailOutcome = Literal["sent", "pending", "failed", "unwritten"]


def tell(
    engine: Engine,
    event_id: int,
    people: Sequence[tuple[Person, int, EmailOutcome]],
    at: datetime = NOW,
) -> list[int]:
    """Route a pending event to ``people`` (person, chain step, what became of their
    e-mail) through the outbox, as the alert engine does; the e-mails' ids ("unwritten":
    the delivery waits to be grouped, no e-mail yet)."""
    Outbox(engine).route(event_id, [(person, step) for person, step, _ in people], now=at)
    return [
        write_email(engine, person, [event_id], outcome, at)
        for person, _, outcome in people
        if outcome != "unwritten"
    ]


def write_email(
    engine: Engine,
    person: Person,
    event_ids: Sequence[int],
    outcome: EmailOutcome,
    at: datetime = NOW,
    subject: str = "[CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 — Phường Hải Vân",
) -> int:
    """One e-mail to ``person`` carrying their deliveries of these events (the grouping
    step), then what the sender made of it (mark_sent / mark_failed); its id."""
    d, e = alert_deliveries.c, alert_emails.c
    with engine.begin() as connection:
        deliveries = list(
            connection.execute(
                select(d.id).where(d.event_id.in_(event_ids), d.email == person.email)
            ).scalars()
        )
    notification = Notification(
        recipients=(person.email,),
        subject=subject,
        body_text="b",
        headers={"Message-ID": f"<{deliveries[0]}.{len(deliveries)}@cityops.test>"},
    )
    email_id = Outbox(engine).queue_email(person, notification, deliveries, now=at)
    values: dict[str, Any] = {}
    if outcome == "sent":
        values = {"status": "sent", "sent_at": at, "attempts": 1, "last_attempt_at": at}
    elif outcome == "failed":
        values = {"status": "failed", "attempts": 3, "last_attempt_at": at}
        values["last_error"] = SMTP_REFUSED
    if values:
        with engine.begin() as connection:
            connection.execute(update(alert_emails).where(e.id == email_id).values(values))
    return email_id


def officer(hierarchy: Hierarchy, unit: str, role: str = "operator") -> Access:
    return Access(hierarchy, [unit], role=role, username=f"{role}-{unit}")


def admin(hierarchy: Hierarchy) -> Access:
    return Access(hierarchy, [], everything=True, role="admin", username="root")
