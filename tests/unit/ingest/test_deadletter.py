"""SqlDeadLetterStore on a real SQLite file (the PostgreSQL run is an integration test)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from core.db import make_engine
from core.errors import RetryableError
from core.types import DeadLetter
from ingest.deadletter import SqlDeadLetterStore

T0 = datetime(2025, 11, 28, 3, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine("sqlite:///state/cityops-state.sqlite", tmp_path)
    yield engine
    engine.dispose()


def letter(minute: int, reason: str = "payload is not JSON", payload: bytes = b"{") -> DeadLetter:
    return DeadLetter(T0 + timedelta(minutes=minute), f"city/air/aq-{minute}", payload, reason)


def test_put_count_recent_round_trip(engine: Engine) -> None:
    store = SqlDeadLetterStore(engine)
    assert store.count() == 0
    assert store.recent() == []
    binary = bytes(range(256))  # not UTF-8: must come back byte for byte
    store.put(letter(1, "payload is not UTF-8", binary))
    store.put(letter(2, "metric 'pm25' must be a number, not a string"))
    assert store.count() == 2
    newest, oldest = store.recent()
    assert newest == letter(2, "metric 'pm25' must be a number, not a string")
    assert oldest.payload == binary
    assert oldest.received_at == T0 + timedelta(minutes=1)
    assert oldest.received_at.tzinfo is UTC


def test_recent_is_newest_first_and_limited(engine: Engine) -> None:
    store = SqlDeadLetterStore(engine)
    for minute in (3, 1, 2):
        store.put(letter(minute))
    assert [item.topic for item in store.recent(limit=2)] == ["city/air/aq-3", "city/air/aq-2"]
    assert store.recent(limit=0) == []


def test_times_in_another_zone_are_stored_as_the_same_instant(engine: Engine) -> None:
    store = SqlDeadLetterStore(engine)
    hanoi = timezone(timedelta(hours=7))
    store.put(DeadLetter(datetime(2025, 11, 28, 10, 0, tzinfo=hanoi), "t", b"x", "r"))
    assert store.recent()[0].received_at == T0


def test_naive_times_are_refused(engine: Engine) -> None:
    store = SqlDeadLetterStore(engine)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.put(DeadLetter(datetime(2025, 11, 28, 3, 0), "t", b"x", "r"))
    assert store.count() == 0


def test_vietnamese_reason_and_nul_are_kept_readable(engine: Engine) -> None:
    store = SqlDeadLetterStore(engine)
    store.put(letter(1, "thiết bị không xác định\x00"))
    assert store.recent()[0].reason == "thiết bị không xác định\\x00"


def test_a_second_store_on_the_same_database_sees_the_letters(tmp_path: Path) -> None:
    first = make_engine("sqlite:///state.sqlite", tmp_path)
    SqlDeadLetterStore(first).put(letter(1))
    first.dispose()
    second = make_engine("sqlite:///state.sqlite", tmp_path)
    try:
        assert SqlDeadLetterStore(second).count() == 1
    finally:
        second.dispose()


def test_unreachable_database_is_retryable(tmp_path: Path) -> None:
    # A folder where the database file should be: SQLite cannot open it.
    (tmp_path / "db").mkdir()
    engine = create_engine(f"sqlite:///{tmp_path / 'db'}")
    try:
        with pytest.raises(RetryableError, match="dead-letter table could not be created"):
            SqlDeadLetterStore(engine)
    finally:
        engine.dispose()


def test_put_failure_is_retryable(engine: Engine) -> None:
    store = SqlDeadLetterStore(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE dead_letters")
    with pytest.raises(RetryableError, match="dead letter could not be stored"):
        store.put(letter(1))
    with pytest.raises(RetryableError, match="could not be counted"):
        store.count()
    with pytest.raises(RetryableError, match="could not be read"):
        store.recent()
