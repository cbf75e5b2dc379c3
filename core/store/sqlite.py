"""The embedded store: InfluxDB's point model in one SQLite file (stdlib ``sqlite3``).

Schema modelled on InfluxDB: a series is a measurement plus its tag set; its tags are
indexed by (key, value) so "every series of commune 20194" is one index range; a point is
(series, field, ms timestamp) → value, and that key makes a re-written point replace the
old one (idempotent ingest). WAL mode lets one writer and many readers, in other threads
or processes, work at the same time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path

from core.errors import PermanentError, RetryableError
from core.settings_retention import RetentionSettings
from core.store import sqlite_rollup
from core.store.lineprotocol import CleanPoint, clean_points, nfc, refused_error
from core.store.rollup import (
    DeviceLast,
    DeviceStats,
    check_aggregation,
    epoch_ms,
    every_ms,
    roll_up,
    roll_up_window,
    utc_from_ms,
)
from core.types import Aggregation, MetricRef, Point, SeriesPoint, UnitRef, UnitValue

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    tagset TEXT NOT NULL,
    UNIQUE (measurement, tagset)
);
CREATE TABLE IF NOT EXISTS series_tags (
    series_id INTEGER NOT NULL REFERENCES series (id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (series_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS series_tags_by_value ON series_tags (key, value, series_id);
CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL REFERENCES series (id),
    field TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (series_id, field, ts_ms)
) WITHOUT ROWID;
"""

# SQLite result codes (primary, low byte) that mean "busy now, try again later".
_RETRYABLE_CODES = {
    5,  # SQLITE_BUSY
    6,  # SQLITE_LOCKED
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
}

# Each series' newest value of a field in [:since, :until), one index seek per series.
_LATEST_SQL = """
SELECT coalesce(device.value, ''), coalesce(unit.value, ''), p.ts_ms, p.value
FROM series AS s
{parent_join}
LEFT JOIN series_tags AS device ON device.series_id = s.id AND device.key = 'device'
LEFT JOIN series_tags AS unit ON unit.series_id = s.id AND unit.key = :level
JOIN points AS p ON p.series_id = s.id AND p.field = :field AND p.ts_ms = (
    SELECT ts_ms FROM points
    WHERE series_id = s.id AND field = :field AND ts_ms >= :since AND ts_ms < :until
    ORDER BY ts_ms DESC LIMIT 1
)
WHERE s.measurement = :measurement
"""
# Per (device, unit) pair: count, sum, min and max of every reading in [:start, :end).
_WINDOW_SQL = """
SELECT coalesce(device.value, ''), unit.value,
       count(p.value), sum(p.value), min(p.value), max(p.value)
FROM series AS s
{parent_join}
JOIN series_tags AS unit ON unit.series_id = s.id AND unit.key = :level
LEFT JOIN series_tags AS device ON device.series_id = s.id AND device.key = 'device'
JOIN points AS p ON p.series_id = s.id AND p.field = :field
    AND p.ts_ms >= :start AND p.ts_ms < :end
WHERE s.measurement = :measurement
GROUP BY 1, 2
"""
# :until when the caller gives no end: the largest SQLite INTEGER, far beyond datetime.max.
_NO_END_MS = 2**63 - 1
_PARENT_JOIN = (
    "JOIN series_tags AS parent ON parent.series_id = s.id"
    " AND parent.key = :parent_level AND parent.value = :parent_code"
)

# Buckets aligned to the epoch: floor-modulo keeps timestamps before 1970 right too.
_BUCKET = "(p.ts_ms - ((p.ts_ms % :every) + :every) % :every)"
_SERIES_SQL = """
SELECT {bucket} AS bucket, {value}
FROM points AS p
WHERE p.series_id IN (
    SELECT t.series_id FROM series_tags AS t JOIN series AS s ON s.id = t.series_id
    WHERE t.key = :level AND t.value = :code AND s.measurement = :measurement
)
AND p.field = :field AND p.ts_ms >= :start AND p.ts_ms < :end
GROUP BY bucket
ORDER BY bucket
"""
# For "last", SQLite returns the bare column ``p.value`` from the row holding max(ts_ms).
_SQL_AGGREGATES = {
    "mean": "avg(p.value)",
    "max": "max(p.value)",
    "min": "min(p.value)",
    "sum": "sum(p.value)",
    "last": "p.value, max(p.ts_ms)",
}


def _store_error(exc: sqlite3.Error, doing: str) -> RetryableError | PermanentError:
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", type(exc).__name__)
    message = f"SQLite store could not {doing}: {exc} ({name})"
    if code is not None and code & 0xFF in _RETRYABLE_CODES:
        return RetryableError(message)
    if code is None and isinstance(exc, sqlite3.OperationalError):
        return RetryableError(message)
    return PermanentError(message)


def _tagset_key(point: CleanPoint) -> str:
    # JSON of the sorted pairs: unambiguous whatever the tag values contain.
    return json.dumps(point.tags, ensure_ascii=False, separators=(",", ":"))


class SqliteStore(sqlite_rollup.SqliteRetention):
    """The Store port on SQLite. Thread-safe: one connection per thread; writes are
    serialised inside the process and by SQLite's lock across processes."""

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_s: float = 5.0,
        retention: RetentionSettings | None = None,
    ) -> None:
        self.path = str(path)
        self.retention = retention  # None: raw readings only, kept for ever
        self._memory = self.path == ":memory:"
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._write_lock = threading.Lock()
        self._registry_lock = threading.Lock()
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        self._memory_connection: sqlite3.Connection | None = None
        self._series_ids: dict[tuple[str, str], int] = {}
        self._closed = False
        try:
            self._create_schema(self._connection())
        except sqlite3.Error as exc:
            raise _store_error(exc, f"open {self.path}") from exc

    # -- connections -------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_s,
            isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
            check_same_thread=False,  # close() runs on whichever thread calls it
        )
        if not self._memory:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection. ``:memory:`` has a single one, used under the write
        lock: a second connection to ``:memory:`` would be another, empty database."""
        with self._registry_lock:
            if self._closed:
                raise PermanentError("SQLite store is closed")
            if self._memory:
                if self._memory_connection is None:
                    self._memory_connection = self._open()
                return self._memory_connection
            key = threading.current_thread()
            connection = self._connections.get(key)
            if connection is None:
                self._close_for_dead_threads()
                connection = self._open()
                self._connections[key] = connection
            return connection

    def _close_for_dead_threads(self) -> None:
        gone = [key for key in self._connections if not key.is_alive()]
        for key in gone:
            self._connections.pop(key).close()

    @contextmanager
    def _reading(self, doing: str) -> Iterator[sqlite3.Connection]:
        try:
            connection = self._connection()
            with self._write_lock if self._memory else nullcontext():
                yield connection
        except sqlite3.Error as exc:
            raise _store_error(exc, doing) from exc

    def _create_schema(self, connection: sqlite3.Connection) -> None:
        with self._write_lock:
            connection.execute("BEGIN IMMEDIATE")
            try:
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise PermanentError(
                        f"{self.path} has schema version {version}; this cityops knows "
                        f"{SCHEMA_VERSION}: upgrade cityops"
                    )
                schema = SCHEMA + (sqlite_rollup.ROLLUP_SCHEMA if self.retention else "")
                for statement in schema.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    # -- writes ------------------------------------------------------------------------

    def write(self, points: Sequence[Point]) -> None:
        """Write a batch in one transaction. Refused points (see lineprotocol) raise
        PermanentError after the others are written; a busy or locked database raises
        RetryableError and nothing of the batch is written."""
        clean, refused = clean_points(points)
        if clean:
            try:
                self._write_clean(clean)
            except sqlite3.Error as exc:
                raise _store_error(exc, f"write {len(clean)} points") from exc
        if refused:
            raise refused_error(refused, len(points))

    def _write_clean(self, points: list[CleanPoint]) -> None:
        connection = self._connection()
        with self._write_lock:
            connection.execute("BEGIN IMMEDIATE")
            try:
                series_ids, created = self._series_ids_for(connection, points)
                connection.executemany(
                    "INSERT OR REPLACE INTO points (series_id, field, ts_ms, value)"
                    " VALUES (?, ?, ?, ?)",
                    [
                        (series_id, field, point.ts_ms, value)
                        for point, series_id in zip(points, series_ids, strict=True)
                        for field, value in point.fields
                    ],
                )
                if self.retention is not None:  # readings below the rolled-up edge
                    sqlite_rollup.mark_late(connection, [point.ts_ms for point in points])
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            # Cached only once committed: SQLite may hand a rolled-back id to another series.
            self._series_ids.update(created)

    def _series_ids_for(
        self, connection: sqlite3.Connection, points: list[CleanPoint]
    ) -> tuple[list[int], dict[tuple[str, str], int]]:
        """The series id of every point, and the ids looked up or created now (inside the
        caller's transaction). Series are never deleted, so a cached id stays right even
        when another process writes to the same file."""
        ids: list[int] = []
        found: dict[tuple[str, str], int] = {}
        for point in points:
            key = (point.measurement, _tagset_key(point))
            series_id = self._series_ids.get(key) or found.get(key)
            if series_id is None:
                series_id = self._create_series(connection, point, key)
                found[key] = series_id
            ids.append(series_id)
        return ids, found

    def _create_series(
        self, connection: sqlite3.Connection, point: CleanPoint, key: tuple[str, str]
    ) -> int:
        connection.execute("INSERT OR IGNORE INTO series (measurement, tagset) VALUES (?, ?)", key)
        series_id: int = connection.execute(
            "SELECT id FROM series WHERE measurement = ? AND tagset = ?", key
        ).fetchone()[0]
        connection.executemany(
            "INSERT OR IGNORE INTO series_tags (series_id, key, value) VALUES (?, ?, ?)",
            [(series_id, tag, value) for tag, value in point.tags],
        )
        return series_id

    # -- reads -------------------------------------------------------------------------

    def latest_by_unit(
        self,
        metric: MetricRef,
        level: str,
        *,
        since: datetime,
        parent: UnitRef | None = None,
        aggregation: Aggregation = "mean",
        until: datetime | None = None,
    ) -> list[UnitValue]:
        aggregation = check_aggregation(aggregation)
        params = {
            "measurement": nfc(metric.measurement),
            "field": nfc(metric.field),
            "level": nfc(level),
            "since": epoch_ms(since),
            "until": _NO_END_MS if until is None else epoch_ms(until),
        }
        if parent is not None:
            params |= {"parent_level": nfc(parent.level), "parent_code": nfc(parent.code)}
        sql = _LATEST_SQL.format(parent_join=_PARENT_JOIN if parent is not None else "")
        with self._reading(f"read the latest {metric.measurement}.{metric.field}") as conn:
            rows = conn.execute(sql, params).fetchall()
        return roll_up(
            (DeviceLast(device, unit, ts_ms, value) for device, unit, ts_ms, value in rows),
            aggregation,
        )

    def window_by_unit(
        self,
        metric: MetricRef,
        level: str,
        *,
        start: datetime,
        end: datetime,
        aggregation: Aggregation,
        parent: UnitRef | None = None,
    ) -> list[UnitValue]:
        aggregation = check_aggregation(aggregation)
        params = {
            "measurement": nfc(metric.measurement),
            "field": nfc(metric.field),
            "level": nfc(level),
            "since": epoch_ms(start),
            "until": epoch_ms(end),
        }
        params |= {"start": params["since"], "end": params["until"]}
        if parent is not None:
            params |= {"parent_level": nfc(parent.level), "parent_code": nfc(parent.code)}
        join = _PARENT_JOIN if parent is not None else ""
        doing = f"read the window of {metric.measurement}.{metric.field}"
        with self._reading(doing) as conn:
            # One read transaction: the last readings and the statistics see the same data.
            conn.execute("BEGIN")
            try:
                if self.retention is not None:  # whole hours of a long window: roll-ups
                    stats, lasts = sqlite_rollup.window_rows(
                        conn,
                        lambda sql: sql.format(parent_join=join),
                        _WINDOW_SQL,
                        _LATEST_SQL,
                        params,
                        self.retention.raw_days,
                    )
                    return roll_up_window(lasts, stats, aggregation)
                rows = conn.execute(_WINDOW_SQL.format(parent_join=join), params).fetchall()
                last_rows = conn.execute(_LATEST_SQL.format(parent_join=join), params).fetchall()
            finally:
                conn.execute("COMMIT")
        return roll_up_window(
            (DeviceLast(*row) for row in last_rows),
            (DeviceStats(*row) for row in rows),
            aggregation,
        )

    def series(
        self,
        metric: MetricRef,
        unit: UnitRef,
        *,
        start: datetime,
        end: datetime,
        every: timedelta,
        aggregation: Aggregation = "mean",
    ) -> list[SeriesPoint]:
        aggregation = check_aggregation(aggregation)
        params = {
            "measurement": nfc(metric.measurement),
            "field": nfc(metric.field),
            "level": nfc(unit.level),
            "code": nfc(unit.code),
            "start": epoch_ms(start),
            "end": epoch_ms(end),
            "every": every_ms(every),
        }
        sql = _SERIES_SQL.format(bucket=_BUCKET, value=_SQL_AGGREGATES[aggregation])
        with self._reading(f"read the series of {unit.level} {unit.code}") as conn:
            if self.retention is not None:  # whole-hour buckets of a long range: roll-ups
                stats_sql = _SERIES_SQL.format(bucket=_BUCKET, value=sqlite_rollup.BUCKET_STATS)
                rolled = sqlite_rollup.series_rows(
                    conn, stats_sql, params, self.retention.raw_days, aggregation
                )
                if rolled is not None:
                    return [SeriesPoint(utc_from_ms(ms), value) for ms, value in rolled]
            rows = conn.execute(sql, params).fetchall()
        return [SeriesPoint(utc_from_ms(row[0]), float(row[1])) for row in rows]

    # -- retention (design 017; only with ``store.retention``) -------------------------

    def _retaining(self, doing: str, work: Callable[[sqlite3.Connection], int]) -> int:
        if self.retention is None:
            raise PermanentError(f"SQLite store cannot {doing}: store.retention is not set")
        try:
            return work(self._connection())
        except sqlite3.Error as exc:
            raise _store_error(exc, doing) from exc

    def close(self) -> None:
        with self._registry_lock:
            self._closed = True
            connections = list(self._connections.values())
            if self._memory_connection is not None:
                connections.append(self._memory_connection)
                self._memory_connection = None
            self._connections.clear()
        for connection in connections:
            connection.close()
