"""Alert state and the notification log (the outbox) in the SQL state database.

SQLAlchemy Core on its own MetaData; SQLite and PostgreSQL. The service writes each
evaluation's states **and** the e-mails they call for in one transaction (status
"pending"); the pipeline sends and then marks them "sent" (or "failed" for good). So a
restart neither loses an e-mail (a pending row is sent on the next run) nor repeats one
(a state that was firing stays firing, and a (rule, unit, episode, kind) row exists once:
the unique constraint is the dedup key). The only window left is a crash after the SMTP
server took the message and before it was marked sent: that e-mail goes again, with the
same Message-ID, so mail clients show it once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from alerts.stages import Delivery, LogStatus, NotificationKey
from alerts.state import STATE_NAMES, AlertState, StateName, Transition
from core.db import UtcDateTime
from core.errors import PermanentError, RetryableError
from core.types import Notification

metadata = MetaData()

alert_states = Table(
    "alert_states",
    metadata,
    Column("rule_id", Text, primary_key=True),
    Column("unit_code", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("since", UtcDateTime, nullable=False),
    Column("value", Float, nullable=True),
    Column("last_eval", UtcDateTime, nullable=False),
    Column("fired_at", UtcDateTime, nullable=True),
    Column("active_at", UtcDateTime, nullable=True),
    Column("resolved_at", UtcDateTime, nullable=True),
    Column("episode", Integer, nullable=False),
    Column("error", Text, nullable=True),
)

notification_log = Table(
    "notification_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Text, nullable=False),
    Column("unit_code", Text, nullable=False),
    Column("episode", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("last_attempt_at", UtcDateTime, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("recipients", Text, nullable=False),  # JSON list
    Column("subject", Text, nullable=False),
    Column("body_text", Text, nullable=False),
    Column("body_html", Text, nullable=True),
    Column("headers", Text, nullable=False),  # JSON object
    UniqueConstraint(
        "rule_id", "unit_code", "episode", "kind", name="notification_log_once_per_episode"
    ),
)

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


def _database_error(exc: SQLAlchemyError, doing: str) -> RetryableError | PermanentError:
    message = f"state database could not {doing}: {exc}"
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or type(exc).__name__ in ("OperationalError", "InterfaceError")
    ):
        return RetryableError(message)
    return PermanentError(message)


class AlertRepository:
    """alert_states + notification_log. Database errors become RetryableError
    (unreachable, locked) or PermanentError."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise PermanentError(f"alert state needs SQLite or PostgreSQL, not {dialect}")
        self._insert: Callable[..., Any] = (
            sqlite.insert if dialect == "sqlite" else postgresql.insert
        )

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise _database_error(exc, doing) from exc

    def create_schema(self) -> None:
        """Create the tables if missing. Called once when the service starts."""
        with self._transaction("create the alert tables") as connection:
            metadata.create_all(connection)

    # -- alert states ---------------------------------------------------------------

    def load_states(self, rule_id: str) -> dict[str, AlertState]:
        """Every unit's state for one rule, by unit code."""
        query = select(alert_states).where(alert_states.c.rule_id == rule_id)
        with self._transaction(f"read the states of rule {rule_id}") as connection:
            rows = connection.execute(query).mappings().all()
        return {row["unit_code"]: _state_from_row(row) for row in rows}

    def save(
        self, transitions: Sequence[Transition], outbox: Sequence[Delivery], *, now: datetime
    ) -> list[int]:
        """In one transaction: the new states, and the e-mails they call for as pending
        rows. Returns the ids of the rows created (an e-mail already in the log for the
        same key is not added again)."""
        created: list[int] = []
        with self._transaction(f"save {len(transitions)} alert states") as connection:
            if transitions:
                statement = self._insert(alert_states)
                statement = statement.on_conflict_do_update(
                    index_elements=["rule_id", "unit_code"],
                    set_={name: statement.excluded[name] for name in _STATE_COLUMNS},
                )
                connection.execute(statement, [_state_row(t.current) for t in transitions])
            for delivery in outbox:
                statement = (
                    self._insert(notification_log)
                    .values(_log_row(delivery, now))
                    .on_conflict_do_nothing(
                        index_elements=["rule_id", "unit_code", "episode", "kind"]
                    )
                    .returning(notification_log.c.id)
                )
                row_id = connection.execute(statement).scalar_one_or_none()
                if row_id is not None:
                    created.append(int(row_id))
        return created

    # -- notification log -------------------------------------------------------------

    def pending(self, limit: int = 500) -> list[Delivery]:
        """E-mails recorded and not yet sent, oldest first (a firing before its resolved)."""
        query = (
            select(notification_log)
            .where(notification_log.c.status == "pending")
            .order_by(notification_log.c.id)
            .limit(limit)
        )
        with self._transaction("read the outbox") as connection:
            rows = connection.execute(query).mappings().all()
        return [_delivery_from_row(row) for row in rows]

    def status(self, key: NotificationKey) -> LogStatus | None:
        query = select(notification_log.c.status).where(
            notification_log.c.rule_id == key.rule_id,
            notification_log.c.unit_code == key.unit_code,
            notification_log.c.episode == key.episode,
            notification_log.c.kind == key.kind,
        )
        with self._transaction("read the notification log") as connection:
            found = connection.execute(query).scalar_one_or_none()
        return cast(LogStatus | None, found)

    def record_outcome(self, delivery: Delivery, now: datetime) -> None:
        """sent and failed are final; deferred stays pending with its error and attempts."""
        if delivery.log_id is None:
            raise ValueError(f"delivery {delivery.key} has no log row")
        values: dict[str, Any] = {
            "attempts": delivery.attempts,
            "last_attempt_at": now,
            "last_error": delivery.error,
        }
        if delivery.outcome == "sent":
            values |= {"status": "sent", "sent_at": now}
        elif delivery.outcome == "failed":
            values |= {"status": "failed"}
        statement = (
            update(notification_log).where(notification_log.c.id == delivery.log_id).values(values)
        )
        with self._transaction("record a notification outcome") as connection:
            connection.execute(statement)

    def log_entries(self, rule_id: str | None = None) -> list[dict[str, Any]]:
        """The log, oldest first, for the CLI and tests."""
        query = select(notification_log).order_by(notification_log.c.id)
        if rule_id is not None:
            query = query.where(notification_log.c.rule_id == rule_id)
        with self._transaction("read the notification log") as connection:
            return [dict(row) for row in connection.execute(query).mappings().all()]


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


def _log_row(delivery: Delivery, now: datetime) -> dict[str, Any]:
    note = delivery.notification
    return {
        "rule_id": delivery.key.rule_id,
        "unit_code": delivery.key.unit_code,
        "episode": delivery.key.episode,
        "kind": delivery.key.kind,
        "status": "pending",
        "reason": note.reason,
        "created_at": now,
        "attempts": delivery.attempts,
        "recipients": json.dumps(list(note.recipients)),
        "subject": note.subject,
        "body_text": note.body_text,
        "body_html": note.body_html,
        "headers": json.dumps(dict(note.headers), ensure_ascii=False),
    }


def _delivery_from_row(row: Any) -> Delivery:
    notification = Notification(
        recipients=tuple(json.loads(row["recipients"])),
        subject=row["subject"],
        body_text=row["body_text"],
        body_html=row["body_html"],
        reason=row["reason"],
        headers=json.loads(row["headers"]),
    )
    key = NotificationKey(row["rule_id"], row["unit_code"], row["episode"], row["kind"])
    return Delivery(key, notification, log_id=row["id"], attempts=row["attempts"])
