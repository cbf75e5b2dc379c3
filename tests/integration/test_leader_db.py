"""The evaluator lease (alerts/leader.py) on a real SQLite file and a real PostgreSQL:
one holder at a time, also when threads and separate processes race for it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from alerts.leader import EVALUATOR, Lease, default_holder
from alerts.repository import AlertRepository
from core.db import make_engine
from tests.conftest import REPO, FakeClock
from tests.integration.test_alerts_repository import T0, clean

TTL_S = 30.0


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.integration)]
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    found: str = request.getfixturevalue("postgres_url")
    return found


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    built = make_engine(url)
    AlertRepository(built).create_schema()
    clean(built)
    yield built
    built.dispose()


def test_one_holder_until_the_lease_expires(engine: Engine, clock: FakeClock) -> None:
    first = Lease(engine, EVALUATOR, "host-a:1:aa", clock)
    second = Lease(engine, EVALUATOR, "host-b:2:bb", clock)
    assert first.current() is None
    assert first.acquire(TTL_S)
    assert not second.acquire(TTL_S)
    assert second.current() == ("host-a:1:aa", T0 + timedelta(seconds=TTL_S))

    clock.advance(20)
    assert first.acquire(TTL_S)  # renewed: now ends 30 s after this round
    clock.advance(29)
    assert not second.acquire(TTL_S)
    clock.advance(1)  # first did not renew for 30 s: it is free
    assert first.current() is None
    assert second.acquire(TTL_S)
    assert not first.acquire(TTL_S)
    assert first.current() == ("host-b:2:bb", clock.now() + timedelta(seconds=TTL_S))


def test_release_lets_the_other_in_and_only_the_holder_releases(
    engine: Engine, clock: FakeClock
) -> None:
    first = Lease(engine, EVALUATOR, "host-a:1:aa", clock)
    second = Lease(engine, EVALUATOR, "host-b:2:bb", clock)
    assert first.acquire(TTL_S)
    second.release()  # not its lease: nothing happens
    assert not second.acquire(TTL_S)
    first.release()
    assert first.current() is None
    assert second.acquire(TTL_S)
    other = Lease(engine, "another-lease", "host-a:1:aa", clock)
    assert other.acquire(TTL_S)  # leases by name are independent


def test_renewing_keeps_when_it_was_taken(engine: Engine, clock: FakeClock) -> None:
    lease = Lease(engine, EVALUATOR, "host-a:1:aa", clock)
    assert lease.acquire(TTL_S)
    clock.advance(10)
    assert lease.acquire(TTL_S)
    with engine.connect() as connection:
        acquired, expires = connection.exec_driver_sql(
            "SELECT acquired_at, expires_at FROM alert_leases"
        ).one()
    assert str(acquired).startswith("2026-11-02 01:00:00")
    assert str(expires).startswith("2026-11-02 01:00:40")


def race_threads(engines: list[Engine], name: str, tag: str, clock: FakeClock) -> list[str]:
    """Each engine's thread tries to take ``name`` at the same moment; returns the winners."""
    start = threading.Barrier(len(engines))
    won: list[str] = []

    def race(holder: str, made: Engine) -> None:
        lease = Lease(made, name, holder, clock)
        start.wait()
        if lease.acquire(TTL_S):
            won.append(holder)

    threads = [
        threading.Thread(target=race, args=(f"t{i}:{tag}", made)) for i, made in enumerate(engines)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return won


def test_threads_racing_get_one_holder(url: str, engine: Engine, clock: FakeClock) -> None:
    engines = [make_engine(url) for _ in range(4)]  # a pool each: like separate processes
    try:
        for round_ in range(6):  # a free lease, then expired ones to take over
            won = race_threads(engines, f"race-{round_ % 2}", str(round_), clock)
            assert len(won) == 1, won
            if round_ % 2:
                clock.advance(TTL_S)
    finally:
        for made in engines:
            made.dispose()


RACER = """
import sys, time
from datetime import datetime
from alerts.leader import Lease
from core.db import make_engine

url, holder, start_at, now = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]

class Fixed:
    def now(self):
        return datetime.fromisoformat(now)

engine = make_engine(url)
lease = Lease(engine, "alerts.evaluator", holder, Fixed())
with engine.connect():  # connected before the start, so the race is on the lease itself
    pass
time.sleep(max(0.0, start_at - time.time()))
print("won" if lease.acquire(30) else "lost", flush=True)
engine.dispose()
"""


def race_processes(url: str, now: str, count: int = 4) -> list[str]:
    start_at = time.time() + 2.0
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url, f"p{i}:{now}", str(start_at), now],
            cwd=REPO,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    answers = []
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        answers.append(out.strip())
    return answers


def test_processes_racing_get_one_holder(url: str, engine: Engine) -> None:
    assert sorted(race_processes(url, T0.isoformat())) == ["lost", "lost", "lost", "won"]
    # The winner holds it until it expires; then one of a new race takes over.
    still = (T0 + timedelta(seconds=29)).isoformat()
    assert race_processes(url, still) == ["lost"] * 4
    later = (T0 + timedelta(seconds=31)).isoformat()
    assert sorted(race_processes(url, later)) == ["lost", "lost", "lost", "won"]


def test_default_holder_names_the_process() -> None:
    holder = default_holder()
    host, pid, token = holder.split(":")
    assert host
    assert int(pid) == os.getpid()
    assert len(token) == 8
    assert default_holder() != holder
