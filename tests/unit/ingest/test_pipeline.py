"""IngestPipeline without a network: when a message is acknowledged, stored, dead-lettered.

Fakes stand in for the store and dead-letter database so every failure can be scripted;
the real ones run in tests/integration/test_ingest_mosquitto.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import PermanentError, RetryableError
from core.logs import correlation_id
from core.settings import Settings, parse_settings
from core.types import DeadLetter, Point
from ingest.enrich import Enricher
from ingest.mqtt import Delivery
from ingest.pipeline import IngestPipeline
from layers.registry import Device
from tests.conftest import FakeClock

T0 = datetime(2025, 11, 28, 3, 0, tzinfo=UTC)
T0_MS = 1764298800000
TAGS = {"province": "48", "commune": "20242"}
DEVICES = {
    f"aq-{n}": Device(f"aq-{n}", "air", f"Trạm {n}", 108.2208, 16.0678, "20242", TAGS)
    for n in range(1, 4)
}


class FakeStore:
    """Records batches; ``failures`` are raised by the next writes, in order."""

    def __init__(self) -> None:
        self.batches: list[list[Point]] = []
        self.failures: list[Exception] = []
        self.refuse_pm25_below_zero = False

    def write(self, points: Sequence[Point]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        if self.refuse_pm25_below_zero and any(p.fields.get("pm25", 0) < 0 for p in points):
            good = [p for p in points if p.fields.get("pm25", 0) >= 0]
            if good:
                self.batches.append(good)
            raise PermanentError("1 of N points refused, the others were written")
        self.batches.append(list(points))

    @property
    def devices(self) -> list[str]:
        return [point.tags["device"] for batch in self.batches for point in batch]


class FakeDeadLetters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self.down = False
        self.ids: list[str | None] = []  # the log correlation id in force at each put

    def put(self, letter: DeadLetter) -> None:
        self.ids.append(correlation_id())
        if self.down:
            raise RetryableError("database is locked")
        self.letters.append(letter)

    def count(self) -> int:
        return len(self.letters)

    def recent(self, limit: int = 50) -> list[DeadLetter]:
        return self.letters[::-1][:limit]


class Acks:
    def __init__(self) -> None:
        self.mids: list[int] = []
        self.connection = 1

    def __call__(self, delivery: Delivery) -> bool:
        if delivery.connection != self.connection:
            return False
        self.mids.append(delivery.mid)
        return True


class Harness:
    def __init__(self, settings: Settings) -> None:
        self.clock = FakeClock(T0)
        self.store = FakeStore()
        self.letters = FakeDeadLetters()
        self.acks = Acks()
        self.pipeline = IngestPipeline(
            settings,
            self.store,
            Enricher(DEVICES, lambda *args: pytest.fail(f"unexpected placing {args}")),
            self.letters,
            self.acks,
            clock=self.clock,
            retry_first_s=1.0,
            retry_max_s=4.0,
        )
        self.mid = 0

    def deliver(self, payload: bytes | dict[str, object], device: str = "aq-1") -> int:
        self.mid += 1
        body = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        self.pipeline.receive(
            Delivery(
                f"city/air/{device}", body, self.mid, 1, self.clock.now(), self.acks.connection
            )
        )
        return self.mid

    def good(self, device: str = "aq-1", pm25: float = 10.0) -> int:
        return self.deliver({"ts": T0_MS, "pm25": pm25}, device)

    def after(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pipeline.step()


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    settings = parse_settings(
        {"ingest": {"batch_size": 3, "flush_interval_s": 0.5, "max_in_flight": 4}},
        environ={},
        base_dir=tmp_path,
    )
    return Harness(settings)


def test_nothing_is_acked_before_the_batch_is_written(harness: Harness) -> None:
    harness.good()
    harness.good("aq-2")
    harness.after(0.1)
    assert harness.store.batches == []
    assert harness.acks.mids == []
    assert harness.pipeline.pending == 2
    harness.after(0.4)  # the batch is 0.5 s old: due
    assert harness.store.devices == ["aq-1", "aq-2"]
    assert harness.acks.mids == [1, 2]
    assert harness.pipeline.pending == 0
    assert harness.pipeline.stored == 2


def test_full_batch_is_written_without_waiting(harness: Harness) -> None:
    for device in ("aq-1", "aq-2", "aq-3", "aq-1"):
        harness.good(device)
    harness.after(0)
    assert harness.store.devices == ["aq-1", "aq-2", "aq-3"]
    assert harness.acks.mids == [1, 2, 3]
    assert harness.pipeline.seconds_until_due(harness.clock.now()) == pytest.approx(0.5)


def test_point_carries_device_units_and_exact_time(harness: Harness) -> None:
    harness.deliver({"ts": T0_MS + 123, "pm25": 35.2, "pm10": 61})
    harness.after(1)
    assert harness.store.batches == [
        [
            Point(
                "air",
                {"device": "aq-1", "province": "48", "commune": "20242"},
                {"pm25": 35.2, "pm10": 61.0},
                T0 + timedelta(milliseconds=123),
            )
        ]
    ]


def test_bad_message_is_dead_lettered_then_acked_in_arrival_order(harness: Harness) -> None:
    first = harness.good()
    bad = harness.deliver(b'{"ts": 1764298800000, "pm25": "high"}')
    # The bad message is kept at once but its ack waits for the valid one before it.
    assert [letter.reason for letter in harness.letters.letters] == [
        "metric 'pm25' must be a number, not a string"
    ]
    assert harness.letters.letters[0].payload == b'{"ts": 1764298800000, "pm25": "high"}'
    assert harness.letters.letters[0].topic == "city/air/aq-1"
    assert harness.acks.mids == []
    harness.after(1)
    assert harness.acks.mids == [first, bad]
    assert (harness.pipeline.stored, harness.pipeline.dead_lettered) == (1, 1)


def test_unknown_device_is_stored_under_the_unassigned_unit(harness: Harness) -> None:
    harness.good("bus-7")
    harness.after(1)
    assert harness.letters.letters == []
    assert harness.store.batches[0][0].tags == {
        "device": "bus-7",
        "province": "unassigned",
        "commune": "unassigned",
    }
    assert harness.acks.mids == [1]


def test_store_outage_keeps_the_batch_unacked_and_retries_with_backoff(harness: Harness) -> None:
    harness.store.failures = [RetryableError("connection refused")] * 2
    harness.good()
    harness.after(0.5)  # attempt 1 fails: retry in 1 s
    assert harness.pipeline.write_errors == 1
    assert harness.acks.mids == []
    harness.good("aq-2")  # arrives meanwhile: waits behind the kept batch
    harness.after(0.9)
    assert harness.pipeline.write_errors == 1  # backoff not over
    harness.after(0.1)  # attempt 2 fails: retry in 2 s
    assert harness.pipeline.write_errors == 2
    assert harness.pipeline.seconds_until_due(harness.clock.now()) == pytest.approx(2.0)
    harness.after(2.0)  # attempt 3 succeeds, then the next batch
    assert harness.store.batches[0][0].tags["device"] == "aq-1"
    assert harness.acks.mids == [1]
    harness.after(0)
    assert harness.store.devices == ["aq-1", "aq-2"]
    assert harness.acks.mids == [1, 2]
    assert harness.pipeline.pending == 0


@pytest.mark.allow_logged_exceptions
def test_unexpected_store_exception_is_treated_as_retryable(harness: Harness) -> None:
    harness.store.failures = [KeyError("bug in an adapter")]
    harness.good()
    harness.after(0.5)
    assert harness.acks.mids == []
    harness.after(1)
    assert harness.acks.mids == [1]


def test_points_the_store_refuses_are_dead_lettered_the_others_stored(harness: Harness) -> None:
    harness.store.refuse_pm25_below_zero = True
    harness.good("aq-1", 5)
    harness.good("aq-2", -1)
    harness.good("aq-3", 7)
    harness.after(0)
    assert sorted(set(harness.store.devices)) == ["aq-1", "aq-3"]
    assert [letter.topic for letter in harness.letters.letters] == ["city/air/aq-2"]
    assert harness.letters.letters[0].reason.startswith("store refused the reading")
    assert harness.acks.mids == [1, 2, 3]
    assert (harness.pipeline.stored, harness.pipeline.dead_lettered) == (2, 1)


def test_dead_letter_database_down_keeps_the_message_unacked(harness: Harness) -> None:
    harness.letters.down = True
    harness.deliver(b"not json")
    harness.deliver(b"[]")
    assert harness.letters.letters == []
    harness.after(0.5)
    assert harness.acks.mids == []
    harness.letters.down = False
    harness.after(1.0)
    assert [letter.payload for letter in harness.letters.letters] == [b"not json", b"[]"]
    assert harness.acks.mids == [1, 2]
    assert harness.pipeline.dead_lettered == 2


def test_ack_of_a_lost_connection_is_skipped(harness: Harness) -> None:
    harness.good()
    harness.acks.connection = 2  # reconnected before the batch was written
    harness.after(1)
    assert harness.store.devices == ["aq-1"]
    assert harness.acks.mids == []
    assert harness.pipeline.acks_skipped == 1
    assert harness.pipeline.pending == 0


def test_drain_writes_everything_once(harness: Harness) -> None:
    for device in ("aq-1", "aq-2", "aq-3", "aq-1", "aq-2"):
        harness.good(device)
    harness.pipeline.drain()
    assert len(harness.store.devices) == 5
    assert harness.acks.mids == [1, 2, 3, 4, 5]


def test_drain_with_the_store_down_leaves_messages_unacked(harness: Harness) -> None:
    harness.store.failures = [RetryableError("down")] * 5
    harness.good()
    harness.pipeline.drain()
    assert harness.acks.mids == []
    assert harness.pipeline.pending == 1
    assert harness.pipeline.write_errors == 1


def test_reading_pauses_at_max_in_flight_and_resumes_when_acknowledged(
    harness: Harness,
) -> None:
    harness.store.failures = [RetryableError("down")]
    for _ in range(3):
        harness.good()
    assert harness.pipeline.accepting  # 3 of 4
    harness.good()
    assert not harness.pipeline.accepting  # 4 unacknowledged: the worker stops reading
    harness.after(0)  # the store is down: still unacknowledged
    assert not harness.pipeline.accepting
    harness.after(1.0)  # the retry stores the batch of 3 (batch_size) ...
    assert harness.acks.mids == [1, 2, 3]
    assert harness.pipeline.accepting


def test_log_records_carry_the_message_or_batch_they_are_about(harness: Harness) -> None:
    harness.deliver(b"not json")  # mid 1
    assert harness.letters.ids == ["city/air/aq-1#1"]
    assert correlation_id() is None  # reset after the dead letter
    harness.store.failures.append(PermanentError("refused"))
    harness.good()
    harness.good("aq-2")
    seen: list[str | None] = []
    real = harness.pipeline._after_write

    def after_write(*args: object) -> bool:
        seen.append(correlation_id())
        return real(*args)  # type: ignore[arg-type]

    harness.pipeline._after_write = after_write  # type: ignore[method-assign]
    harness.after(0.5)
    assert seen == ["batch-2"]  # the batch's first message (the letter was message 1)
    assert correlation_id() is None
