"""Retention and hourly roll-ups: the pure logic both store adapters share (design 017).

A roll-up row holds, per series (measurement and tag set), field and hour, the count, sum,
min and max of the readings of that hour and the last one's value. Adding the rows of
whole hours gives exactly what :func:`core.store.rollup.roll_up_window` needs, so a mean
over a year (Σsum / Σcount), a KPI's sum and a min or max are the same numbers as from
the raw readings. The adapters record up to which hour the roll-ups are complete (the
*rolled-up edge*); a window reads roll-ups only below it, so a reading not rolled up yet
is still read raw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from core.store.rollup import DeviceLast, DeviceStats

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# A window this long reads its whole hours from the roll-ups even while the readings exist:
# a two-day window is ~50 roll-up rows per series instead of ~600 readings (5 min period).
LONG_WINDOW_MS = 2 * DAY_MS
# Each periodic run recomputes the last hours again (like a CQ's RESAMPLE FOR 3h), so a
# reading that arrives late (a spool drain, a gateway back online) is rolled up too.
LOOKBACK_MS = 3 * HOUR_MS
# The first run, and a backfill, work through the past in slices of this many hours, so
# one statement never holds a year of readings.
BACKFILL_SLICE_MS = 7 * DAY_MS
# One periodic run recomputes at most this much of a backlog (a first run over a long
# history, or a job that stood still): one slice, about a second on InfluxDB where a year
# in one call took 48.8 s inside an alert round. The rolled-up edge moves by what was done
# and the next runs (every 5 min) go on; hours above the edge are read raw meanwhile.
CATCH_UP_MS = BACKFILL_SLICE_MS


def floor_hour(ms: int) -> int:
    """The start of the hour holding ``ms`` (epoch-aligned; right before 1970 too)."""
    return ms - ms % HOUR_MS


def ceil_hour(ms: int) -> int:
    """The first whole hour at or after ``ms``."""
    return -(-ms // HOUR_MS) * HOUR_MS


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """Where each part of a window [start, end) is read: ``raw`` ranges (the ragged edges,
    or the whole window) and ``rollup``, the whole hours [first, last) read from roll-ups."""

    raw: tuple[tuple[int, int], ...]
    rollup: tuple[int, int] | None


def plan_window(
    start_ms: int, end_ms: int, rolled_until_ms: int | None, raw_days: int
) -> WindowPlan:
    """Split a window: whole hours below the rolled-up edge come from the roll-ups when the
    window is long (:data:`LONG_WINDOW_MS`) or starts before the raw edge (the readings may
    be gone there); the rest, and every short window, is read raw."""
    whole = (ceil_hour(start_ms), floor_hour(end_ms))
    if rolled_until_ms is not None:
        whole = (whole[0], min(whole[1], floor_hour(rolled_until_ms)))
    first, last = whole
    if rolled_until_ms is None or last <= first:
        return WindowPlan(raw=((start_ms, end_ms),) if start_ms < end_ms else (), rollup=None)
    raw_edge = rolled_until_ms - raw_days * DAY_MS
    if last - first < LONG_WINDOW_MS and start_ms >= raw_edge:
        return WindowPlan(raw=((start_ms, end_ms),), rollup=None)
    edges = ((start_ms, first), (last, end_ms))
    return WindowPlan(raw=tuple(edge for edge in edges if edge[0] < edge[1]), rollup=(first, last))


def plan_series(
    start_ms: int, end_ms: int, every_ms: int, rolled_until_ms: int | None, raw_days: int
) -> WindowPlan:
    """As :func:`plan_window` for a series whose buckets are whole hours (``every`` a
    multiple of one hour, so every bucket edge is an hour edge); other buckets, and the
    ``last`` aggregation (a roll-up keeps no reading times), are read raw."""
    if every_ms % HOUR_MS:
        return WindowPlan(raw=((start_ms, end_ms),), rollup=None)
    return plan_window(start_ms, end_ms, rolled_until_ms, raw_days)


@dataclass(frozen=True, slots=True)
class BucketStats:
    """Count, sum, min and max of the readings of one series bucket (raw or roll-ups)."""

    bucket_ms: int
    count: int
    total: float
    low: float
    high: float


def bucket_values(
    parts: Iterable[Iterable[BucketStats]], aggregation: str
) -> list[tuple[int, float]]:
    """(bucket, value) sorted by time, from the statistics of several ranges."""
    merged: dict[int, BucketStats] = {}
    for rows in parts:
        for row in rows:
            if row.count <= 0:
                continue
            kept = merged.get(row.bucket_ms)
            merged[row.bucket_ms] = (
                row
                if kept is None
                else BucketStats(
                    row.bucket_ms,
                    kept.count + row.count,
                    kept.total + row.total,
                    min(kept.low, row.low),
                    max(kept.high, row.high),
                )
            )
    value: dict[str, Callable[[BucketStats], float]] = {
        "mean": lambda row: row.total / row.count,
        "sum": lambda row: row.total,
        "min": lambda row: row.low,
        "max": lambda row: row.high,
    }
    return [(bucket, value[aggregation](merged[bucket])) for bucket in sorted(merged)]


def merge_stats(parts: Iterable[Iterable[DeviceStats]]) -> list[DeviceStats]:
    """One row per (device, unit) pair from the rows of several ranges (raw edges and
    roll-ups): counts and sums added, the lowest min and the highest max."""
    merged: dict[tuple[str, str], DeviceStats] = {}
    for rows in parts:
        for row in rows:
            if row.count <= 0:
                continue
            key = (row.device, row.unit)
            kept = merged.get(key)
            merged[key] = (
                row
                if kept is None
                else DeviceStats(
                    row.device,
                    row.unit,
                    kept.count + row.count,
                    kept.total + row.total,
                    min(kept.low, row.low),
                    max(kept.high, row.high),
                )
            )
    return list(merged.values())


def pairs_without_last(stats: Iterable[DeviceStats], lasts: Iterable[DeviceLast]) -> bool:
    """True when a pair has readings but no raw last reading: its readings were pruned, so
    its last value comes from its newest roll-up hour (``ts`` = that hour's start)."""
    have = {(row.device, row.unit) for row in lasts}
    return any((row.device, row.unit) not in have for row in stats)


def add_missing_lasts(lasts: list[DeviceLast], fallback: Iterable[DeviceLast]) -> list[DeviceLast]:
    have = {(row.device, row.unit) for row in lasts}
    return lasts + [row for row in fallback if (row.device, row.unit) not in have]


def recompute_from(rolled_until_ms: int | None, oldest_ms: int | None) -> int | None:
    """Where a periodic run starts recomputing: a few hours before the rolled-up edge
    (late readings), or the oldest raw reading on the first run (None: nothing to do)."""
    if rolled_until_ms is not None:
        return rolled_until_ms - LOOKBACK_MS
    return None if oldest_ms is None else floor_hour(oldest_ms)


def catch_up_end(start_ms: int, until_ms: int) -> int:
    """Where a periodic run that starts recomputing at ``start_ms`` stops: at ``until_ms``,
    or :data:`CATCH_UP_MS` later when the backlog is longer (the new rolled-up edge)."""
    return min(until_ms, floor_hour(start_ms) + CATCH_UP_MS)


def assumed_edge(now_ms: int) -> int:
    """The rolled-up edge a writer that may not read it (a WRITE-only InfluxDB user) goes
    by: the edge is never above the hour of the last run, which recomputes from the edge
    less :data:`LOOKBACK_MS` next time, so readings from there on need no mark."""
    return floor_hour(now_ms) - LOOKBACK_MS


def slices(start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """Whole hours [start, end) cut into :data:`BACKFILL_SLICE_MS` pieces."""
    start_ms, end_ms = floor_hour(start_ms), floor_hour(end_ms)
    return [
        (at, min(at + BACKFILL_SLICE_MS, end_ms))
        for at in range(start_ms, end_ms, BACKFILL_SLICE_MS)
    ]


def raw_prune_edge(now_ms: int, raw_days: int, rolled_until_ms: int | None) -> int | None:
    """Readings before this are deleted: ``raw_days`` old, and never a reading whose hour
    is not rolled up yet (None: nothing rolled up, nothing deleted)."""
    if rolled_until_ms is None:
        return None
    return min(now_ms - raw_days * DAY_MS, floor_hour(rolled_until_ms))


def late_hours(ts_ms: Sequence[int], rolled_until_ms: int | None) -> list[int]:
    """The hours of a batch already rolled up (below the edge): the next run recomputes
    them, however late the readings are (a spool drain after a long outage)."""
    if rolled_until_ms is None or not ts_ms or min(ts_ms) >= rolled_until_ms:
        return []
    return sorted({floor_hour(ts) for ts in ts_ms if ts < rolled_until_ms})


def hour_runs(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive hours joined: [first, last + 1 h) ranges."""
    runs: list[tuple[int, int]] = []
    for hour in sorted(set(hours)):
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + HOUR_MS)
        else:
            runs.append((hour, hour + HOUR_MS))
    return runs


@runtime_checkable
class RetainingStore(Protocol):
    """A store with retention configured (SqliteStore, InfluxStore with
    ``store.retention``). Called by the active alert evaluator's periodic job
    (alerts/wiring.py) and by ``backfill`` callers after writing the past."""

    def downsample(self, now: datetime) -> int:
        """Roll up the completed hours since the last run (and a few before it); the
        number of hours recomputed."""
        ...

    def backfill(self, start: datetime, end: datetime) -> int:
        """Recompute the roll-ups of the whole hours in [start, end) from the readings."""
        ...

    def prune(self, now: datetime) -> int:
        """Delete readings older than ``raw_days`` and roll-ups older than
        ``rollup_days``; how many rows (SQLite) or shards (InfluxDB) went."""
        ...


def retention_job(store: RetainingStore) -> Callable[[datetime], int]:
    """The periodic job of the active alert evaluator (one process holds the lease, so
    two never roll up or prune at once): roll up, then prune; the hours rolled up."""

    def run(now: datetime) -> int:
        hours = store.downsample(now)
        store.prune(now)
        return hours

    return run
