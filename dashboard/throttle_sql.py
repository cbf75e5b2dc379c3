"""The sign-in throttle in the state database: the counts are shared by every dashboard
process (gunicorn workers, several hosts), so N workers do not give a guesser N × 5 tries.

One row per (username, address) in ``login_throttle`` (users component, migration 3): the
recent failures as a JSON list of epoch seconds (at most ``max_failures``), the lock's end
and the last failure (to forget stale rows). Each change reads and writes its row in one
transaction (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite runs one writer at a time).
The rule itself is :func:`dashboard.throttle.count_failure`, as in memory.
"""

from __future__ import annotations

import json
from collections import deque
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core.ports import Clock
from dashboard.throttle import Attempts, count_failure, lock_left, pair_key
from dashboard.users import login_throttle as log_table


def _seconds(at: datetime) -> float:
    return at.timestamp()


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class SqlLoginThrottle:
    """:class:`dashboard.throttle.LoginThrottle`'s interface over the state database. A
    database error never blocks a sign-in: it is treated as "not locked" (the password is
    still checked) and the failure is not counted."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        max_failures: int = 5,
        window: timedelta = timedelta(minutes=15),
        lockout: timedelta = timedelta(minutes=15),
    ) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures must be at least 1: {max_failures}")
        self._engine = engine
        self._clock = clock
        self._max_failures = max_failures
        self._window = window
        self._lockout = lockout

    def _read(self, connection: Connection, key: tuple[str, str], lock: bool) -> Attempts | None:
        query = select(log_table.c.failures, log_table.c.locked_until).where(
            log_table.c.username == key[0], log_table.c.address == key[1]
        )
        row = connection.execute(query.with_for_update() if lock else query).first()
        if row is None:
            return None
        failures = deque(_at(float(at)) for at in json.loads(row.failures))
        locked = _at(row.locked_until) if row.locked_until is not None else None
        return Attempts(failures, locked)

    def locked_for(self, username: str, address: str) -> timedelta | None:
        """How long this pair stays locked, or None when it may try now."""
        try:
            with self._engine.connect() as connection:
                state = self._read(connection, pair_key(username, address), lock=False)
        except SQLAlchemyError:
            return None
        return lock_left(state, self._clock.now())

    def is_locked(self, username: str, address: str) -> bool:
        return self.locked_for(username, address) is not None

    def record_failure(self, username: str, address: str) -> None:
        key = pair_key(username, address)
        for _ in range(2):  # a second worker may insert the same new row at the same time
            try:
                self._record_failure(key)
                return
            except IntegrityError:
                continue
            except SQLAlchemyError:
                return

    def _record_failure(self, key: tuple[str, str]) -> None:
        now = self._clock.now()
        with self._engine.begin() as connection:
            state = self._read(connection, key, lock=True)
            new = state is None
            if state is None:
                state = Attempts(deque())
            count_failure(state, now, self._max_failures, self._window, self._lockout)
            values = {
                "failures": json.dumps([_seconds(at) for at in state.failures]),
                "locked_until": _seconds(state.locked_until) if state.locked_until else None,
                "last_at": _seconds(now),
            }
            if new:
                self._forget_stale(connection, now)
                connection.execute(
                    insert(log_table).values(username=key[0], address=key[1], **values)
                )
            else:
                connection.execute(
                    update(log_table)
                    .where(log_table.c.username == key[0], log_table.c.address == key[1])
                    .values(**values)
                )

    def _forget_stale(self, connection: Connection, now: datetime) -> None:
        """Rows neither locked nor failed within the window (a new pair is the moment)."""
        connection.execute(
            delete(log_table).where(
                log_table.c.last_at < _seconds(now - self._window),
                (log_table.c.locked_until.is_(None)) | (log_table.c.locked_until < _seconds(now)),
            )
        )

    def record_success(self, username: str, address: str) -> None:
        key = pair_key(username, address)
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    delete(log_table).where(
                        log_table.c.username == key[0], log_table.c.address == key[1]
                    )
                )
        except SQLAlchemyError:
            pass
