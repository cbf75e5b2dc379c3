"""SqlDeadLetterStore on a real PostgreSQL (the production state database)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine

from core.db import make_engine
from core.errors import RetryableError
from core.types import DeadLetter
from ingest.deadletter import SqlDeadLetterStore

pytestmark = pytest.mark.integration

T0 = datetime(2025, 11, 28, 3, 0, tzinfo=UTC)


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS dead_letters")
    engine.dispose()


def test_round_trip_keeps_bytes_reason_and_instant(engine: Engine) -> None:
    store = SqlDeadLetterStore(engine)
    binary = bytes(range(256))
    hanoi = timezone(timedelta(hours=7))
    store.put(DeadLetter(T0, "city/air/aq-1", binary, "payload is not UTF-8"))
    store.put(
        DeadLetter(
            datetime(2025, 11, 28, 10, 1, tzinfo=hanoi),
            "city/air/aq-2",
            b'{"pm25": "cao"}',
            "thiết bị không xác định\x00",
        )
    )
    assert store.count() == 2
    newest, oldest = store.recent()
    assert newest.received_at == T0 + timedelta(minutes=1)
    assert newest.received_at.tzinfo is UTC
    assert newest.reason == "thiết bị không xác định\\x00"
    assert oldest == DeadLetter(T0, "city/air/aq-1", binary, "payload is not UTF-8")
    assert [item.topic for item in store.recent(limit=1)] == ["city/air/aq-2"]


def test_second_store_on_an_existing_table(engine: Engine) -> None:
    SqlDeadLetterStore(engine).put(DeadLetter(T0, "t", b"x", "r"))
    assert SqlDeadLetterStore(engine).count() == 1


def test_unreachable_server_is_retryable() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/none?connect_timeout=1")
    try:
        with pytest.raises(RetryableError, match="dead-letter table could not be created"):
            SqlDeadLetterStore(engine)
    finally:
        engine.dispose()
