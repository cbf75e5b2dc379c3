"""The disk spool on a real temporary folder, and IngestPipeline with it (fake store).

Real MQTT and a real store run in tests/integration/test_ingest_spool.py."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import ConfigError, PermanentError, RetryableError
from core.settings import Settings, parse_settings
from core.types import DeadLetter, Point
from ingest.enrich import Enricher
from ingest.mqtt import Delivery
from ingest.pipeline import IngestPipeline
from ingest.spool import (
    DiskSpool,
    SpoolFullError,
    SpoolInUseError,
    decode_points,
    encode_points,
    open_spool,
)
from layers.registry import Device
from tests.conftest import FakeClock

T0 = datetime(2025, 11, 28, 3, 0, tzinfo=UTC)
T0_MS = 1764298800000
TAGS = {"province": "48", "commune": "20242"}


def point(n: int, measurement: str = "air") -> Point:
    return Point(
        measurement,
        {"device": f"aq-{n}", "commune": "20242", "tên": "Phường Hải Châu"},
        {"pm25": 10.0 + n / 3, "pm10": float(n)},
        T0 + timedelta(milliseconds=n),
    )


def batch(first: int, size: int = 3) -> list[Point]:
    return [point(n) for n in range(first, first + size)]


def drain_all(spool: DiskSpool) -> list[list[Point]]:
    batches: list[list[Point]] = []
    for _ in range(1000):
        head = spool.peek_batch()
        if head is None:
            return batches
        batches.append(head[1])
        spool.commit(head[0])
    pytest.fail("spool did not drain")


def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.seg"))


# -- DiskSpool ----------------------------------------------------------------------------


def test_points_round_trip_with_aware_utc_timestamps() -> None:
    points = [*batch(1), Point("water", {"device": "wl-1"}, {"level": -0.1}, T0)]
    again = decode_points(encode_points(points))
    assert again == points
    assert all(p.ts.tzinfo is UTC for p in again)


def test_timestamps_before_1970_and_sub_millisecond_are_handled() -> None:
    old = Point("air", {"device": "x"}, {"pm25": 1.0}, datetime(1969, 12, 31, 23, 59, tzinfo=UTC))
    fine = Point("air", {"device": "x"}, {"pm25": 1.0}, T0 + timedelta(microseconds=1500))
    assert decode_points(encode_points([old, fine])) == [
        old,
        Point("air", {"device": "x"}, {"pm25": 1.0}, T0 + timedelta(milliseconds=1)),
    ]  # the stores keep milliseconds too


def test_batches_come_back_oldest_first_and_commit_frees_them(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1_000_000)
    assert spool.peek_batch() is None
    for first in (1, 10, 20):
        spool.append(batch(first))
    assert spool.batches == 3
    used = spool.bytes_used
    assert used > 0
    head = spool.peek_batch()
    assert head is not None
    assert head[1] == batch(1)
    assert spool.peek_batch() == head  # peeking does not consume
    spool.commit(head[0])
    assert spool.batches == 2
    assert 0 < spool.bytes_used < used
    assert drain_all(spool) == [batch(10), batch(20)]
    assert (spool.batches, spool.bytes_used) == (0, 0)
    assert segments(tmp_path) == []  # a fully committed segment is deleted


def test_only_the_oldest_batch_can_be_committed(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1_000_000)
    spool.append(batch(1))
    spool.append(batch(10))
    head = spool.peek_batch()
    assert head is not None
    with pytest.raises(ValueError, match="not the oldest"):
        spool.commit(head[0] + 1)
    assert spool.batches == 2


def test_a_new_spool_on_the_same_folder_resumes_in_order(tmp_path: Path) -> None:
    first = DiskSpool(tmp_path, max_bytes=1_000_000, segment_bytes=300)
    for start in (1, 10, 20, 30):
        first.append(batch(start))
    head = first.peek_batch()
    assert head is not None
    first.commit(head[0])
    assert len(segments(tmp_path)) >= 2  # small segments: the restart reads several

    first.close()  # the worker stopped (or was killed: the kernel drops the lock)
    second = DiskSpool(tmp_path, max_bytes=1_000_000, segment_bytes=300)
    assert second.batches == 3
    assert second.bytes_used == first.bytes_used
    second.append(batch(40))  # after the restart, behind the old ones
    assert drain_all(second) == [batch(10), batch(20), batch(30), batch(40)]
    second.close()
    assert DiskSpool(tmp_path, max_bytes=1_000_000).batches == 0


def test_torn_last_record_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1_000_000)
    spool.append(batch(1))
    spool.append(batch(10))
    (segment,) = segments(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[:-7])  # the crash came in the middle of the second write
    spool.close()

    with caplog.at_level(logging.WARNING, "cityops.ingest"):
        resumed = DiskSpool(tmp_path, max_bytes=1_000_000)
    assert [r.message for r in caplog.records if "torn or corrupt" in r.message]
    assert resumed.batches == 1
    resumed.append(batch(20))  # goes to a new segment, not behind the torn bytes
    resumed.close()
    assert drain_all(DiskSpool(tmp_path, max_bytes=1_000_000)) == [batch(1), batch(20)]


def test_a_flipped_byte_fails_the_crc_and_skips_the_rest_of_the_segment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1_000_000)
    spool.append(batch(1))
    spool.append(batch(10))
    (segment,) = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[-5] ^= 0xFF  # inside the second record's payload
    segment.write_bytes(bytes(data))
    spool.close()
    with caplog.at_level(logging.WARNING, "cityops.ingest"):
        assert drain_all(DiskSpool(tmp_path, max_bytes=1_000_000)) == [batch(1)]
    assert any("torn or corrupt" in r.message for r in caplog.records)


def test_full_spool_refuses_the_batch_and_writes_nothing(tmp_path: Path) -> None:
    one = len(encode_points(batch(1))) + 18  # header: magic, length, CRC, id
    spool = DiskSpool(tmp_path, max_bytes=2 * one + one // 2)
    spool.append(batch(1))
    spool.append(batch(10))
    sizes = [p.stat().st_size for p in segments(tmp_path)]
    with pytest.raises(SpoolFullError, match="is full") as raised:
        spool.append(batch(20))
    assert isinstance(raised.value, RetryableError)
    assert [p.stat().st_size for p in segments(tmp_path)] == sizes
    assert spool.batches == 2
    head = spool.peek_batch()
    assert head is not None
    spool.commit(head[0])
    spool.append(batch(20))  # room again
    spool.close()
    assert drain_all(DiskSpool(tmp_path, max_bytes=10 * one)) == [batch(10), batch(20)]


def test_usage_past_the_warn_fraction_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one = len(encode_points(batch(1))) + 18
    spool = DiskSpool(tmp_path, max_bytes=10 * one, warn_fraction=0.5)
    with caplog.at_level(logging.WARNING, "cityops.ingest"):
        for start in range(5):
            spool.append(batch(start))
        assert not caplog.records  # exactly half: not past it
        for start in range(5, 9):
            spool.append(batch(start))
    warnings = [r for r in caplog.records if "% full" in r.message]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "60% full" in warnings[0].message


def test_spool_settings(tmp_path: Path) -> None:
    settings = parse_settings({}, environ={}, base_dir=tmp_path)
    assert (settings.ingest.spool_dir, settings.ingest.spool_max_mb) == ("var/spool", 1024)
    spool = open_spool(settings)
    assert spool is not None
    assert spool.folder == tmp_path / "var" / "spool"
    assert spool.folder.is_dir()
    assert spool.max_bytes == 1024 * 1024 * 1024
    off = parse_settings({"ingest": {"spool_dir": None}}, environ={}, base_dir=tmp_path)
    assert open_spool(off) is None
    with pytest.raises(ConfigError, match="spool_max_mb"):
        parse_settings({"ingest": {"spool_max_mb": 0}}, environ={}, base_dir=tmp_path)


# -- IngestPipeline with a spool ----------------------------------------------------------

DEVICES = {
    f"aq-{n}": Device(f"aq-{n}", "air", f"Trạm {n}", 108.2208, 16.0678, "20242", TAGS)
    for n in range(1, 4)
}


class ScriptedStore:
    """Records writes; raises ``down`` while it is set, refuses negative pm25 for good."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self.down: Exception | None = None

    def write(self, points: Sequence[Point]) -> None:
        if self.down is not None:
            raise self.down
        if any(p.fields["pm25"] < 0 for p in points):
            raise PermanentError("pm25 must not be negative")
        self.points.extend(points)


class Letters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def put(self, letter: DeadLetter) -> None:
        self.letters.append(letter)

    def count(self) -> int:
        return len(self.letters)

    def recent(self, limit: int = 50) -> list[DeadLetter]:
        return self.letters[::-1][:limit]


class SpoolHarness:
    def __init__(self, settings: Settings, spool: DiskSpool) -> None:
        self.clock = FakeClock(T0)
        self.store = ScriptedStore()
        self.letters = Letters()
        self.acked: list[int] = []
        self.spool = spool
        self.pipeline = IngestPipeline(
            settings,
            self.store,
            Enricher(DEVICES, lambda *args: pytest.fail(f"unexpected placing {args}")),
            self.letters,
            self.ack,
            clock=self.clock,
            retry_first_s=1.0,
            retry_max_s=4.0,
            spool=spool,
        )
        self.mid = 0

    def ack(self, delivery: Delivery) -> bool:
        self.acked.append(delivery.mid)
        return True

    def good(self, pm25: float | None = None) -> int:
        self.mid += 1
        body = {"ts": T0_MS + self.mid, "pm25": float(self.mid) if pm25 is None else pm25}
        delivery = Delivery(
            "city/air/aq-1", json.dumps(body).encode(), self.mid, 1, self.clock.now(), 1
        )
        self.pipeline.receive(delivery)
        return self.mid

    def after(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pipeline.step()

    def stored_pm25(self) -> list[float]:
        return [p.fields["pm25"] for p in self.store.points]


@pytest.fixture
def spooled(tmp_path: Path) -> SpoolHarness:
    settings = parse_settings(
        {"ingest": {"batch_size": 2, "flush_interval_s": 0.5}}, environ={}, base_dir=tmp_path
    )
    return SpoolHarness(settings, DiskSpool(tmp_path / "spool", max_bytes=1_000_000))


def test_store_down_spools_the_batch_and_acks_it(spooled: SpoolHarness) -> None:
    spooled.store.down = RetryableError("influxdb: connection refused")
    spooled.good()
    spooled.good()
    spooled.after(0)
    assert spooled.acked == [1, 2]  # on disk, fsync'd: acknowledged
    assert spooled.pipeline.pending == 0
    assert (spooled.pipeline.spooled, spooled.spool.batches) == (2, 1)
    assert spooled.pipeline.write_errors == 1
    # While the spool holds batches, new ones go behind them without a store attempt.
    spooled.good()
    spooled.good()
    spooled.after(0.1)
    assert spooled.acked == [1, 2, 3, 4]
    assert spooled.spool.batches == 2
    assert spooled.pipeline.write_errors == 1
    # Backoff: the drain waits for the retry time, and fails again while the store is down.
    spooled.after(0.5)
    assert spooled.pipeline.write_errors == 1
    spooled.after(0.5)
    assert spooled.pipeline.write_errors == 2
    assert spooled.pipeline.seconds_until_due(spooled.clock.now()) == pytest.approx(2.0)
    # The store returns: one batch per round, oldest first, new batches still queued behind.
    spooled.store.down = None
    spooled.good()
    spooled.after(2.0)
    assert spooled.stored_pm25() == [1.0, 2.0]
    assert spooled.pipeline.seconds_until_due(spooled.clock.now()) == 0.0
    spooled.after(0)
    spooled.after(0.5)  # the batch with message 5 is due and goes behind message 4
    spooled.after(0)
    assert spooled.stored_pm25() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert spooled.spool.batches == 0
    assert spooled.acked == [1, 2, 3, 4, 5]
    # Spool empty: straight to the store again.
    spooled.good()
    spooled.after(0.5)
    assert spooled.stored_pm25()[-1] == 6.0
    assert spooled.pipeline.spooled == 5


def test_full_spool_leaves_the_batch_unacknowledged(tmp_path: Path) -> None:
    settings = parse_settings({"ingest": {"batch_size": 1}}, environ={}, base_dir=tmp_path)
    one = len(encode_points(batch(1, size=1))) + 18
    harness = SpoolHarness(settings, DiskSpool(tmp_path / "spool", max_bytes=one + 10))
    harness.store.down = RetryableError("down")
    harness.good()
    harness.after(0)
    harness.good()
    harness.after(0)
    assert harness.acked == [1]
    assert harness.pipeline.pending == 1  # the broker keeps it
    harness.pipeline.drain()  # stopping with the spool full acknowledges nothing more
    assert harness.acked == [1]
    harness.store.down = None
    harness.after(1.0)  # the spooled batch is drained, then the waiting one follows
    harness.after(0)
    assert harness.stored_pm25() == [1.0, 2.0]
    assert harness.acked == [1, 2]


def test_refused_spooled_point_is_dead_lettered_and_the_others_stored(
    spooled: SpoolHarness,
) -> None:
    spooled.store.down = RetryableError("down")
    spooled.good()
    spooled.good(pm25=-1.0)
    spooled.after(0)
    assert spooled.acked == [1, 2]
    spooled.store.down = None
    spooled.after(1.0)
    assert spooled.stored_pm25() == [1.0]
    assert spooled.spool.batches == 0
    (letter,) = spooled.letters.letters
    assert letter.topic == "spool/air"
    assert letter.reason == "store refused the reading: pm25 must not be negative"
    assert json.loads(letter.payload)["f"]["pm25"] == -1.0
    assert spooled.pipeline.dead_lettered == 1


def test_stop_with_the_store_down_spools_everything_waiting(spooled: SpoolHarness) -> None:
    spooled.store.down = RetryableError("down")
    for _ in range(5):
        spooled.good()
    spooled.pipeline.drain()
    assert spooled.acked == [1, 2, 3, 4, 5]
    assert spooled.spool.batches == 3  # batches of 2, 2 and 1
    assert [p.fields["pm25"] for b in drain_all(spooled.spool) for p in b] == [
        1.0,
        2.0,
        3.0,
        4.0,
        5.0,
    ]


def test_a_failed_write_sends_later_batches_to_a_new_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1_000_000)
    spool.append(batch(1))
    real_fsync = os.fsync

    def tear(fd: int) -> None:  # the disk fails after half the record reached the file
        os.ftruncate(fd, os.fstat(fd).st_size - 10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", tear)
    with pytest.raises(OSError, match="No space left"):
        spool.append(batch(10))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert spool.batches == 1
    spool.append(batch(20))
    assert len(segments(tmp_path)) == 2
    spool.close()
    assert drain_all(DiskSpool(tmp_path, max_bytes=1_000_000)) == [batch(1), batch(20)]


def test_unexpected_store_exception_keeps_the_spooled_batch(
    spooled: SpoolHarness, caplog: pytest.LogCaptureFixture
) -> None:
    spooled.store.down = RetryableError("down")
    spooled.good()
    spooled.good()
    spooled.after(0)
    spooled.store.down = RuntimeError("adapter bug")
    with caplog.at_level(logging.WARNING, "cityops.ingest"):
        spooled.after(1.0)
    assert spooled.spool.batches == 1
    assert spooled.pipeline.write_errors == 2
    assert any(r.exc_info for r in caplog.records if "spooled batch not stored" in r.message)
    spooled.store.down = None
    spooled.after(2.0)
    assert spooled.stored_pm25() == [1.0, 2.0]
    assert spooled.spool.batches == 0


def test_a_second_worker_cannot_open_a_spool_in_use(tmp_path: Path) -> None:
    first = DiskSpool(tmp_path, max_bytes=1_000_000)
    with pytest.raises(SpoolInUseError, match="in use by another ingest worker"):
        DiskSpool(tmp_path, max_bytes=1_000_000)
    first.close()
    DiskSpool(tmp_path, max_bytes=1_000_000).close()  # free again once the owner is gone
