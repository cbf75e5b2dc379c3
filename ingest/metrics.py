"""Self-metrics of the ingest worker: a registry cheap enough to touch per message, its
Prometheus text rendering (format 0.0.4), and the snapshot Point the dashboard reads.

The worker thread is the only writer: plain int attributes and increments of a dict whose
keys are fixed at start, no locks. Readers (the exporter thread, the snapshot timer) take
a :class:`MetricsSnapshot`: CPython copies a list or dict in one step under the GIL, so a
snapshot never fails half-way; it may miss an increment made meanwhile, which the next
one shows. A histogram's count is the sum of its buckets, so ``+Inf`` always equals
``_count`` in the exposition. Names, types and buckets: docs/design/007-self-metrics.md.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from core.errors import DECODE_CODES, PermanentError, RetryableError
from core.exposition import HistogramCopy, histogram_bounds
from core.types import Point

log = logging.getLogger("cityops.ingest")

# Store writes: SQLite commits a 1000-point batch in a few ms, InfluxDB over a LAN in
# 5–100 ms; a slow disk or a busy server reaches seconds; store.influxdb.timeout_s
# (default 10 s) is the ceiling, 30 catches a raised timeout.
LATENCY_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Device time → stored: normally flush_interval_s plus the network (under a second); after
# a store or broker outage, the spool and the broker's backlog drain over minutes to hours;
# a device that buffered offline may send a day late.
LAG_BUCKETS_S: Final = (
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
)  # fmt: skip

# Dead-letter reason codes (a bounded label set: free text would explode the series):
# DecodeError's codes (core/errors.py), then
DEAD_LETTER_REASONS: Final = (
    *DECODE_CODES,
    "internal",  # an unexpected exception while decoding (a bug; the message is kept)
    "store_refused",  # the store refused the points (PermanentError), also from the spool
    "other",  # any code not above
)

MEASUREMENT: Final = "cityops_ingest"
WORKER_TAG: Final = "worker"
PREFIX: Final = "cityops_ingest_"


@dataclass(frozen=True, slots=True)
class HistogramSnapshot(HistogramCopy):
    """Per-bucket counts (not cumulative; the last one counts values above every bound),
    the sum, and what was observed between two snapshots."""

    def since(self, earlier: HistogramSnapshot | None) -> HistogramSnapshot:
        """What was observed after ``earlier``; everything when there is no usable earlier
        one (none, other buckets, or a restart made a count go down)."""
        if earlier is None or earlier.bounds != self.bounds:
            return self
        window = tuple(now - then for now, then in zip(self.counts, earlier.counts, strict=True))
        if any(count < 0 for count in window):
            return self
        return HistogramSnapshot(self.bounds, window, self.sum - earlier.sum)

    def quantile(self, q: float) -> float | None:
        """Prometheus' ``histogram_quantile``: linear inside the bucket holding rank q·count;
        the first bucket starts at 0; above the highest bound, that bound. None when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be between 0 and 1: {q}")
        total = self.count
        if total == 0:
            return None
        rank = q * total
        below = 0
        for index, count in enumerate(self.counts):
            if count and below + count >= rank:
                if index == len(self.bounds):
                    return self.bounds[-1]
                lower = self.bounds[index - 1] if index else 0.0
                upper = self.bounds[index]
                return lower + (upper - lower) * max(rank - below, 0.0) / count
            below += count
        return self.bounds[-1]


class Histogram:
    """Fixed buckets; ``observe`` is one bisect and two additions."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = histogram_bounds(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le = ≤).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self.bounds, tuple(self.counts), self.sum)


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """The registry at one moment (what the exporter renders and the snapshot Point holds)."""

    taken_at: datetime
    received: int
    stored: int
    spooled: int
    batches_written: int
    write_errors: int
    store_retries: int
    connects: int
    pending: int
    spool_bytes: int
    spool_batches: int
    mqtt_connected: int
    dead_lettered: Mapping[str, int]
    write_latency: HistogramSnapshot
    lag: HistogramSnapshot
    lag_last_s: float | None


class IngestMetrics:
    """The worker's counters and gauges. Written by the worker thread only; see the module
    docstring for the readers. Counters only grow; gauges are set by the worker."""

    __slots__ = (
        "batches_written",
        "connects",
        "dead_lettered",
        "lag",
        "lag_last_s",
        "mqtt_connected",
        "pending",
        "received",
        "spool_batches",
        "spool_bytes",
        "spooled",
        "store_retries",
        "stored",
        "write_errors",
        "write_latency",
    )

    def __init__(
        self,
        *,
        latency_buckets_s: Sequence[float] = LATENCY_BUCKETS_S,
        lag_buckets_s: Sequence[float] = LAG_BUCKETS_S,
    ) -> None:
        self.received = 0  # messages from MQTT
        self.stored = 0  # messages whose points are in the store
        self.spooled = 0  # messages acknowledged once their batch was in the disk spool
        self.batches_written = 0  # successful store writes (batches, spool drains included)
        self.write_errors = 0  # failed store writes
        self.store_retries = 0  # write attempts of data an earlier attempt failed to store
        self.connects = 0  # MQTT connections made (1 + reconnects)
        self.pending = 0  # gauge: received and not yet acknowledged
        self.spool_bytes = 0  # gauge
        self.spool_batches = 0  # gauge
        self.mqtt_connected = 0  # gauge: 1 while the broker session is up
        # Every code present from the start: a series that exists at 0 makes rate() right,
        # and a dict that never grows can be copied while the worker writes.
        self.dead_lettered: dict[str, int] = dict.fromkeys(DEAD_LETTER_REASONS, 0)
        self.write_latency = Histogram(latency_buckets_s)
        self.lag = Histogram(lag_buckets_s)
        self.lag_last_s: float | None = None  # the oldest point of the last stored batch

    def dead_letter(self, reason: str, count: int = 1) -> None:
        """Count ``count`` dead-lettered messages (or spooled points) under a reason code
        of :data:`DEAD_LETTER_REASONS`; anything else counts as "other"."""
        key = reason if reason in self.dead_lettered else "other"
        self.dead_lettered[key] += count

    def batch_stored(
        self,
        messages: int,
        latency_s: float,
        device_ts: Iterable[datetime],
        stored_at: datetime,
    ) -> None:
        """One successful store write of ``messages`` messages that took ``latency_s``;
        ``device_ts`` are the device timestamps to measure lag on (one per point, or one per
        message to save time)."""
        self.stored += messages
        self.batches_written += 1
        self.write_latency.observe(latency_s)
        self.observe_lag(device_ts, stored_at)

    def observe_lag(self, device_ts: Iterable[datetime], stored_at: datetime) -> None:
        """Lag of each timestamp behind ``stored_at``. A device clock ahead of ours gives a
        negative lag: the histogram counts it as 0 (its sum must not go down), the last
        value keeps the sign."""
        stored_s = stored_at.timestamp()
        worst: float | None = None
        observe = self.lag.observe
        for ts in device_ts:
            lag = stored_s - ts.timestamp()
            observe(lag if lag > 0.0 else 0.0)
            if worst is None or lag > worst:
                worst = lag
        if worst is not None:
            self.lag_last_s = worst

    def snapshot(self, taken_at: datetime) -> MetricsSnapshot:
        return MetricsSnapshot(
            taken_at=taken_at,
            received=self.received,
            stored=self.stored,
            spooled=self.spooled,
            batches_written=self.batches_written,
            write_errors=self.write_errors,
            store_retries=self.store_retries,
            connects=self.connects,
            pending=self.pending,
            spool_bytes=self.spool_bytes,
            spool_batches=self.spool_batches,
            mqtt_connected=self.mqtt_connected,
            dead_lettered=dict(self.dead_lettered),
            write_latency=self.write_latency.snapshot(),
            lag=self.lag.snapshot(),
            lag_last_s=self.lag_last_s,
        )


# -- the snapshot Point (for the dashboard) ----------------------------------------------

COUNTER_FIELDS: Final = (
    "received",
    "stored",
    "spooled",
    "batches_written",
    "write_errors",
    "store_retries",
    "connects",
)
GAUGE_FIELDS: Final = ("pending", "spool_bytes", "spool_batches", "mqtt_connected")


def dead_letter_field(reason: str) -> str:
    return f"dead_lettered_{reason}"


def snapshot_point(
    current: MetricsSnapshot,
    previous: MetricsSnapshot | None,
    *,
    worker: str,
    interval_s: float,
) -> Point:
    """The Point written every ``interval_s`` (measurement ``cityops_ingest``, tag
    ``worker``): counters since start, gauges now, and p50/p99 of write latency and lag
    over the interval since ``previous`` (since start when None). Quantile fields are left
    out when nothing was written in the interval: an old p99 must not look current."""
    fields: dict[str, float] = {name: float(getattr(current, name)) for name in COUNTER_FIELDS}
    fields |= {name: float(getattr(current, name)) for name in GAUGE_FIELDS}
    fields["dead_lettered"] = float(sum(current.dead_lettered.values()))
    for reason, count in current.dead_lettered.items():
        fields[dead_letter_field(reason)] = float(count)
    fields["interval_s"] = float(interval_s)
    if current.lag_last_s is not None:
        fields["lag_last_s"] = current.lag_last_s
    windows = {
        "write_latency": current.write_latency.since(previous.write_latency if previous else None),
        "lag": current.lag.since(previous.lag if previous else None),
    }
    for name, window in windows.items():
        fields[f"{name}_count"] = float(window.count)
        for label, q in (("p50", 0.5), ("p99", 0.99)):
            value = window.quantile(q)
            if value is not None:
                fields[f"{name}_{label}_s"] = value
    return Point(MEASUREMENT, {WORKER_TAG: worker}, fields, current.taken_at)


class PointSink(Protocol):
    """Where snapshots go: the Store port's write."""

    def write(self, points: Sequence[Point]) -> None: ...


class SnapshotWriter:
    """Writes :func:`snapshot_point` through the store every ``interval_s``, from the worker
    thread (the loop calls :meth:`seconds_until_due` to bound its wait and
    :meth:`write_if_due` every round). A failed write is logged and skipped, never spooled
    nor retried: the next snapshot carries the same counters."""

    def __init__(
        self, metrics: IngestMetrics, store: PointSink, *, worker: str, interval_s: float
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._worker = worker
        self._interval_s = interval_s
        self._previous: MetricsSnapshot | None = None
        self._next_at: datetime | None = None  # None: write on the first round
        self.failures = 0

    def seconds_until_due(self, now: datetime) -> float:
        if self._next_at is None:
            return 0.0
        return max(0.0, (self._next_at - now).total_seconds())

    def write_if_due(self, now: datetime) -> bool:
        """Write a snapshot when due; True when one was written."""
        if self._next_at is not None and now < self._next_at:
            return False
        self._next_at = now + timedelta(seconds=self._interval_s)
        current = self._metrics.snapshot(now)
        point = snapshot_point(
            current, self._previous, worker=self._worker, interval_s=self._interval_s
        )
        try:
            self._store.write([point])
        except (RetryableError, PermanentError) as exc:
            self.failures += 1
            log.warning("ingest metrics snapshot not stored: %s", exc)
            return False
        except Exception:  # an adapter bug: logged (and counted), ingest goes on
            self.failures += 1
            log.exception("ingest metrics snapshot failed unexpectedly")
            return False
        self._previous = current
        return True
