"""The `cityops` command as an operator runs it: real process, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CITYOPS = Path(sys.executable).parent / "cityops"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CITYOPS), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_check_config_accepts_the_shipped_file() -> None:
    result = run("check-config", "--config", "config.yaml")
    assert result.returncode == 0, result.stderr
    assert "config.yaml: OK" in result.stdout


def test_check_config_prints_every_problem_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    bad.write_text(
        text.replace("port: 1883", "port: 99999").replace("qos: 1", "qos: 7"), encoding="utf-8"
    )
    result = run("check-config", "--config", str(bad))
    assert result.returncode == 1
    assert "config error: broker.port must be at most 65535: 99999" in result.stderr
    assert "config error: ingest.qos must be 0, 1 or 2: 7" in result.stderr


def test_environment_override_is_checked_too() -> None:
    result = run("check-config", env={"CITYOPS_DASHBOARD__PORT": "http"})
    assert result.returncode == 1
    assert "dashboard.port" in result.stderr
    assert "'http'" in result.stderr


@pytest.mark.integration
def test_simulate_to_an_unreachable_broker_says_so(tmp_path: Path) -> None:
    env = {
        "CITYOPS_BROKER__PORT": "1",
        "CITYOPS_DEVICES__REGISTRY": str(tmp_path / "devices.csv"),
    }
    result = run("simulate", "--rounds", "1", env=env)
    assert result.returncode == 1
    assert "error:" in result.stderr
    assert "127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr


def test_service_command_with_a_bad_config_stops_with_the_key(tmp_path: Path) -> None:
    result = run("ingest", env={"CITYOPS_INGEST__BATCH_SIZE": "0"})
    assert result.returncode == 2
    assert "config error: ingest.batch_size must be at least 1: 0" in result.stderr


def test_deadletter_list_and_a_replay_that_cannot_reach_the_broker_keeps_them(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime

    from core.db import make_engine
    from core.types import DeadLetter
    from ingest.deadletter import SqlDeadLetterStore

    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    store = SqlDeadLetterStore(make_engine(url))
    store.put(DeadLetter(datetime.now(UTC), "city/air/x", b'{"ts": "soon"}', "ts is not a time"))
    env = {"CITYOPS_DATABASE__URL": url, "CITYOPS_BROKER__PORT": "1"}

    listed = run("deadletter", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "1 dead letters" in listed.stdout
    assert "city/air/x  ts is not a time" in listed.stdout

    replayed = run("deadletter", "replay", env=env)
    assert replayed.returncode == 1
    assert "unreachable" in replayed.stderr
    assert store.count() == 1  # nothing deleted when nothing was replayed
