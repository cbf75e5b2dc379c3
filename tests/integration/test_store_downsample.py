"""Retention and hourly roll-ups, one contract for both adapters (design 017): SQLite in a
file and a real influxd 1.6.7 (a fresh database per test, its policies and CQ made by the
store). A week of irregular readings is written; every long window must give what the
readings give, computed here by hand. Values are multiples of 0.25, so every sum is exact
in floating point whatever the order of the additions, and results compare with ==.

The readings lie in the last days before the real now: InfluxDB refuses points older
than the raw policy's duration."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import PermanentError
from core.settings import InfluxSettings
from core.settings_retention import RetentionSettings
from core.store import InfluxStore, SqliteStore
from core.store.downsample import CATCH_UP_MS, HOUR_MS
from core.types import Aggregation, MetricRef, Point, SeriesPoint, UnitRef, UnitValue
from tests.fixtures.influxd import InfluxServer

PM25 = MetricRef("air", "pm25")
STATISTICS: tuple[Aggregation, ...] = ("mean", "sum", "min", "max")
HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RETENTION = RetentionSettings(raw_days=30, rollup_days=400)
# Whole hours, a week and a day before the real now (inside the 30-day raw policy).
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
BASE = NOW - timedelta(days=7)
# device -> (province, commune); aq-4 reports only for the first two days.
DEVICES = {
    "aq-1": ("48", "20194"),
    "aq-2": ("48", "20194"),
    "aq-3": ("48", "20260"),
    "aq-4": ("48", "20260"),
    "hn-1": ("01", "00004"),
}

Store = SqliteStore | InfluxStore


@dataclass(frozen=True)
class Reading:
    device: str
    ts: datetime
    value: float

    def point(self) -> Point:
        province, commune = DEVICES[self.device]
        tags = {"device": self.device, "province": province, "commune": commune}
        return Point("air", tags, {"pm25": self.value, "pm10": self.value * 2}, self.ts)


def week_of_readings(seed: int = 17) -> list[Reading]:
    """Every 1 to 17 minutes plus some milliseconds, per device; aq-4 stops after 2 days."""
    rng = random.Random(seed)
    readings = []
    for device in DEVICES:
        at = BASE + timedelta(milliseconds=rng.randrange(60_000))
        stop = BASE + timedelta(days=2) if device == "aq-4" else NOW
        while at < stop:
            readings.append(Reading(device, at, rng.randrange(0, 2000) * 0.25))
            at += timedelta(minutes=rng.randrange(1, 18), milliseconds=rng.randrange(1000))
    return readings


READINGS = week_of_readings()


def expected(
    start: datetime,
    end: datetime,
    level: str,
    aggregation: Aggregation,
    parent: UnitRef | None = None,
    readings: list[Reading] = READINGS,
) -> list[UnitValue]:
    """The window's answer from the readings themselves (the Store port's definition)."""
    by_unit: dict[str, list[Reading]] = {}
    for reading in readings:
        province, commune = DEVICES[reading.device]
        tags = {"device": reading.device, "province": province, "commune": commune}
        if not start <= reading.ts < end:
            continue
        if parent is not None and tags[parent.level] != parent.code:
            continue
        by_unit.setdefault(tags[level], []).append(reading)
    result = []
    for code, rows in sorted(by_unit.items()):
        values = [row.value for row in rows]
        newest = max(rows, key=lambda row: (row.ts, row.device))
        value = {
            "mean": sum(values) / len(values),
            "sum": sum(values),
            "min": min(values),
            "max": max(values),
            "last": newest.value,
        }[aggregation]
        result.append(UnitValue(code, value, newest.ts, len({row.device for row in rows})))
    return result


def expected_series(
    start: datetime,
    end: datetime,
    unit: UnitRef,
    every: timedelta,
    aggregation: Aggregation,
    readings: list[Reading] = READINGS,
) -> list[SeriesPoint]:
    """The series from the readings: epoch-aligned buckets of ``every``, empty ones absent."""
    width = every // timedelta(milliseconds=1)
    buckets: dict[int, list[float]] = {}
    for reading in readings:
        province, commune = DEVICES[reading.device]
        tags = {"device": reading.device, "province": province, "commune": commune}
        if start <= reading.ts < end and tags[unit.level] == unit.code:
            ms = (reading.ts - EPOCH) // timedelta(milliseconds=1)
            buckets.setdefault(ms - ms % width, []).append(reading.value)
    combine: dict[str, Callable[[list[float]], float]] = {
        "mean": lambda v: sum(v) / len(v),
        "sum": sum,
        "min": min,
        "max": max,
    }
    return [
        SeriesPoint(EPOCH + timedelta(milliseconds=ms), combine[aggregation](values))
        for ms, values in sorted(buckets.items())
    ]


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("influxdb", marks=pytest.mark.integration)]
)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    adapter: Store
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("store") / "timeseries.sqlite"
        adapter = SqliteStore(path, retention=RETENTION)
    else:
        server = request.getfixturevalue("influxd")
        database = request.getfixturevalue("influx_db")
        settings = InfluxSettings(url=server.url, database=database, timeout_s=30)
        adapter = InfluxStore(settings, retention=RETENTION)
    yield adapter
    adapter.close()


def write_all(store: Store, readings: list[Reading] = READINGS) -> None:
    points = [reading.point() for reading in readings]
    for offset in range(0, len(points), 2000):
        store.write(points[offset : offset + 2000])


def downsample_all(store: Store, now: datetime) -> int:
    """Periodic runs until one is not cut by the bound (each does at most CATCH_UP_MS of a
    backlog; InfluxDB's first run starts raw_days back); the hours recomputed in all."""
    hours = 0
    for _ in range(100):
        done = store.downsample(now)
        hours += done
        if done < CATCH_UP_MS // HOUR_MS:
            return hours
    raise AssertionError("downsample did not catch up in 100 runs")


@pytest.fixture
def filled(store: Store) -> Store:
    write_all(store)
    assert downsample_all(store, NOW) >= 7 * 24  # the first runs roll up every hour since BASE
    return store


RAGGED = timedelta(minutes=7, seconds=13, milliseconds=271)
WINDOWS = [
    (BASE + RAGGED, NOW - RAGGED),  # six days, ragged both ends
    (BASE - timedelta(days=3), NOW + timedelta(hours=5)),  # beyond the data both ends
    (BASE + timedelta(days=1), BASE + timedelta(days=3, minutes=1)),  # two days and a bit
    (BASE, NOW),  # whole hours only
]


@pytest.mark.parametrize("window", WINDOWS, ids=["ragged", "wide", "two-days", "whole-hours"])
@pytest.mark.parametrize("aggregation", ["mean", "sum", "min", "max", "last"])
def test_long_windows_equal_the_readings(
    filled: Store, window: tuple[datetime, datetime], aggregation: Aggregation
) -> None:
    start, end = window
    for level in ("commune", "province", "device"):
        got = filled.window_by_unit(PM25, level, start=start, end=end, aggregation=aggregation)
        assert got == expected(start, end, level, aggregation), level
    parent = UnitRef("province", "48")
    got = filled.window_by_unit(
        PM25, "commune", start=start, end=end, aggregation=aggregation, parent=parent
    )
    assert got == expected(start, end, "commune", aggregation, parent)


@pytest.mark.parametrize("every", [HOUR, 6 * HOUR], ids=["1h", "6h"])
@pytest.mark.parametrize("aggregation", STATISTICS)
def test_long_series_equal_the_readings(
    filled: Store, every: timedelta, aggregation: Aggregation
) -> None:
    """The dashboard's 7-day (1 h) and 30-day (6 h) range views, with ragged ends and the
    hours above the rolled-up edge."""
    fresh = [Reading("aq-2", NOW + timedelta(minutes=m), 8.5) for m in (5, 65, 200)]
    filled.write([reading.point() for reading in fresh])
    start, end = BASE - timedelta(days=1) + RAGGED, NOW + 4 * HOUR - RAGGED
    for unit in (UnitRef("commune", "20194"), UnitRef("province", "48")):
        got = filled.series(PM25, unit, start=start, end=end, every=every, aggregation=aggregation)
        want = expected_series(start, end, unit, every, aggregation, [*READINGS, *fresh])
        assert got == want, unit


def test_random_floats_give_the_same_mean_to_1e_9(store: Store) -> None:
    rng = random.Random(5)
    readings = [
        Reading(r.device, r.ts, rng.uniform(0.001, 500.0)) for r in READINGS if r.device != "hn-1"
    ]
    write_all(store, readings)
    downsample_all(store, NOW)
    start, end = BASE + RAGGED, NOW - RAGGED
    for aggregation in STATISTICS:
        got = store.window_by_unit(PM25, "commune", start=start, end=end, aggregation=aggregation)
        want = expected(start, end, "commune", aggregation, readings=readings)
        assert [(u.code, u.ts, u.devices) for u in got] == [(u.code, u.ts, u.devices) for u in want]
        for mine, theirs in zip(got, want, strict=True):
            assert mine.value == pytest.approx(theirs.value, rel=1e-9, abs=0)


def test_rewritten_readings_and_reruns_never_count_twice(filled: Store) -> None:
    start, end = BASE, NOW
    before = filled.window_by_unit(PM25, "commune", start=start, end=end, aggregation="sum")
    write_all(filled, READINGS[::3])  # re-delivered: same series, time and value
    assert filled.backfill(BASE, NOW) > 0
    filled.downsample(NOW)
    filled.downsample(NOW + HOUR)
    assert filled.window_by_unit(PM25, "commune", start=start, end=end, aggregation="sum") == before
    counted = filled.window_by_unit(PM25, "commune", start=start, end=end, aggregation="mean")
    assert counted == expected(start, end, "commune", "mean")


def test_a_late_reading_is_rolled_up_by_the_next_runs_lookback(filled: Store) -> None:
    late = Reading("aq-3", NOW - timedelta(hours=2, minutes=30), 1000.0)  # below the edge
    filled.write([late.point()])
    filled.downsample(NOW + HOUR)  # recomputes the 3 hours before its last edge too
    start, end = BASE, NOW
    got = filled.window_by_unit(PM25, "commune", start=start, end=end, aggregation="max")
    assert got == expected(start, end, "commune", "max", readings=[*READINGS, late])


def test_readings_written_days_late_are_rolled_up_by_the_next_run(filled: Store) -> None:
    """A spool drained after a long outage: its hours are far below the look-back."""
    late = [
        Reading("aq-1", BASE + timedelta(days=2, minutes=minute), 777.25)
        for minute in (3, 4, 190, 1500)
    ]
    filled.write([reading.point() for reading in late])
    assert filled.downsample(NOW) >= 3  # the hours the late write marked
    start, end = BASE, NOW
    for aggregation in STATISTICS:
        got = filled.window_by_unit(PM25, "commune", start=start, end=end, aggregation=aggregation)
        assert got == expected(start, end, "commune", aggregation, readings=[*READINGS, *late])
    filled.write([reading.point() for reading in late])  # delivered again: marked again
    filled.downsample(NOW)
    got = filled.window_by_unit(PM25, "commune", start=start, end=end, aggregation="sum")
    assert got == expected(start, end, "commune", "sum", readings=[*READINGS, *late])


def test_a_long_backlog_is_caught_up_a_week_per_run(store: Store) -> None:
    """Ten more days before BASE: one run recomputes one week only (an alert round is not
    held up by a year), windows stay right while the backlog lasts (hours above the edge
    are read raw), and the next runs end where one long run would: after pruning every
    reading, the roll-ups alone give the same numbers."""
    older = [
        Reading("hn-1", BASE - timedelta(days=10) + k * timedelta(minutes=97), (k % 400) * 0.25)
        for k in range(148)
    ]
    readings = [*older, *READINGS]
    write_all(store, readings)
    window = (BASE - timedelta(days=11), NOW)

    def unit_values(got: list[UnitValue]) -> list[tuple[str, float, int]]:
        return [(u.code, u.value, u.devices) for u in got]

    want = {a: expected(*window, "province", a, readings=readings) for a in STATISTICS}
    assert store.downsample(NOW) == CATCH_UP_MS // HOUR_MS  # one week, not the backlog
    for aggregation, units in want.items():
        got = store.window_by_unit(
            PM25, "province", start=window[0], end=window[1], aggregation=aggregation
        )
        assert got == units, aggregation
    assert downsample_all(store, NOW) > 0
    assert store.downsample(NOW) == 3  # caught up: the look-back only
    assert store.prune(NOW + timedelta(days=31)) > 0
    for aggregation, units in want.items():
        got = store.window_by_unit(
            PM25, "province", start=window[0], end=window[1], aggregation=aggregation
        )
        assert unit_values(got) == unit_values(units), aggregation


def test_hours_not_rolled_up_yet_are_read_raw(filled: Store) -> None:
    fresh = [Reading("aq-1", NOW + timedelta(minutes=m), 3.0) for m in (10, 70, 130)]
    filled.write([reading.point() for reading in fresh])
    start, end = BASE, NOW + 3 * HOUR  # the last three hours are above the edge
    got = filled.window_by_unit(PM25, "commune", start=start, end=end, aggregation="sum")
    assert got == expected(start, end, "commune", "sum", readings=[*READINGS, *fresh])


def test_after_pruning_a_monthly_window_comes_from_the_roll_ups(filled: Store) -> None:
    """Prune a month later: the readings are gone (SQLite: every rolled-up one; InfluxDB:
    the raw shards that ended before the edge), the sums stay exact."""
    month = (NOW - timedelta(days=30), NOW)
    want = {aggregation: expected(*month, "commune", aggregation) for aggregation in STATISTICS}
    assert filled.prune(NOW + timedelta(days=31)) > 0
    if isinstance(filled, SqliteStore):
        assert filled.latest_by_unit(PM25, "commune", since=BASE - HOUR) == []
    for aggregation, units in want.items():
        got = filled.window_by_unit(
            PM25, "commune", start=month[0], end=month[1], aggregation=aggregation
        )
        assert [(u.code, u.value, u.devices) for u in got] == [
            (u.code, u.value, u.devices) for u in units
        ], aggregation
        # aq-4's unit has readings only in the pruned past: its newest time is an hour's start
        assert all(u.ts <= want_u.ts < u.ts + HOUR for u, want_u in zip(got, units, strict=True))
    unit = UnitRef("commune", "20260")
    got_series = filled.series(PM25, unit, start=month[0], end=month[1], every=6 * HOUR)
    assert got_series == expected_series(*month, unit, 6 * HOUR, "mean")


def test_short_recent_windows_and_latest_stay_on_the_readings(filled: Store) -> None:
    start, end = NOW - timedelta(hours=5, minutes=3), NOW - timedelta(minutes=1)
    got = filled.window_by_unit(PM25, "device", start=start, end=end, aggregation="last")
    assert got == expected(start, end, "device", "last")
    latest = filled.latest_by_unit(PM25, "commune", since=NOW - HOUR)
    assert [unit.code for unit in latest] == ["00004", "20194", "20260"]


def test_without_retention_there_is_nothing_to_roll_up(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    plain = SqliteStore(tmp_path_factory.mktemp("plain") / "ts.sqlite")
    try:
        with pytest.raises(PermanentError, match=r"store\.retention is not set"):
            plain.downsample(NOW)
    finally:
        plain.close()


@pytest.mark.integration
def test_influx_makes_its_policies_and_continuous_query(
    influxd: InfluxServer, influx_db: str
) -> None:
    old = (  # an older definition, replaced at the first start
        f'CREATE CONTINUOUS QUERY cityops_rollup_1h ON "{influx_db}" BEGIN SELECT count(*)'
        f' INTO "{influx_db}"."autogen".:MEASUREMENT FROM /.*/ GROUP BY time(1h), * END'
    )
    assert "error" not in influxd.query(old)["results"][0]
    store = InfluxStore(InfluxSettings(url=influxd.url, database=influx_db), retention=RETENTION)
    try:
        store.write([READINGS[0].point()])
        again = InfluxStore(
            InfluxSettings(url=influxd.url, database=influx_db), retention=RETENTION
        )
        again.write([READINGS[1].point()])  # a second start: policies altered, CQ replaced
        again.close()
    finally:
        store.close()
    policies = influxd.query(f'SHOW RETENTION POLICIES ON "{influx_db}"')
    rows = {row[0]: row for row in policies["results"][0]["series"][0]["values"]}
    assert rows["raw"][1:] == ["720h0m0s", "24h0m0s", 1, True]
    assert rows["rollup"][1] == "9600h0m0s"
    queries = influxd.query("SHOW CONTINUOUS QUERIES")
    mine = [s for s in queries["results"][0]["series"] if s["name"] == influx_db]
    assert [row[0] for row in mine[0]["values"]] == ["cityops_rollup_1h"]
    assert "RESAMPLE EVERY 1h FOR 3h" in mine[0]["values"][0][1]
