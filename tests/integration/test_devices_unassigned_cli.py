"""`cityops devices unassigned` as an operator runs it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.db import make_engine
from ingest.unassigned import SqlUnassignedDevices

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CITYOPS = Path(sys.executable).parent / "cityops"
T0 = datetime(2025, 11, 28, 3, 0, tzinfo=UTC)  # 10:00 in Asia/Ho_Chi_Minh


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.sqlite'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    yield url
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS unassigned_devices")
    engine.dispose()


def run(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CITYOPS), "devices", "unassigned", "--config", "config.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CITYOPS_DATABASE__URL": database_url},
        check=False,
    )


def test_lists_unassigned_devices_in_local_time(database_url: str) -> None:
    empty = run(database_url)
    assert empty.returncode == 0, empty.stderr
    assert "no unassigned devices" in empty.stdout
    engine = make_engine(database_url)
    try:
        registry = SqlUnassignedDevices(engine)
        for second in range(3):
            registry.seen("bus-7", "air", "no_position", T0 + timedelta(seconds=second))
        registry.seen("boat-1", "water", "outside_map", T0 + timedelta(hours=1))
    finally:
        engine.dispose()
    result = run(database_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["device", "kind", "why", "first", "seen", "last", "seen", "count"]
    assert lines[1].split() == [
        "boat-1", "water", "outside_map", "28/11/2025", "11:00:00", "28/11/2025", "11:00:00", "1",
    ]  # fmt: skip
    # first sight written at once; the two later messages wait for the minute to pass
    assert lines[2].split() == [
        "bus-7", "air", "no_position", "28/11/2025", "10:00:00", "28/11/2025", "10:00:00", "1",
    ]  # fmt: skip
    assert "2 unassigned devices (times in Asia/Ho_Chi_Minh)" in result.stdout


def test_unreachable_database_says_so() -> None:
    result = run("postgresql://postgres@127.0.0.1:1/none?connect_timeout=1")
    assert result.returncode == 1
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr
