"""`cityops alerts` killed with SIGKILL while it is sending, then started again: every
e-mail arrives, and the only repeat is the one the SMTP server had accepted when the
process died — with the same Message-ID, so a mail client shows it once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.mailbox import LoopbackController
from core.settings import load_settings
from core.store import SqliteStore
from core.types import Point
from layers.levels import Hierarchy

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CITYOPS = str(Path(sys.executable).with_name("cityops"))
COMMUNES = 12
DATA_DELAY_S = 0.4  # a slow SMTP server: the kill lands while e-mails are in flight


class SlowInbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mail: list[tuple[str, str]] = []  # (To, Message-ID)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(DATA_DELAY_S)
        parsed = message_from_bytes(envelope.original_content or envelope.content,
                                    policy=policy.default)  # fmt: skip
        with self.lock:
            self.mail.append((str(parsed["To"]), str(parsed["Message-ID"])))
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self.lock:
            return len(self.mail)


@pytest.fixture
def inbox() -> Iterator[tuple[int, SlowInbox]]:
    handler = SlowInbox()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0, enable_SMTPUTF8=True)
    controller.start()
    yield int(controller.port), handler
    controller.stop()


def officer(code: str) -> str:
    return f"truc-{code}@danang.gov.vn"


def make_config(tmp_path: Path, smtp_port: int, communes: list[str]) -> Path:
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["hierarchy"]["units_file"] = str(REPO / raw["hierarchy"]["units_file"])
    raw["hierarchy"]["history"]["mapping_file"] = None
    raw["layers"]["boundaries"] = {
        level: str(REPO / path) for level, path in raw["layers"]["boundaries"].items()
    }
    raw["store"] = {"backend": "sqlite", "sqlite": {"path": str(tmp_path / "ts.sqlite")}}
    raw["database"]["url"] = f"sqlite:///{tmp_path / 'state.sqlite'}"
    raw["devices"]["registry"] = str(tmp_path / "devices.csv")  # none: commune rules only
    raw["smtp"].update(host="127.0.0.1", port=smtp_port, timeout_s=5)
    raw["dashboard"]["auth"]["secret_key_file"] = str(tmp_path / "secret.key")
    rule = next(rule for rule in raw["alerts"]["rules"] if rule["id"] == "pm25-bad")
    rule["for_s"] = 0
    raw["alerts"].update(
        interval_s=0.5,
        lease_s=2,
        recipients=["truc-ban@danang.gov.vn"],
        roster=[
            {"unit": code, "name": f"Trực {code}", "email": officer(code)} for code in communes
        ],
        roster_file=None,
        rules=[rule],
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    load_settings(path)
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen([CITYOPS, "alerts", "run", "--config", str(config)],
                                stdout=handle, stderr=handle, cwd=config.parent)  # fmt: skip


def wait_until(check: Any, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        time.sleep(0.02)


def test_sigkill_mid_send_loses_nothing_and_repeats_at_most_the_email_in_flight(
    tmp_path: Path, inbox: tuple[int, SlowInbox]
) -> None:
    port, handler = inbox
    settings = load_settings(REPO / "config.yaml", environ={})
    hierarchy = Hierarchy.from_csv(settings.hierarchy.levels, REPO / settings.hierarchy.units_file)
    communes = [unit.code for unit in hierarchy.units_at("commune", "48")][:COMMUNES]
    config = make_config(tmp_path, port, communes)
    store = SqliteStore(tmp_path / "ts.sqlite")
    now = datetime.now(UTC)
    store.write(
        [
            Point(
                "air",
                {"device": f"aq-{code}", "province": "48", "commune": code},
                {"pm25": 150.0},
                now,
            )
            for code in communes
        ]
    )
    store.close()
    log = tmp_path / "alerts.log"
    first = start(config, log)
    try:
        wait_until(lambda: handler.count() >= 3, "three e-mails accepted", 60)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = handler.count()
        assert killed_at < COMMUNES, "the kill must land mid-send"
        second = start(config, log)
        try:
            wanted = {officer(code) for code in communes}
            wait_until(lambda: {to for to, _ in handler.mail} >= wanted, "every officer", 60)
            time.sleep(3)  # a few more rounds: nothing else arrives
        finally:
            second.terminate()
            second.wait(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
    per_person = Counter(to for to, _ in handler.mail)
    repeated = {to: n for to, n in per_person.items() if n > 1}
    assert len(repeated) <= 1, (repeated, log.read_text(errors="replace")[-3000:])
    assert all(n == 2 for n in repeated.values())
    for to in repeated:
        ids = {message_id for who, message_id in handler.mail if who == to}
        assert len(ids) == 1  # the same Message-ID: shown once by a mail client
    assert set(per_person) == {officer(code) for code in communes}
