"""Hourly roll-ups and retention for :class:`core.store.sqlite.SqliteStore` (design 017).

The ``rollup`` table mirrors ``points``: a row per (series, field, hour) with the count,
sum, min, max and last value of that hour's readings. The series keeps the tags, so a
roll-up is selected by device, unit and parent exactly like a reading. A recompute
replaces the rows of its hours (INSERT OR REPLACE) from the readings, which are
idempotent already, so running it twice or after a re-delivered reading never counts
one twice. ``rollup_state`` holds the rolled-up edge (hours below it are complete) and
the pruned edge (readings below it are gone, so no recompute goes there).

Every statement walks the (series, field) pairs through the primary keys: the tables
have no time index, and none is added to the ingest path for this.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from core.settings_retention import RetentionSettings
from core.store.downsample import (
    DAY_MS,
    HOUR_MS,
    BucketStats,
    add_missing_lasts,
    bucket_values,
    catch_up_end,
    floor_hour,
    hour_runs,
    late_hours,
    merge_stats,
    pairs_without_last,
    plan_series,
    plan_window,
    raw_prune_edge,
    recompute_from,
    slices,
)
from core.store.rollup import DeviceLast, DeviceStats, epoch_ms

ROLLUP_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollup (
    series_id INTEGER NOT NULL REFERENCES series (id),
    field TEXT NOT NULL,
    hour_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    last REAL NOT NULL,
    PRIMARY KEY (series_id, field, hour_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_dirty (
    hour_ms INTEGER PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_state (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""
ROLLED_UNTIL = "rolled_until_ms"
PRUNED_UNTIL = "pruned_until_ms"

# Every (series, field) pair that has readings, one index seek each (a skip-scan by hand).
_PAIRS_CTE = """
WITH RECURSIVE pairs (series_id, field) AS (
    SELECT s.id, (SELECT min(field) FROM points WHERE series_id = s.id) FROM series AS s
    UNION ALL
    SELECT series_id, (SELECT min(field) FROM points WHERE series_id = pairs.series_id
                       AND field > pairs.field)
    FROM pairs WHERE field IS NOT NULL
)
"""
_RECOMPUTE_SQL = (
    _PAIRS_CTE
    + """
INSERT OR REPLACE INTO rollup (series_id, field, hour_ms, count, sum, min, max, last)
SELECT g.series_id, g.field, g.hour_ms, count(*), sum(g.value), min(g.value), max(g.value),
       (SELECT value FROM points WHERE series_id = g.series_id AND field = g.field
        AND ts_ms < g.hour_ms + :hour ORDER BY ts_ms DESC LIMIT 1)
FROM (
    SELECT p.series_id, p.field, p.ts_ms - p.ts_ms % :hour AS hour_ms, p.value
    FROM pairs JOIN points AS p ON p.series_id = pairs.series_id AND p.field = pairs.field
        AND p.ts_ms >= :start AND p.ts_ms < :end
    WHERE pairs.field IS NOT NULL
) AS g
GROUP BY g.series_id, g.field, g.hour_ms
"""
)
_OLDEST_SQL = (
    _PAIRS_CTE
    + """
SELECT min((SELECT min(ts_ms) FROM points AS p
            WHERE p.series_id = pairs.series_id AND p.field = pairs.field))
FROM pairs WHERE field IS NOT NULL
"""
)
_PAIRS_SQL = _PAIRS_CTE + "SELECT series_id, field FROM pairs WHERE field IS NOT NULL"

# Per (device, unit) pair: the roll-ups of the whole hours [:first, :last).
_ROLLUP_STATS_SQL = """
SELECT coalesce(device.value, ''), unit.value, sum(r.count), sum(r.sum), min(r.min), max(r.max)
FROM series AS s
{parent_join}
JOIN series_tags AS unit ON unit.series_id = s.id AND unit.key = :level
LEFT JOIN series_tags AS device ON device.series_id = s.id AND device.key = 'device'
JOIN rollup AS r ON r.series_id = s.id AND r.field = :field
    AND r.hour_ms >= :first AND r.hour_ms < :last
WHERE s.measurement = :measurement
GROUP BY 1, 2
"""
# Each series' last value in its newest roll-up hour of [:first, :last), for pairs whose
# readings were pruned; its time is the hour's start (as on InfluxDB, where a roll-up
# point carries its hour).
_ROLLUP_LAST_SQL = """
SELECT coalesce(device.value, ''), coalesce(unit.value, ''), r.hour_ms, r.last
FROM series AS s
{parent_join}
LEFT JOIN series_tags AS device ON device.series_id = s.id AND device.key = 'device'
LEFT JOIN series_tags AS unit ON unit.series_id = s.id AND unit.key = :level
JOIN rollup AS r ON r.series_id = s.id AND r.field = :field AND r.hour_ms = (
    SELECT hour_ms FROM rollup
    WHERE series_id = s.id AND field = :field AND hour_ms >= :first AND hour_ms < :last
    ORDER BY hour_ms DESC LIMIT 1
)
WHERE s.measurement = :measurement
"""

# A series' buckets (epoch-aligned, whole hours) from the roll-ups of [:first, :last).
_ROLLUP_SERIES_SQL = """
SELECT r.hour_ms - ((r.hour_ms % :every) + :every) % :every AS bucket,
       sum(r.count), sum(r.sum), min(r.min), max(r.max)
FROM rollup AS r
WHERE r.series_id IN (
    SELECT t.series_id FROM series_tags AS t JOIN series AS s ON s.id = t.series_id
    WHERE t.key = :level AND t.value = :code AND s.measurement = :measurement
)
AND r.field = :field AND r.hour_ms >= :first AND r.hour_ms < :last
GROUP BY bucket
"""
# The statistics a raw series statement selects per bucket (sqlite.py's _SERIES_SQL).
BUCKET_STATS = "count(p.value), sum(p.value), min(p.value), max(p.value)"


def read_state(connection: sqlite3.Connection, key: str) -> int | None:
    row = connection.execute("SELECT value FROM rollup_state WHERE key = ?", (key,)).fetchone()
    return None if row is None else int(row[0])


def _set_state(connection: sqlite3.Connection, key: str, value: int) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO rollup_state (key, value) VALUES (?, ?)", (key, value)
    )


@contextmanager
def write_transaction(
    connection: sqlite3.Connection, lock: threading.Lock
) -> Iterator[sqlite3.Connection]:
    with lock:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise


def mark_late(connection: sqlite3.Connection, ts_ms: list[int]) -> None:
    """In the write's transaction: remember the hours of readings below the rolled-up edge."""
    hours = late_hours(ts_ms, read_state(connection, ROLLED_UNTIL))
    if hours:
        connection.executemany(
            "INSERT OR IGNORE INTO rollup_dirty (hour_ms) VALUES (?)", [(hour,) for hour in hours]
        )


def _recompute_late(connection: sqlite3.Connection, lock: threading.Lock) -> int:
    """Recompute the hours marked by late writes, and forget them, in one transaction."""
    with write_transaction(connection, lock):
        hours = [row[0] for row in connection.execute("SELECT hour_ms FROM rollup_dirty")]
        connection.execute("DELETE FROM rollup_dirty")
        pruned = read_state(connection, PRUNED_UNTIL)
        low = None if pruned is None else -(-pruned // HOUR_MS) * HOUR_MS
        for first, last in hour_runs(hour for hour in hours if low is None or hour >= low):
            connection.execute(_RECOMPUTE_SQL, {"hour": HOUR_MS, "start": first, "end": last})
    return len(hours)


def recompute(
    connection: sqlite3.Connection, lock: threading.Lock, start_ms: int, end_ms: int
) -> int:
    """Roll up the whole hours [start, end), never below the pruned edge, one slice per
    transaction (ingest writes go on between slices); the number of hours."""
    with write_transaction(connection, lock):
        pruned = read_state(connection, PRUNED_UNTIL)
    if pruned is not None:
        start_ms = max(start_ms, -(-pruned // HOUR_MS) * HOUR_MS)
    hours = 0
    for first, last in slices(start_ms, end_ms):
        with write_transaction(connection, lock):
            connection.execute(_RECOMPUTE_SQL, {"hour": HOUR_MS, "start": first, "end": last})
        hours += (last - first) // HOUR_MS
    return hours


def downsample(connection: sqlite3.Connection, lock: threading.Lock, now_ms: int) -> int:
    """Roll up the completed hours since the last run and :data:`LOOKBACK_MS` before it
    (the first run: since the oldest reading), at most :data:`CATCH_UP_MS` of them, and
    the hours late writes marked, then move the rolled-up edge to where it stopped."""
    until = floor_hour(now_ms)
    with write_transaction(connection, lock):
        edge = read_state(connection, ROLLED_UNTIL)
        oldest = None if edge is not None else connection.execute(_OLDEST_SQL).fetchone()[0]
    start = recompute_from(edge, oldest)
    end = until if start is None else catch_up_end(start, until)  # bounded catch-up
    hours = recompute(connection, lock, start, end) if start is not None else 0
    hours += _recompute_late(connection, lock)
    with write_transaction(connection, lock):
        if edge is None or end > edge:
            _set_state(connection, ROLLED_UNTIL, end)
    return hours


def prune(
    connection: sqlite3.Connection,
    lock: threading.Lock,
    now_ms: int,
    retention: RetentionSettings,
) -> int:
    """Delete readings older than ``raw_days`` (only those rolled up) and roll-ups older
    than ``rollup_days``; the number of rows deleted."""
    with write_transaction(connection, lock):
        raw_edge = raw_prune_edge(now_ms, retention.raw_days, read_state(connection, ROLLED_UNTIL))
        rollup_edge = now_ms - retention.rollup_days * DAY_MS
        pairs = connection.execute(_PAIRS_SQL).fetchall()
        deleted = 0
        for series_id, field in pairs:
            if raw_edge is not None:
                deleted += connection.execute(
                    "DELETE FROM points WHERE series_id = ? AND field = ? AND ts_ms < ?",
                    (series_id, field, raw_edge),
                ).rowcount
            deleted += connection.execute(
                "DELETE FROM rollup WHERE series_id = ? AND field = ? AND hour_ms < ?",
                (series_id, field, rollup_edge),
            ).rowcount
        if raw_edge is not None:
            pruned = read_state(connection, PRUNED_UNTIL)
            _set_state(connection, PRUNED_UNTIL, max(raw_edge, pruned or raw_edge))
    return deleted


def window_rows(
    connection: sqlite3.Connection,
    sql: Callable[[str], str],
    window_sql: str,
    latest_sql: str,
    params: dict[str, Any],
    raw_days: int,
) -> tuple[list[DeviceStats], list[DeviceLast]]:
    """The statistics and last readings of a window, the whole hours from the roll-ups
    when :func:`plan_window` says so. ``sql`` adds the parent join to a statement; the
    caller holds one read transaction around this."""
    plan = plan_window(
        params["start"], params["end"], read_state(connection, ROLLED_UNTIL), raw_days
    )
    parts = [
        [
            DeviceStats(*row)
            for row in connection.execute(sql(window_sql), params | {"start": a, "end": b})
        ]
        for a, b in plan.raw
    ]
    if plan.rollup is not None:
        hours = params | {"first": plan.rollup[0], "last": plan.rollup[1]}
        parts.append(
            [DeviceStats(*row) for row in connection.execute(sql(_ROLLUP_STATS_SQL), hours)]
        )
    stats = merge_stats(parts)
    lasts = [DeviceLast(*row) for row in connection.execute(sql(latest_sql), params)]
    if plan.rollup is not None and pairs_without_last(stats, lasts):
        fallback = connection.execute(sql(_ROLLUP_LAST_SQL), hours)
        lasts = add_missing_lasts(lasts, (DeviceLast(*row) for row in fallback))
    return stats, lasts


def series_rows(
    connection: sqlite3.Connection,
    raw_sql: str,
    params: dict[str, Any],
    raw_days: int,
    aggregation: str,
) -> list[tuple[int, float]] | None:
    """A long series' (bucket, value) pairs with its whole hours from the roll-ups, or
    None when :func:`plan_series` reads it all raw. ``raw_sql`` selects
    :data:`BUCKET_STATS` per bucket."""
    if aggregation == "last":
        return None
    connection.execute("BEGIN")  # the edge, the readings and the roll-ups seen together
    try:
        edge = read_state(connection, ROLLED_UNTIL)
        plan = plan_series(params["start"], params["end"], params["every"], edge, raw_days)
        if plan.rollup is None:
            return None
        parts = [
            [
                BucketStats(*row)
                for row in connection.execute(raw_sql, params | {"start": a, "end": b})
            ]
            for a, b in plan.raw
        ]
        hours = params | {"first": plan.rollup[0], "last": plan.rollup[1]}
        parts.append([BucketStats(*row) for row in connection.execute(_ROLLUP_SERIES_SQL, hours)])
    finally:
        connection.execute("COMMIT")
    return bucket_values(parts, aggregation)


class SqliteRetention:
    """The retention methods of SqliteStore (see :class:`RetainingStore`): ``_retaining``
    checks that retention is configured and maps SQLite errors to the store's errors."""

    retention: RetentionSettings | None
    _write_lock: threading.Lock

    def _retaining(self, doing: str, work: Callable[[sqlite3.Connection], int]) -> int:
        raise NotImplementedError

    def downsample(self, now: datetime) -> int:
        """Roll up the completed hours since the last run; the hours recomputed."""
        return self._retaining("roll up", lambda c: downsample(c, self._write_lock, epoch_ms(now)))

    def backfill(self, start: datetime, end: datetime) -> int:
        """Recompute the roll-ups of the whole hours in [start, end) (readings written late)."""
        return self._retaining(
            "roll up the past",
            lambda c: recompute(c, self._write_lock, epoch_ms(start), epoch_ms(end)),
        )

    def prune(self, now: datetime) -> int:
        """Delete rolled-up readings older than raw_days, roll-ups older than rollup_days."""
        return self._retaining(
            "prune",
            lambda c: prune(c, self._write_lock, epoch_ms(now), _configured(self.retention)),
        )


def _configured(retention: RetentionSettings | None) -> RetentionSettings:
    assert retention is not None  # _retaining refused already
    return retention
