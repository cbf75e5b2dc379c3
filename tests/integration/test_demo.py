"""`cityops demo` as a new user runs it: one process, embedded parts, a reading travels
simulator → amqtt → ingest → SQLite store → dashboard and alert engine → SMTP → mailbox."""

from __future__ import annotations

import email
import email.message
import email.policy
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
CITYOPS = Path(sys.executable).parent / "cityops"
DEADLINE_S = 60


def _wait_for(predicate: object, what: str, process: subprocess.Popen[str]) -> None:
    assert callable(predicate)
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if process.poll() is not None:
            pytest.fail(f"the demo exited ({process.returncode}) before {what}")
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"the demo did not reach '{what}' within {DEADLINE_S} s")


@pytest.mark.integration
def test_demo_runs_the_whole_pipeline_and_stops_cleanly(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = {
        **os.environ,
        "CITYOPS_ALERTS__INTERVAL_S": "1",
        "CITYOPS_ALERTS__RULES__0__FOR_S": "0",  # pm25-bad fires on the first evaluation
        "CITYOPS_SIMULATOR__INTERVAL_S": "1",
    }
    process = subprocess.Popen(
        [str(CITYOPS), "demo", "--workdir", str(workdir)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        url = password = None
        end = time.monotonic() + DEADLINE_S
        while (url is None or password is None) and time.monotonic() < end:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            found = re.search(r"dashboard\s*: (http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else url
            admin = re.search(r"sign in\s*: admin / (\S+)\s+\(admin\)", line)
            password = admin.group(1) if admin else password
        assert url, "".join(output)
        assert password, "".join(output)  # the demo's users are printed at start

        browser = requests.Session()
        assert requests.get(url, timeout=10, allow_redirects=False).status_code == 303
        form = browser.get(f"{url}login", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        signed_in = browser.post(
            f"{url}login",
            data={"username": "admin", "password": password, "csrf_token": token.group(1)},
            timeout=10,
        )
        assert signed_in.status_code == 200  # redirected to the map
        assert "_dash-config" in signed_in.text  # the Dash app, served locally
        geometry = browser.get(f"{url}geo/commune.json", timeout=10).json()
        assert len(geometry["features"]) == 94
        for page in ("devices/", "alerts/", "pipeline/", "area/province/48"):
            assert browser.get(f"{url}{page}", timeout=10).status_code == 200, page

        store = workdir / "timeseries.sqlite"

        def live_points_stored() -> bool:
            with sqlite3.connect(store) as db:
                newest = db.execute("select max(ts_ms) from points").fetchone()[0]
            return newest is not None and newest > (time.time() - 30) * 1000

        _wait_for(live_points_stored, "live readings in the store", process)

        mailbox = workdir / "mailbox"
        # The history also puts a few communes under the on-time dossier target this week:
        # their KPI alerts may come first, or share the e-mail. Hải Vân's PM2.5 alert is in one.
        pm25_link = "/area/commune/20194?metric=pm25"

        def pm25_mail() -> email.message.EmailMessage | None:
            for path in sorted(mailbox.glob("*.eml")):
                found = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                assert isinstance(found, email.message.EmailMessage)
                body = found.get_body(("plain",))
                if body is not None and pm25_link in body.get_content():
                    return found
            return None

        _wait_for(lambda: pm25_mail() is not None, "the PM2.5 alert e-mail", process)
        message = pm25_mail()
        assert message is not None
        assert "[CẢNH BÁO]" in str(message["Subject"])
        body = message.get_body(("plain",))
        assert body is not None
        assert "Phường Hải Vân" in body.get_content()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            rest, _ = process.communicate()
        output.append(rest or "")
    log = "".join(output)
    assert process.returncode == 0, log
    assert "demo stopped" in log
    assert "Traceback" not in log
    assert "did not stop" not in log


def test_history_covers_twelve_weeks_and_office_hours_quickly(tmp_path: Path) -> None:
    """The first start's history: 12 whole weeks (from a Monday 00:00 local) for the weekly
    review, the public-service counters in office hours only, written in seconds."""
    from core.demo import HISTORY_WEEKS, history_start, write_history
    from core.settings import load_settings
    from core.store import SqliteStore
    from core.types import MetricRef, UnitRef
    from ingest.demo_devices import make_demo_devices
    from layers.geography import Geography
    from tests.conftest import FakeClock

    settings = load_settings(REPO / "config.yaml", environ={})
    devices = make_demo_devices(
        Geography.from_settings(settings), air_devices=10, water_stations=False, seed=1
    )
    now = datetime(2026, 11, 25, 3, 20, tzinfo=UTC)  # Wednesday 10:20 local
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    try:
        started = time.monotonic()
        count = write_history(settings, store, devices, FakeClock(now))
        elapsed = time.monotonic() - started
        first = history_start(now, ZoneInfo("Asia/Ho_Chi_Minh"))
        assert first == datetime(2026, 8, 30, 17, 0, tzinfo=UTC)  # Monday 31 Aug 00:00 local
        assert HISTORY_WEEKS == 12
        for week in range(HISTORY_WEEKS + 1):  # 12 whole weeks and this one so far
            start = first + timedelta(weeks=week)
            pm25 = store.window_by_unit(
                MetricRef("air", "pm25"),
                "province",
                start=start,
                end=min(start + timedelta(weeks=1), now),
                aggregation="mean",
            )
            assert [row.code for row in pm25] == ["48"], f"week {week}"
        province = UnitRef("province", "48")
        hourly = store.series(
            MetricRef("dossiers", "received"),
            province,
            start=first - timedelta(weeks=1),
            end=now + timedelta(days=1),
            every=timedelta(hours=1),
            aggregation="sum",
        )
        local = [point.ts.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")) for point in hourly]
        assert local[0] == first + timedelta(hours=8)  # 07:30-08:00 counted at 08:00
        assert {moment.weekday() for moment in local} == {0, 1, 2, 3, 4}
        # an hour's counts are stamped at its end (11:30 before lunch, 17:00 at closing)
        assert {moment.hour for moment in local} == {8, 9, 10, 11, 14, 15, 16, 17}
        assert len(hourly) == 12 * 5 * 8 + 2 * 8 + 3  # and Wednesday to 10:20
        assert sum(point.value for point in hourly) > 12 * 5 * 94 * 10  # ≥ 10 a commune a day
        assert count > 12 * 7 * 12 * 10  # the readings alone, every 2 hours
        assert elapsed < 20, f"the history took {elapsed:.1f} s for {count} points"
    finally:
        store.close()
