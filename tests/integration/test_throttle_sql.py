"""The sign-in throttle in the state database (dashboard/throttle_sql.py), on SQLite and
PostgreSQL: the same rule as in memory, and one count for every dashboard process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select

from core.db import make_engine
from dashboard.throttle_sql import SqlLoginThrottle
from dashboard.users import UserStore, login_throttle
from tests.conftest import FakeClock

U, A = "nguyenvana", "10.0.0.7"
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    built = make_engine(url)
    UserStore(built)  # migrates the users component, login_throttle included
    yield built
    with built.begin() as connection:  # the PostgreSQL database is the module's
        connection.execute(delete(login_throttle))
    built.dispose()


def test_five_failures_lock_for_fifteen_minutes_then_expire(engine: Engine) -> None:
    clock = FakeClock(T0)
    guard = SqlLoginThrottle(engine, clock)
    for _ in range(4):
        guard.record_failure(U, A)
        clock.advance(60)
    assert not guard.is_locked(U, A)
    guard.record_failure(U.upper(), A)  # the same account, however typed
    assert guard.locked_for(U, A) == timedelta(minutes=15)
    assert not guard.is_locked(U, "10.0.0.8")
    assert not guard.is_locked("tranthib", A)
    clock.advance(10 * 60)
    guard.record_failure(U, A)  # while locked: does not extend it
    assert guard.locked_for(U, A) == timedelta(minutes=5)
    clock.advance(5 * 60)
    assert not guard.is_locked(U, A)
    guard.record_failure(U, A)  # the count starts again
    assert not guard.is_locked(U, A)


def test_failures_older_than_the_window_fall_out_and_success_clears(engine: Engine) -> None:
    clock = FakeClock(T0)
    guard = SqlLoginThrottle(engine, clock)
    for _ in range(4):
        guard.record_failure(U, A)
    clock.advance(15 * 60)
    guard.record_failure(U, A)
    assert not guard.is_locked(U, A)
    guard.record_success(U, A)
    for _ in range(4):
        guard.record_failure(U, A)
    assert not guard.is_locked(U, A)
    guard.record_failure(U, A)
    assert guard.is_locked(U, A)


def test_two_dashboard_processes_share_one_count(engine: Engine) -> None:
    """Two workers (two throttles on one database): 3 tries on one and 2 on the other lock
    the pair on both; in memory each would have allowed 5."""
    clock = FakeClock(T0)
    first, second = SqlLoginThrottle(engine, clock), SqlLoginThrottle(engine, clock)
    for _ in range(3):
        first.record_failure(U, A)
    for _ in range(2):
        second.record_failure(U, A)
    assert first.is_locked(U, A)
    assert second.is_locked(U, A)


def test_concurrent_failures_are_all_counted(engine: Engine) -> None:
    clock = FakeClock(T0)
    guards = [SqlLoginThrottle(engine, clock, max_failures=40) for _ in range(4)]
    start = threading.Barrier(len(guards))

    def guess(guard: SqlLoginThrottle) -> None:
        start.wait()
        for _ in range(10):
            guard.record_failure(U, A)

    threads = [threading.Thread(target=guess, args=(guard,)) for guard in guards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if engine.dialect.name == "postgresql":  # SELECT … FOR UPDATE: none lost
        assert guards[0].is_locked(U, A)
    else:  # SQLite: one writer at a time, a busy one gives up its count (never an error)
        with engine.connect() as connection:
            rows = connection.execute(select(func.count()).select_from(login_throttle))
            assert rows.scalar_one() == 1


def test_stale_pairs_are_forgotten_when_a_new_one_comes(engine: Engine) -> None:
    clock = FakeClock(T0)
    guard = SqlLoginThrottle(engine, clock)
    guard.record_failure("old", A)
    for _ in range(5):
        guard.record_failure("locked", A)
    clock.advance(16 * 60)  # "old" is past its window; "locked" past its lock
    guard.record_failure("new", A)
    with engine.connect() as connection:
        names = connection.execute(select(login_throttle.c.username)).scalars().all()
    assert sorted(names) == ["new"]


def test_a_database_that_is_down_never_blocks_a_sign_in(tmp_path: Path) -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    guard = SqlLoginThrottle(engine, FakeClock(T0))
    guard.record_failure(U, A)  # not counted, no exception
    assert guard.locked_for(U, A) is None
    guard.record_success(U, A)
    engine.dispose()
