"""Dead letters in the SQL state database (SQLite or PostgreSQL) through SQLAlchemy Core.

Every message that cannot be ingested is kept whole (topic, raw payload bytes) with the
reason, so an operator can see what a device sent and replay it once it is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from core.db import UtcDateTime
from core.errors import RetryableError
from core.types import DeadLetter


@dataclass(frozen=True, slots=True)
class StoredLetter:
    """A dead letter with its row id, for an operator's replay or removal."""

    id: int
    letter: DeadLetter


metadata = MetaData()

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime, nullable=False, index=True),
    Column("topic", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
)


class SqlDeadLetterStore:
    """core.ports.DeadLetterStore on an SQLAlchemy engine (``core.db.make_engine``).

    Creates its table on construction. Database errors become RetryableError: the ingest
    worker keeps the message unacknowledged and tries again."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        try:
            metadata.create_all(engine)
        except SQLAlchemyError as exc:
            raise RetryableError(f"dead-letter table could not be created: {exc}") from exc

    def put(self, letter: DeadLetter) -> None:
        received = letter.received_at
        if received.tzinfo is None or received.utcoffset() is None:
            # A caller bug, not an outage: must not be retried as a database error.
            raise ValueError(f"received_at must be timezone-aware: {received!r}")
        row = {
            "received_at": letter.received_at,
            "topic": letter.topic,
            "payload": bytes(letter.payload),
            # PostgreSQL text refuses NUL; a reason quoting a payload could carry one.
            "reason": letter.reason.replace("\x00", "\\x00"),
        }
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(dead_letters), row)
        except SQLAlchemyError as exc:
            raise RetryableError(f"dead letter could not be stored: {exc}") from exc

    def count(self) -> int:
        try:
            with self._engine.connect() as connection:
                total = connection.execute(select(func.count()).select_from(dead_letters))
                return int(total.scalar_one())
        except SQLAlchemyError as exc:
            raise RetryableError(f"dead letters could not be counted: {exc}") from exc

    def recent(self, limit: int = 50) -> list[DeadLetter]:
        if limit < 1:
            return []
        query = (
            select(
                dead_letters.c.received_at,
                dead_letters.c.topic,
                dead_letters.c.payload,
                dead_letters.c.reason,
            )
            .order_by(dead_letters.c.received_at.desc(), dead_letters.c.id.desc())
            .limit(limit)
        )
        try:
            with self._engine.connect() as connection:
                rows = connection.execute(query).all()
        except SQLAlchemyError as exc:
            raise RetryableError(f"dead letters could not be read: {exc}") from exc
        return [
            DeadLetter(
                received_at=row.received_at,
                topic=row.topic,
                payload=bytes(row.payload),
                reason=row.reason,
            )
            for row in rows
        ]

    def oldest(self, limit: int = 100, *, topic_prefix: str | None = None) -> list[StoredLetter]:
        """The oldest letters first (the order they arrived), for replay."""
        query = select(dead_letters).order_by(dead_letters.c.id).limit(max(limit, 0))
        if topic_prefix:
            query = query.where(dead_letters.c.topic.startswith(topic_prefix, autoescape=True))
        try:
            with self._engine.connect() as connection:
                rows = connection.execute(query).all()
        except SQLAlchemyError as exc:
            raise RetryableError(f"dead letters could not be read: {exc}") from exc
        return [
            StoredLetter(
                row.id, DeadLetter(row.received_at, row.topic, bytes(row.payload), row.reason)
            )
            for row in rows
        ]

    def remove(self, ids: list[int]) -> int:
        """Delete letters by id (after a successful replay); returns how many were deleted."""
        if not ids:
            return 0
        try:
            with self._engine.begin() as connection:
                result = connection.execute(delete(dead_letters).where(dead_letters.c.id.in_(ids)))
                return int(result.rowcount)
        except SQLAlchemyError as exc:
            raise RetryableError(f"dead letters could not be removed: {exc}") from exc
