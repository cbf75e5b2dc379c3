"""Alert state and the event log in the SQL state database (tables: alerts/delivery_tables.py).

SQLAlchemy Core; SQLite and PostgreSQL. Each evaluation writes its states **and** the
events they call for (a firing, a resolved; later escalations and reminders) in one
transaction, each event as a ``notification_log`` row with status "pending" and the
AlertFacts the e-mail will say. The delivery steps (alerts/outbox.py) take it from there.
A (rule, unit, episode, kind) event exists once: the unique constraint is the dedup key,
so an evaluation repeated after a crash adds nothing.

Event statuses: pending → routed (recipients chosen) | silenced → pending or suppressed
(alerts/silencing.py) | dropped (``status_reason`` says why: acknowledged before it went
out, nobody to tell). Rows from before the delivery outbox may say sent or failed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from alerts.delivery_tables import (
    COMPONENT,
    EVENT_STATUSES,
    MIGRATIONS,
    alert_states,
    metadata,
    notification_log,
)
from alerts.facts import AlertFacts, NotificationKey, event_kind_key
from alerts.state import STATE_NAMES, AlertState, StateName, Transition
from core.errors import PermanentError, RetryableError
from core.migrate import migrate
from core.ports import Clock

__all__ = [
    "AlertRepository",
    "EventKey",
    "EventRow",
    "NotificationKey",
    "alert_states",
    "metadata",
    "notification_log",
]

log = logging.getLogger("cityops.alerts.repository")

# (rule_id, unit_code, episode, kind key): one event, recorded once.
EventKey = NotificationKey

ID_CHUNK = 500  # ids per IN (...): well under SQLite's parameter limit

_STATE_COLUMNS = (
    "state",
    "since",
    "value",
    "last_eval",
    "fired_at",
    "active_at",
    "resolved_at",
    "episode",
    "error",
)


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event of the log. ``facts`` is None for rows from before the delivery outbox
    (or unreadable ones): nothing can be written from them."""

    id: int
    rule_id: str
    unit_code: str
    episode: int
    kind: str  # "firing", "resolved", "reminder-2", "escalation-1"
    facts: AlertFacts | None
    created_at: datetime
    status: str


def _database_error(exc: SQLAlchemyError, doing: str) -> RetryableError | PermanentError:
    message = f"state database could not {doing}: {exc}"
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or type(exc).__name__ in ("OperationalError", "InterfaceError")
    ):
        return RetryableError(message)
    return PermanentError(message)


@contextmanager
def transaction(engine: Engine, doing: str) -> Iterator[Connection]:
    """``engine.begin()`` with database errors as RetryableError or PermanentError."""
    try:
        with engine.begin() as connection:
            yield connection
    except SQLAlchemyError as exc:
        raise _database_error(exc, doing) from exc


def insert_for(engine: Engine) -> Callable[..., Any]:
    """The dialect's INSERT (with ON CONFLICT); SQLite and PostgreSQL only."""
    dialect = engine.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise PermanentError(f"alert state needs SQLite or PostgreSQL, not {dialect}")
    return sqlite.insert if dialect == "sqlite" else postgresql.insert


def chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), ID_CHUNK):
        yield unique[start : start + ID_CHUNK]


def parse_facts(text: str | None, row_id: int) -> AlertFacts | None:
    if text is None:
        return None
    try:
        return AlertFacts.from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("notification_log row %d has unreadable facts: %s", row_id, exc)
        return None


class AlertRepository:
    """alert_states + the event log. Database errors become RetryableError (unreachable,
    locked) or PermanentError."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock
        self._insert = insert_for(engine)

    def create_schema(self) -> None:
        """Bring the alert tables up to date (core.migrate; several processes at once are
        fine). Called once when the service starts."""
        try:
            migrate(self._engine, COMPONENT, MIGRATIONS, self._clock)
        except SQLAlchemyError as exc:
            raise _database_error(exc, "create the alert tables") from exc

    # -- alert states ---------------------------------------------------------------

    def load_states(self, rule_id: str) -> dict[str, AlertState]:
        """Every unit's state for one rule, by unit code."""
        query = select(alert_states).where(alert_states.c.rule_id == rule_id)
        with transaction(self._engine, f"read the states of rule {rule_id}") as connection:
            rows = connection.execute(query).mappings().all()
        return {row["unit_code"]: _state_from_row(row) for row in rows}

    def open_episodes(self) -> list[AlertState]:
        """States whose firing episode is open (``fired_at`` set), by rule and unit."""
        query = (
            select(alert_states)
            .where(alert_states.c.fired_at.is_not(None))
            .order_by(alert_states.c.rule_id, alert_states.c.unit_code)
        )
        with transaction(self._engine, "read the open alert episodes") as connection:
            return [_state_from_row(row) for row in connection.execute(query).mappings()]

    def save(
        self,
        transitions: Sequence[Transition],
        events: Sequence[tuple[EventKey, AlertFacts]],
        *,
        now: datetime,
    ) -> list[int]:
        """In one transaction: the new states, and the events they call for as pending
        rows. Returns the ids of the rows created (an event already in the log under the
        same key is not added again)."""
        rows = [_event_row(key, facts, now) for key, facts in events]
        with transaction(self._engine, f"save {len(transitions)} alert states") as connection:
            if transitions:
                statement = self._insert(alert_states)
                statement = statement.on_conflict_do_update(
                    index_elements=["rule_id", "unit_code"],
                    set_={name: statement.excluded[name] for name in _STATE_COLUMNS},
                )
                connection.execute(statement, [_state_row(t.current) for t in transitions])
            return self._add(connection, rows)

    def add_events(
        self, events: Sequence[tuple[EventKey, AlertFacts]], *, now: datetime
    ) -> list[int]:
        """Escalation and reminder events, as :meth:`save` records events (one transaction,
        an existing key is not added again); returns the ids of the rows created."""
        rows = [_event_row(key, facts, now) for key, facts in events]
        with transaction(self._engine, f"record {len(rows)} alert events") as connection:
            return self._add(connection, rows)

    def _add(self, connection: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
        created: list[int] = []
        for row in rows:
            statement = (
                self._insert(notification_log)
                .values(row)
                .on_conflict_do_nothing(index_elements=["rule_id", "unit_code", "episode", "kind"])
                .returning(notification_log.c.id)
            )
            row_id = connection.execute(statement).scalar_one_or_none()
            if row_id is not None:
                created.append(int(row_id))
        return created

    # -- events ----------------------------------------------------------------------

    def pending_events(self, limit: int = 500) -> list[EventRow]:
        """Events waiting to be routed, oldest first (a firing before its resolved)."""
        query = (
            select(notification_log)
            .where(notification_log.c.status == "pending")
            .order_by(notification_log.c.id)
            .limit(limit)
        )
        with transaction(self._engine, "read the pending alert events") as connection:
            return [event_from_row(row) for row in connection.execute(query).mappings()]

    def set_event_status(self, ids: Sequence[int], status: str, reason: str | None = None) -> None:
        """Move events that are still pending to ``status`` (with ``reason``, e.g. why
        dropped); events no longer pending are left as they are."""
        if status not in EVENT_STATUSES:
            raise ValueError(f"event status must be one of {', '.join(EVENT_STATUSES)}: {status}")
        log_c = notification_log.c
        with transaction(self._engine, f"mark {len(ids)} alert events {status}") as connection:
            for chunk in chunks(ids):
                connection.execute(
                    update(notification_log)
                    .where(log_c.id.in_(chunk), log_c.status == "pending")
                    .values(status=status, status_reason=reason)
                )

    def log_entries(self, rule_id: str | None = None) -> list[dict[str, Any]]:
        """The log, oldest first, for the CLI and tests; ``facts`` as AlertFacts (or None)."""
        query = select(notification_log).order_by(notification_log.c.id)
        if rule_id is not None:
            query = query.where(notification_log.c.rule_id == rule_id)
        with transaction(self._engine, "read the notification log") as connection:
            rows = connection.execute(query).mappings().all()
        return [{**row, "facts": parse_facts(row["facts"], row["id"])} for row in rows]


def event_from_row(row: Any) -> EventRow:
    return EventRow(
        id=int(row["id"]),
        rule_id=row["rule_id"],
        unit_code=row["unit_code"],
        episode=int(row["episode"]),
        kind=row["kind"],
        facts=parse_facts(row["facts"], row["id"]),
        created_at=row["created_at"],
        status=row["status"],
    )


def summary(facts: AlertFacts) -> str:
    """One line for the log: "Bụi mịn PM2.5 ở mức Xấu — Phường Hải Vân, Thành phố Đà Nẵng"."""
    return " ".join(f"{facts.title.vi} — {facts.unit_name.vi}".split())


def _event_row(key: EventKey, facts: AlertFacts, now: datetime) -> dict[str, Any]:
    named = (key.rule_id, key.unit_code, key.episode)
    if named != facts.key or key.kind != event_kind_key(facts.kind, facts.step):
        raise ValueError(f"event {key} does not match its facts {facts.key} {facts.kind}")
    return {
        "rule_id": key.rule_id,
        "unit_code": key.unit_code,
        "episode": key.episode,
        "kind": key.kind,
        "status": "pending",
        "reason": facts.kind,
        "created_at": now,
        "attempts": 0,
        "recipients": "[]",
        "subject": summary(facts),
        "body_text": "",
        "body_html": None,
        "headers": json.dumps({}),
        "facts": facts.to_json(),
    }


def _state_row(state: AlertState) -> dict[str, Any]:
    return {
        "rule_id": state.rule_id,
        "unit_code": state.unit_code,
        **{name: getattr(state, name) for name in _STATE_COLUMNS},
    }


def _state_from_row(row: Any) -> AlertState:
    name = row["state"]
    if name not in STATE_NAMES:
        raise PermanentError(f"alert_states has an unknown state {name!r}")
    return AlertState(
        rule_id=row["rule_id"],
        unit_code=row["unit_code"],
        state=cast(StateName, name),
        since=row["since"],
        value=row["value"],
        last_eval=row["last_eval"],
        fired_at=row["fired_at"],
        active_at=row["active_at"],
        resolved_at=row["resolved_at"],
        episode=row["episode"],
        error=row["error"],
    )
