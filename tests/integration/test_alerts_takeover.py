"""Two real ``cityops alerts run`` processes on one state database (PostgreSQL, and SQLite
shared by two processes): the one holding the evaluator lease is killed with SIGKILL, and
the standby must take the lease and send the e-mail of a breach that arrives at the kill
within ``lease_s + interval_s`` (+ 2 s slack for start-up and a loaded machine).

lease_s is 4 s and interval_s 1 s; the SMTP server is a real aiosmtpd on loopback. The
kill lands between rounds' sends (the first alert's e-mail was delivered and a round has
passed since), so no e-mail is in flight and each must arrive exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.leader import Lease
from alerts.mailbox import LoopbackController
from alerts.service import LEASE_NAME
from core.db import make_engine
from core.settings import AlertsSettings, load_settings
from core.store import SqliteStore
from core.types import Point
from layers.levels import Hierarchy
from tests.integration.test_alerts_kill import REPO, make_config, officer, start, wait_until

pytestmark = pytest.mark.integration

LEASE_S = 4.0
INTERVAL_S = 1.0
SLACK_S = 2.0


class Inbox:
    """Every e-mail accepted: (To, Message-ID, when)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mail: list[tuple[str, str, float]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content or envelope.content,
                                    policy=policy.default)  # fmt: skip
        with self.lock:
            self.mail.append((str(parsed["To"]), str(parsed["Message-ID"]), time.monotonic()))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[float]:
        with self.lock:
            return [when for who, _, when in self.mail if who == address]


@pytest.fixture
def inbox() -> Iterator[tuple[int, Inbox]]:
    handler = Inbox()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0, enable_SMTPUTF8=True)
    controller.start()
    yield int(controller.port), handler
    controller.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'state.sqlite'}"


def breach(tmp_path: Path, commune: str) -> None:
    """A PM2.5 reading of 150 µg/m³ (pm25-bad: above 80) in ``commune``, now."""
    store = SqliteStore(tmp_path / "ts.sqlite")
    tags = {"device": f"aq-{commune}", "province": "48", "commune": commune}
    store.write([Point("air", tags, {"pm25": 150.0}, datetime.now(UTC))])
    store.close()


def test_the_standby_takes_over_within_the_lease_and_sends_each_email_once(
    tmp_path: Path, inbox: tuple[int, Inbox], database_url: str
) -> None:
    port, handler = inbox
    settings = load_settings(REPO / "config.yaml", environ={})
    hierarchy = Hierarchy.from_csv(settings.hierarchy.levels, REPO / settings.hierarchy.units_file)
    first, second = [unit.code for unit in hierarchy.units_at("commune", "48")][:2]
    config = make_config(tmp_path, port, [first, second])
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["database"]["url"] = database_url
    raw["alerts"].update(lease_s=LEASE_S, interval_s=INTERVAL_S)
    if "metrics_port" in AlertsSettings.model_fields:
        raw["alerts"]["metrics_port"] = None  # two evaluators on one host; not under test
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    load_settings(config)
    SqliteStore(tmp_path / "ts.sqlite").close()  # the store exists, empty

    engine = make_engine(database_url)
    observer = Lease(engine, LEASE_NAME, "test-observer")
    logs = {name: tmp_path / f"alerts-{name}.log" for name in "ab"}
    processes = {name: start(config, logs[name]) for name in "ab"}
    by_pid = {process.pid: name for name, process in processes.items()}

    def holder() -> str | None:
        """Which of a and b holds the lease now (None: nobody, or another)."""
        try:
            held = observer.current()
        except Exception:  # the tables are not made yet
            return None
        return None if held is None else by_pid.get(int(held[0].split(":")[1]))

    try:
        wait_until(lambda: holder() is not None, "one evaluator holds the lease", 60)
        active = holder()
        assert active is not None
        standby = "b" if active == "a" else "a"
        # The standby runs its rounds (trying the lease each time) before the kill.
        wait_until(lambda: "alert engine: " in logs[standby].read_text(errors="replace"),
                   f"{standby} runs", 60)  # fmt: skip
        breach(tmp_path, first)
        wait_until(lambda: handler.to(officer(first)), "the first alert's e-mail", 30)
        time.sleep(INTERVAL_S + 0.5)  # its delivery is recorded: nothing in flight
        os.kill(processes[active].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        processes[active].wait(timeout=10)
        breach(tmp_path, second)  # work for whoever evaluates next
        wait_until(lambda: holder() == standby, "the standby took the lease", 60)
        lease_taken_s = time.monotonic() - killed_at
        wait_until(lambda: handler.to(officer(second)), "the second alert's e-mail", 60)
        emailed_s = handler.to(officer(second))[0] - killed_at
        time.sleep(3 * INTERVAL_S)  # a few more rounds: nothing is sent again
        assert processes[standby].poll() is None, logs[standby].read_text()[-3000:]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=20)
        engine.dispose()

    kind = database_url.split(":")[0].split("+")[0]
    print(
        f"\n{kind}: lease taken {lease_taken_s:.2f} s and the pending e-mail accepted "
        f"{emailed_s:.2f} s after the SIGKILL (lease_s {LEASE_S:g}, interval_s {INTERVAL_S:g})"
    )
    assert emailed_s <= LEASE_S + INTERVAL_S + SLACK_S
    assert lease_taken_s <= emailed_s
    with handler.lock:
        mail = list(handler.mail)
    assert sorted(to for to, _, _ in mail) == sorted([officer(first), officer(second)]), mail
