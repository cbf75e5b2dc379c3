"""A tiny schema migration runner for the SQL state database (docs/design/011).

Each component (``"users"``, later ``"alerts"`` …) declares an ordered list of steps, each
a function of an SQLAlchemy ``Connection``; step ``i`` of the list is version ``i + 1``.
``migrate(engine, component, steps)`` applies the versions not yet in
``schema_migrations``, each in its own transaction together with its row, so a step is
either applied and recorded or neither. A released step never changes: a new column is a
new step.

Two processes starting at once (two dashboard workers under gunicorn) must not both
apply a step. On PostgreSQL each transaction first takes a transaction-scoped advisory
lock; on SQLite it opens with ``BEGIN IMMEDIATE``, which takes the database's write lock
at once. The second process then waits, sees the row, and skips the step.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    insert,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from core.clock import SystemClock
from core.db import UtcDateTime
from core.errors import CityOpsError, RetryableError
from core.ports import Clock

Step = Callable[[Connection], None]

# One key for every component: migrations are rare and short, and a single lock also
# covers creating schema_migrations itself.
LOCK_KEY = zlib.crc32(b"cityops.schema_migrations")

_metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    _metadata,
    Column("component", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("component", "version"),
)


class MigrationError(CityOpsError):
    """The database cannot be brought to the code's schema (e.g. it is newer than the code)."""


def _begin_locked(connection: Connection) -> None:
    """Serialise with every other migrating process, inside the current transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        # pysqlite opens no transaction before DDL on its own; this one also holds the
        # write lock from the start, so a concurrent migrator waits (busy_timeout) here.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _applied(connection: Connection, component: str) -> set[int]:
    rows = connection.execute(
        select(schema_migrations.c.version).where(schema_migrations.c.component == component)
    )
    return {int(version) for version in rows.scalars()}


def applied_versions(engine: Engine, component: str) -> list[int]:
    """The versions of ``component`` recorded in the database, ascending (empty when none)."""
    with engine.begin() as connection:
        _begin_locked(connection)
        schema_migrations.create(connection, checkfirst=True)
        return sorted(_applied(connection, component))


def migrate(
    engine: Engine, component: str, steps: Sequence[Step], clock: Clock | None = None
) -> list[int]:
    """Apply the missing steps of ``component`` in order; return the versions applied now.

    Idempotent: a second call (or a second process) applies nothing. Raises
    MigrationError when the database has a version this code does not know."""
    if not component:
        raise ValueError("component must be a non-empty name")
    now = (clock or SystemClock()).now
    done: list[int] = []
    for version, step in enumerate(steps, start=1):
        with engine.begin() as connection:
            _begin_locked(connection)
            schema_migrations.create(connection, checkfirst=True)
            applied = _applied(connection, component)
            newer = sorted(v for v in applied if v > len(steps))
            if newer:
                raise MigrationError(
                    f"the database has {component} schema version {newer[-1]} but this "
                    f"cityops knows only {len(steps)}: upgrade cityops, do not downgrade"
                )
            if version in applied:
                continue
            step(connection)
            connection.execute(
                insert(schema_migrations),
                {"component": component, "version": version, "applied_at": now()},
            )
            done.append(version)
    return done


class MigratedTables:
    """A component's tables in the state database: ``migrate()`` brings them up to date,
    ``_transaction(doing)`` runs a change in one transaction. Database errors become
    RetryableError naming what was being done (the database is down or busy)."""

    component: str = ""
    migrations: Sequence[Step] = ()
    what: str = "tables"  # "the <what> could not be migrated"

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock: Clock = clock or SystemClock()

    def migrate(self) -> list[int]:
        """Bring the tables up to date (several processes at once are fine)."""
        try:
            return migrate(self._engine, self.component, self.migrations, self._clock)
        except SQLAlchemyError as exc:
            raise RetryableError(f"the {self.what} could not be migrated: {exc}") from exc

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise RetryableError(f"state database could not {doing}: {exc}") from exc
