"""SqlUnassignedDevices on SQLite: first sight written at once, then at most once a minute,
counts added up, the table bounded, a database outage never raising."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event

from core.db import make_engine
from ingest.unassigned import SqlUnassignedDevices

T0 = datetime(2025, 11, 28, 3, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")


def count_writes(engine: Engine) -> list[str]:
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(("INSERT", "DELETE")):
            statements.append(statement)

    return statements


def test_first_sight_is_written_then_once_a_minute(engine: Engine) -> None:
    registry = SqlUnassignedDevices(engine)
    writes = count_writes(engine)
    for second in range(0, 125, 5):  # 25 messages over two minutes
        registry.seen("bus-7", "air", "no_position", T0 + timedelta(seconds=second))
    assert len(writes) == 3  # at 0 s, 60 s, 120 s
    (device,) = registry.recent()
    assert (device.device_id, device.kind, device.why, device.count) == (
        "bus-7",
        "air",
        "no_position",
        25,
    )
    assert (device.first_seen, device.last_seen) == (T0, T0 + timedelta(seconds=120))
    assert device.first_seen.tzinfo is UTC


def test_a_second_worker_adds_to_the_count(engine: Engine) -> None:
    SqlUnassignedDevices(engine).seen("bus-7", "air", "no_position", T0)
    SqlUnassignedDevices(engine).seen("bus-7", "air", "outside_map", T0 - timedelta(seconds=9))
    (device,) = SqlUnassignedDevices(engine).recent()
    assert (device.count, device.why, device.first_seen, device.last_seen) == (
        2,
        "outside_map",
        T0 - timedelta(seconds=9),
        T0,
    )


def test_table_is_bounded_least_recently_seen_go_first(engine: Engine) -> None:
    registry = SqlUnassignedDevices(engine, max_devices=3)
    for index in range(5):
        registry.seen(f"bus-{index}", "air", "no_position", T0 + timedelta(seconds=index))
    assert [d.device_id for d in registry.recent()] == ["bus-4", "bus-3", "bus-2"]
    assert len(SqlUnassignedDevices(engine, max_devices=3).recent()) == 3


def test_zero_devices_turns_the_registry_off(engine: Engine) -> None:
    registry = SqlUnassignedDevices(engine, max_devices=0)
    registry.seen("bus-7", "air", "no_position", T0)
    assert registry.recent() == []


def test_database_outage_is_logged_not_raised(engine: Engine, tmp_path: Path) -> None:
    registry = SqlUnassignedDevices(engine)
    engine.dispose()
    (tmp_path / "state.sqlite").unlink()
    (tmp_path / "state.sqlite").mkdir()  # the file is gone and cannot be recreated
    registry.seen("bus-7", "air", "no_position", T0)
    assert registry.write_errors == 1
    registry.seen("bus-7", "air", "no_position", T0 + timedelta(seconds=1))
    assert registry.write_errors == 1  # not retried on every message
