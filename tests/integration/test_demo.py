"""`cityops demo` as a new user runs it: one process, embedded parts, a reading travels
simulator → amqtt → ingest → SQLite store → dashboard and alert engine → SMTP → mailbox."""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

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
        _wait_for(lambda: any(mailbox.glob("*.eml")), "an alert e-mail in the mailbox", process)
        first = sorted(mailbox.glob("*.eml"))[0]
        message = email.message_from_bytes(first.read_bytes(), policy=email.policy.default)
        assert "[CẢNH BÁO]" in str(message["Subject"])
        assert "Phường Hải Vân, Thành phố Đà Nẵng" in str(message["Subject"])
        assert "/area/commune/20194?metric=pm25" in message.get_body(("plain",)).get_content()
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
