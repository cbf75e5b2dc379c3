"""How IngestPipeline writes batches: refused messages found by halves, and a batch written
on a writer thread while the next one is received (acknowledged in order all the same)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.errors import PermanentError, RetryableError
from core.settings import parse_settings
from core.types import Point
from ingest.enrich import Enricher
from ingest.pipeline import IngestPipeline
from tests.unit.ingest.test_pipeline import DEVICES, Harness


class RefusingStore:
    """Refuses any batch holding a negative pm25 (keeping the others, as InfluxDB does)."""

    def __init__(self) -> None:
        self.calls = 0
        self.kept: list[float] = []
        self.down_after: int | None = None  # calls that succeed before RetryableError

    def write(self, points: Sequence[Point]) -> None:
        self.calls += 1
        if self.down_after is not None and self.calls > self.down_after:
            raise RetryableError("store unreachable (test)")
        values = [point.fields["pm25"] for point in points]
        self.kept += [value for value in values if value >= 0]
        if any(value < 0 for value in values):
            raise PermanentError("partial write: field type conflict (test) dropped=1")


def big_batch_harness(tmp_path: Path, size: int) -> Harness:
    settings = parse_settings(
        {"ingest": {"batch_size": size, "flush_interval_s": 1, "max_in_flight": size}},
        environ={},
        base_dir=tmp_path,
    )
    return Harness(settings)


def test_refused_messages_are_found_by_halves(tmp_path: Path) -> None:
    harness = big_batch_harness(tmp_path, 64)
    store = RefusingStore()
    harness.store = store  # type: ignore[assignment]
    harness.pipeline._store = store
    bad = {5, 40}
    for n in range(64):
        harness.good(f"aq-{n % 3 + 1}", -1.0 if n in bad else float(n))
    harness.after(0)
    assert [letter.reason for letter in harness.letters.letters] == [
        "store refused the reading: partial write: field type conflict (test) dropped=1"
    ] * 2
    assert harness.acks.mids == list(range(1, 65))  # every one, in arrival order
    assert (harness.pipeline.stored, harness.pipeline.dead_lettered) == (62, 2)
    metrics = harness.pipeline.metrics
    assert metrics.dead_lettered["store_refused"] == 2
    assert metrics.batches_written == metrics.write_latency.snapshot().count >= 2
    assert sorted(set(store.kept)) == [float(n) for n in range(64) if n not in bad]
    # one message at a time would take 1 + 64 writes; by halves 1 + 2 * 2 * log2(64) at most
    assert store.calls <= 1 + 2 * 2 * 6


def test_store_lost_while_halving_keeps_the_rest_unacknowledged_in_order(
    tmp_path: Path,
) -> None:
    harness = big_batch_harness(tmp_path, 8)
    store = RefusingStore()
    store.down_after = 2  # the batch (refused), its first half (stored), then down
    harness.pipeline._store = store
    for n in range(8):
        harness.good("aq-1", -1.0 if n == 6 else float(n))
    harness.after(0)
    assert harness.acks.mids == [1, 2, 3, 4]
    assert harness.pipeline.pending == 4
    store.down_after = None
    harness.after(1.0)  # the retry, after the backoff
    assert harness.acks.mids == list(range(1, 9))
    assert [letter.topic for letter in harness.letters.letters] == ["city/air/aq-1"]


class GatedStore:
    """Each write waits until the test opens the gate; records what it wrote."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[float]] = []

    def write(self, points: Sequence[Point]) -> None:
        self.started.set()
        if not self.gate.wait(5):
            raise RetryableError("gate never opened")
        self.batches.append([point.fields["pm25"] for point in points])


@pytest.fixture
def writer() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as executor:
        yield executor


def test_a_batch_is_written_on_the_writer_while_the_next_is_received(
    tmp_path: Path, writer: ThreadPoolExecutor
) -> None:
    harness = big_batch_harness(tmp_path, 2)
    store = GatedStore()
    pipeline = IngestPipeline(
        parse_settings({"ingest": {"batch_size": 2}}, environ={}, base_dir=tmp_path),
        store,
        Enricher(DEVICES, lambda *args: pytest.fail("no placing")),
        harness.letters,
        harness.acks,
        clock=harness.clock,
        writer=writer,
    )
    harness.pipeline = pipeline
    harness.good("aq-1", 1)
    harness.good("aq-2", 2)
    pipeline.step()  # a full batch: handed to the writer, not waited for
    assert store.started.wait(5)
    harness.good("aq-3", 3)
    harness.good("aq-1", 4)
    pipeline.step()  # still writing: the next batch waits, nothing acknowledged
    assert pipeline.seconds_until_due(harness.clock.now()) == pytest.approx(0.002)
    assert harness.acks.mids == []
    store.gate.set()
    for _ in range(500):
        pipeline.step()
        if len(store.batches) == 2 and pipeline.pending == 0:
            break
        threading.Event().wait(0.01)
    assert store.batches == [[1.0, 2.0], [3.0, 4.0]]
    assert harness.acks.mids == [1, 2, 3, 4]


def test_drain_waits_for_the_write_under_way(tmp_path: Path, writer: ThreadPoolExecutor) -> None:
    harness = big_batch_harness(tmp_path, 2)
    store = GatedStore()
    pipeline = IngestPipeline(
        parse_settings({"ingest": {"batch_size": 2}}, environ={}, base_dir=tmp_path),
        store,
        Enricher(DEVICES, lambda *args: pytest.fail("no placing")),
        harness.letters,
        harness.acks,
        clock=harness.clock,
        writer=writer,
    )
    harness.pipeline = pipeline
    harness.good("aq-1", 1)
    harness.good("aq-2", 2)
    pipeline.step()
    harness.good("aq-3", 3)
    threading.Timer(0.1, store.gate.set).start()
    pipeline.drain()
    assert store.batches == [[1.0, 2.0], [3.0]]
    assert harness.acks.mids == [1, 2, 3]
