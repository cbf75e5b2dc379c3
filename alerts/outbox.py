"""The delivery outbox: events → deliveries (one per person told) → e-mails → sent.

SQLAlchemy Core on the tables of alerts/delivery_tables.py; SQLite and PostgreSQL. Every
change of several rows is one transaction, so the evaluator can die between any two calls
and its successor (the next lease holder) carries on from what the database says:

    route         a pending event → alert_deliveries rows, the event → "routed"
    queue_email   one rendered e-mail per person → alert_emails (pending), its deliveries
                  → "emailed" with the e-mail's id
    claim_due     due e-mails → "sending", claimed by one sender until ``claimed_until``
                  (a sender that died leaves rows another one reclaims after that)
    mark_*        sent | back to pending with the next attempt's time | failed for good

The read-only queries (told, failed_emails, counts) are alerts/outbox_reads.py, mixed into
:class:`Outbox`.

The only e-mail that can go twice is one the SMTP server accepted just before its sender
died, unmarked: it is reclaimed and sent again with the same Message-ID.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from alerts.delivery_tables import alert_deliveries, alert_emails
from alerts.facts import AlertFacts, Person
from alerts.outbox_reads import OutboxReads, person_of_row
from alerts.outbox_reads import ToldRow as ToldRow  # callers import it from here
from alerts.repository import (
    _database_error,
    chunks,
    insert_for,
    notification_log,
    parse_facts,
    transaction,
)
from core.clock import SystemClock
from core.ports import Clock
from core.types import Notification

NO_FACTS = "recorded before the upgrade: no facts to write an e-mail from"
NOBODY = "nobody to tell"


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A person still to be e-mailed about one event."""

    id: int
    event_id: int
    person: Person
    step: int  # the duty chain's step the person was told at
    facts: AlertFacts
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EmailRow:
    """A claimed e-mail, ready for the Notifier."""

    id: int
    recipient: str
    lang: str
    attempts: int  # tries so far, before this one
    notification: Notification  # recipients (recipient,), headers with the Message-ID


class Outbox(OutboxReads):
    """Deliveries and e-mails of the alert engine in the SQL state database. Database
    errors become RetryableError (unreachable, locked) or PermanentError."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock: Clock = clock or SystemClock()
        self._insert = insert_for(engine)

    # -- route -----------------------------------------------------------------------

    def route(self, event_id: int, people: Sequence[tuple[Person, int]], *, now: datetime) -> int:
        """The event's people (with the chain step each is told at) as deliveries, and the
        event → "routed", in one transaction; returns how many deliveries were added. An
        event no longer pending gets nothing; one without facts (from before the upgrade)
        or without anybody to tell is dropped with that reason."""
        log_c = notification_log.c
        with transaction(self._engine, f"route alert event {event_id}") as connection:
            found = connection.execute(
                select(log_c.status, log_c.facts.is_(None)).where(log_c.id == event_id)
            ).one_or_none()
            if found is None:
                raise ValueError(f"there is no alert event {event_id}")
            status, no_facts = found
            if status != "pending":
                return 0
            if no_facts or not people:
                self._set_event(connection, event_id, "dropped", NO_FACTS if no_facts else NOBODY)
                return 0
            self._set_event(connection, event_id, "routed", None)
            added = 0
            for person, step in people:
                statement = (
                    self._insert(alert_deliveries)
                    .values(_delivery_row(event_id, person, step, now))
                    .on_conflict_do_nothing(index_elements=["event_id", "email"])
                    .returning(alert_deliveries.c.id)
                )
                added += connection.execute(statement).scalar_one_or_none() is not None
            return added

    def drop_event(self, event_id: int, reason: str) -> None:
        """A pending event → "dropped" with ``reason`` (acknowledged before it went out,
        nobody to tell); an event no longer pending is left as it is."""
        with transaction(self._engine, f"drop alert event {event_id}") as connection:
            self._set_event(connection, event_id, "dropped", reason)

    def _set_event(
        self, connection: Connection, event_id: int, status: str, reason: str | None
    ) -> None:
        connection.execute(
            update(notification_log)
            .where(notification_log.c.id == event_id, notification_log.c.status == "pending")
            .values(status=status, status_reason=reason)
        )

    # -- group -----------------------------------------------------------------------

    def pending_deliveries(self, limit: int = 5000) -> list[DeliveryRow]:
        """Deliveries not yet in an e-mail, oldest first, with their event's facts."""
        d = alert_deliveries.c
        query = (
            select(alert_deliveries, notification_log.c.facts)
            .join(notification_log, notification_log.c.id == d.event_id)
            .where(d.status == "pending", notification_log.c.facts.is_not(None))
            .order_by(d.id)
            .limit(limit)
        )
        with transaction(self._engine, "read the pending alert deliveries") as connection:
            rows = connection.execute(query).mappings().all()
        found: list[DeliveryRow] = []
        for row in rows:
            facts = parse_facts(row["facts"], row["event_id"])
            if facts is not None:
                found.append(
                    DeliveryRow(
                        id=row["id"],
                        event_id=row["event_id"],
                        person=person_of_row(row),
                        step=row["step"],
                        facts=facts,
                        created_at=row["created_at"],
                    )
                )
        return found

    def drop_deliveries(self, ids: Sequence[int], reason: str) -> None:
        """Pending deliveries → "dropped" with ``reason`` (e.g. acknowledged meanwhile)."""
        d = alert_deliveries.c
        with transaction(self._engine, f"drop {len(ids)} alert deliveries") as connection:
            for chunk in chunks(ids):
                connection.execute(
                    update(alert_deliveries)
                    .where(d.id.in_(chunk), d.status == "pending")
                    .values(status="dropped", reason=reason)
                )

    def last_email_at(self, emails: Collection[str]) -> dict[str, datetime]:
        """When each address's newest e-mail was written (for grouping's interval)."""
        wanted = sorted(set(emails))
        e = alert_emails.c
        found: dict[str, datetime] = {}
        with transaction(self._engine, "read when people were last e-mailed") as connection:
            for start in range(0, len(wanted), 500):
                query = (
                    select(e.recipient, func.max(e.created_at))
                    .where(e.recipient.in_(wanted[start : start + 500]))
                    .group_by(e.recipient)
                )
                found.update((recipient, newest) for recipient, newest in connection.execute(query))
        return found

    def queue_email(
        self,
        person: Person,
        notification: Notification,
        delivery_ids: Sequence[int],
        *,
        now: datetime,
    ) -> int:
        """The e-mail (due now) and its deliveries → "emailed", in one transaction; returns
        the e-mail's id. Deliveries no longer pending are left as they are."""
        message_id = notification.headers.get("Message-ID")
        if not message_id:
            raise ValueError(f"the e-mail to {person.email} has no Message-ID header")
        images = notification.images
        row = {
            "recipient": person.email,
            "lang": person.lang,
            "status": "pending",
            "subject": notification.subject,
            "body_text": notification.body_text,
            "body_html": notification.body_html,
            "headers": json.dumps(dict(notification.headers), ensure_ascii=False),
            "images": json.dumps(
                {cid: base64.b64encode(data).decode("ascii") for cid, data in images.items()}
            ),
            "message_id": message_id,
            "created_at": now,
            "next_attempt_at": now,
            "attempts": 0,
        }
        d = alert_deliveries.c
        with transaction(self._engine, f"queue an e-mail to {person.email}") as connection:
            email_id = int(
                connection.execute(
                    insert(alert_emails).returning(alert_emails.c.id), row
                ).scalar_one()
            )
            for chunk in chunks(delivery_ids):
                connection.execute(
                    update(alert_deliveries)
                    .where(d.id.in_(chunk), d.status == "pending")
                    .values(status="emailed", email_id=email_id)
                )
        return email_id

    # -- send ------------------------------------------------------------------------

    @contextmanager
    def _claiming(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                if connection.dialect.name == "sqlite":
                    # The write lock from the start: a second claimer waits (busy_timeout)
                    # and then reads what the first one wrote.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                yield connection
        except SQLAlchemyError as exc:
            raise _database_error(exc, "claim due e-mails") from exc

    def claim_due(
        self, holder: str, *, now: datetime, lease_s: float, limit: int = 50
    ) -> list[EmailRow]:
        """Take up to ``limit`` e-mails that are due (pending with ``next_attempt_at <=
        now``, or "sending" by a sender whose claim ran out): "sending", claimed by
        ``holder`` until now + lease_s. Oldest first. Two claimers never get the same one."""
        e = alert_emails.c
        due = or_(
            and_(e.status == "pending", e.next_attempt_at <= now),
            and_(e.status == "sending", e.claimed_until < now),
        )
        query = select(e.id).where(due).order_by(e.id).limit(limit)
        if self._engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self._claiming() as connection:
            ids = list(connection.execute(query).scalars())
            if not ids:
                return []
            # The condition again: only rows still as they were read are taken.
            claimed = connection.execute(
                update(alert_emails)
                .where(e.id.in_(ids), due)
                .values(
                    status="sending",
                    claimed_by=holder,
                    claimed_until=now + timedelta(seconds=lease_s),
                )
                .returning(e.id)
            ).scalars()
            rows = connection.execute(
                select(alert_emails).where(e.id.in_(list(claimed))).order_by(e.id)
            ).mappings()
            return [_email_row(row) for row in rows]

    def mark_sent(self, email_id: int, *, now: datetime) -> None:
        """The SMTP server took it. Final."""
        e = alert_emails.c
        self._finish(email_id, e.status != "sent", status="sent", sent_at=now, last_attempt_at=now)

    def mark_retry(
        self, email_id: int, *, now: datetime, error: str, next_attempt_at: datetime
    ) -> None:
        """Not taken this time (server down, 4xx): pending again from ``next_attempt_at``."""
        e = alert_emails.c
        self._finish(
            email_id,
            e.status == "sending",
            status="pending",
            next_attempt_at=next_attempt_at,
            last_attempt_at=now,
            last_error=error,
        )

    def mark_failed(self, email_id: int, *, now: datetime, error: str) -> None:
        """Refused for good (5xx, bad address): shown in the alerts console."""
        e = alert_emails.c
        self._finish(
            email_id, e.status == "sending", status="failed", last_attempt_at=now, last_error=error
        )

    def _finish(self, email_id: int, condition: Any, **values: Any) -> None:
        """One attempt more, the claim let go, and ``values``; only when ``condition``."""
        e = alert_emails.c
        with transaction(self._engine, f"record e-mail {email_id}'s outcome") as connection:
            connection.execute(
                update(alert_emails)
                .where(e.id == email_id, condition)
                .values(attempts=e.attempts + 1, claimed_by=None, claimed_until=None, **values)
            )


def _delivery_row(event_id: int, person: Person, step: int, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "email": person.email,
        "name": person.name,
        "lang": person.lang,
        "person_unit": person.unit_code,
        "step": step,
        "status": "pending",
        "created_at": now,
    }


def _email_row(row: Any) -> EmailRow:
    images = {cid: base64.b64decode(data) for cid, data in json.loads(row["images"]).items()}
    notification = Notification(
        recipients=(row["recipient"],),
        subject=row["subject"],
        body_text=row["body_text"],
        body_html=row["body_html"],
        headers=json.loads(row["headers"]),
        images=images,
    )
    return EmailRow(row["id"], row["recipient"], row["lang"], row["attempts"], notification)
