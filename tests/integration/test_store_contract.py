"""One contract, every Store adapter: the same tests run on SQLite (a file in tmp_path) and
on a real influxd 1.6.7 (a fresh database per test)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import PermanentError
from core.ports import Store
from core.settings import InfluxSettings
from core.store import InfluxStore, SqliteStore
from core.types import Aggregation, MetricRef, Point, SeriesPoint, UnitRef, UnitValue

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # a whole hour
PM25 = MetricRef("air", "pm25")
HOUR = timedelta(hours=1)


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("influxdb", marks=pytest.mark.integration),
    ]
)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    adapter: Store
    if request.param == "sqlite":
        adapter = SqliteStore(tmp_path_factory.mktemp("store") / "timeseries.sqlite")
    else:
        server = request.getfixturevalue("influxd")
        database = request.getfixturevalue("influx_db")
        adapter = InfluxStore(InfluxSettings(url=server.url, database=database, timeout_s=10))
    yield adapter
    adapter.close()


def air(
    device: str,
    commune: str | None,
    at: datetime,
    pm25: float,
    *,
    province: str = "48",
    **extra: str,
) -> Point:
    tags = {"device": device, "province": province} | extra
    if commune is not None:
        tags["commune"] = commune
    return Point("air", tags, {"pm25": pm25, "pm10": pm25 * 2}, at)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def values(result: list[UnitValue]) -> dict[str, float]:
    return {unit.code: unit.value for unit in result}


# -- latest_by_unit ----------------------------------------------------------------------


def test_latest_is_the_mean_of_each_devices_last_value(store: Store) -> None:
    store.write(
        [
            air("aq-1", "20194", minutes(0), 10.0),
            air("aq-1", "20194", minutes(5), 20.0),  # aq-1's last value
            air("aq-2", "20194", minutes(2), 40.0),
            air("aq-3", "20260", minutes(1), 55.5),
        ]
    )
    result = store.latest_by_unit(PM25, "commune", since=T0)
    assert result == [
        UnitValue(code="20194", value=30.0, ts=minutes(5), devices=2),
        UnitValue(code="20260", value=55.5, ts=minutes(1), devices=1),
    ]


def test_latest_with_a_parent_keeps_only_its_children(store: Store) -> None:
    store.write(
        [
            air("aq-1", "20194", minutes(1), 10.0, province="48"),
            air("aq-2", "20260", minutes(1), 20.0, province="48"),
            air("hn-1", "00004", minutes(1), 90.0, province="01"),
        ]
    )
    inside = store.latest_by_unit(PM25, "commune", since=T0, parent=UnitRef("province", "48"))
    assert values(inside) == {"20194": 10.0, "20260": 20.0}
    everywhere = store.latest_by_unit(PM25, "province", since=T0)
    assert values(everywhere) == {"01": 90.0, "48": 15.0}
    assert [unit.devices for unit in everywhere] == [1, 2]


def test_since_excludes_older_points_and_includes_the_boundary(store: Store) -> None:
    since = minutes(10)
    store.write(
        [
            air("aq-1", "20194", minutes(2), 100.0),  # too old
            air("aq-1", "20194", since, 12.0),  # exactly at since: counts
            air("aq-2", "20194", minutes(9), 70.0),  # only old points: not a device now
            air("aq-3", "20260", minutes(9), 70.0),  # unit with only old data: absent
        ]
    )
    result = store.latest_by_unit(PM25, "commune", since=since)
    assert result == [UnitValue(code="20194", value=12.0, ts=since, devices=1)]


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("mean", 20.0), ("max", 30.0), ("min", 5.0), ("sum", 60.0), ("last", 25.0)],
)
def test_latest_aggregations(store: Store, aggregation: Aggregation, expected: float) -> None:
    store.write(
        [
            air("aq-1", "20194", minutes(1), 30.0),
            air("aq-2", "20194", minutes(3), 5.0),
            air("aq-3", "20194", minutes(4), 25.0),  # newest device: "last"
            air("aq-3", "20194", minutes(0), 99.0),  # older value of aq-3: ignored
        ]
    )
    [unit] = store.latest_by_unit(PM25, "commune", since=T0, aggregation=aggregation)
    assert unit.value == pytest.approx(expected)
    assert (unit.ts, unit.devices) == (minutes(4), 3)


def test_until_takes_each_devices_last_value_before_it(store: Store) -> None:
    """The map at a past moment: [since, until), the end excluded."""
    until = minutes(30)
    store.write(
        [
            air("aq-1", "20194", minutes(10), 10.0),
            air("aq-1", "20194", minutes(20), 20.0),  # aq-1's last value before until
            air("aq-1", "20194", until, 999.0),  # exactly at until: excluded
            air("aq-1", "20194", minutes(40), 888.0),  # after until: excluded
            air("aq-2", "20194", minutes(0), 40.0),  # exactly at since: counts
            air("aq-3", "20260", minutes(31), 77.0),  # only after until: absent
        ]
    )
    result = store.latest_by_unit(PM25, "commune", since=T0, until=until)
    assert result == [UnitValue(code="20194", value=30.0, ts=minutes(20), devices=2)]
    assert values(store.latest_by_unit(PM25, "commune", since=T0)) == {
        "20194": pytest.approx((888.0 + 40.0) / 2),
        "20260": 77.0,
    }


def test_until_with_a_parent_and_an_aggregation(store: Store) -> None:
    store.write(
        [
            air("aq-1", "20194", minutes(1), 10.0, province="48"),
            air("aq-2", "20194", minutes(2), 5.0, province="48"),
            air("aq-2", "20194", minutes(9), 500.0, province="48"),  # after until
            air("hn-1", "00004", minutes(1), 90.0, province="01"),
        ]
    )
    summed = store.latest_by_unit(
        PM25,
        "commune",
        since=T0,
        until=minutes(5),
        parent=UnitRef("province", "48"),
        aggregation="sum",
    )
    assert summed == [UnitValue(code="20194", value=15.0, ts=minutes(2), devices=2)]


def test_an_empty_or_reversed_window_has_no_units(store: Store) -> None:
    store.write([air("aq-1", "20194", minutes(5), 10.0)])
    assert store.latest_by_unit(PM25, "commune", since=minutes(5), until=minutes(5)) == []
    assert store.latest_by_unit(PM25, "commune", since=minutes(6), until=minutes(1)) == []


def test_units_without_data_are_absent(store: Store) -> None:
    assert store.latest_by_unit(PM25, "commune", since=T0) == []
    store.write(
        [
            Point("water", {"device": "w-1", "commune": "20260"}, {"level": 1.2}, minutes(1)),
            air("aq-1", None, minutes(1), 10.0),  # a device outside every commune
        ]
    )
    assert store.latest_by_unit(PM25, "commune", since=T0) == []
    assert values(store.latest_by_unit(PM25, "province", since=T0)) == {"48": 10.0}
    assert store.latest_by_unit(MetricRef("air", "no2"), "province", since=T0) == []


def test_rewriting_a_point_replaces_it(store: Store) -> None:
    store.write([air("aq-1", "20194", minutes(1), 10.0)])
    store.write([air("aq-1", "20194", minutes(1), 10.0)])  # replayed message
    store.write([air("aq-1", "20194", minutes(1), 42.0)])  # same point, new value
    [unit] = store.latest_by_unit(PM25, "commune", since=T0, aggregation="sum")
    assert (unit.value, unit.devices) == (42.0, 1)
    summed = store.series(
        PM25, UnitRef("commune", "20194"), start=T0, end=T0 + HOUR, every=HOUR, aggregation="sum"
    )
    assert summed == [SeriesPoint(T0, 42.0)]


def test_the_same_point_twice_in_one_batch_keeps_the_last_values(store: Store) -> None:
    """A redelivered message can land in the same batch as the first delivery."""
    store.write(
        [
            air("aq-1", "20194", minutes(1), 10.0),
            air("aq-2", "20194", minutes(1), 30.0),
            air("aq-1", "20194", minutes(1), 12.5),  # same measurement, tags and ts
        ]
    )
    assert store.latest_by_unit(PM25, "commune", since=T0, aggregation="sum") == [
        UnitValue(code="20194", value=42.5, ts=minutes(1), devices=2)
    ]
    pm10 = store.latest_by_unit(MetricRef("air", "pm10"), "commune", since=T0, aggregation="sum")
    assert values(pm10) == {"20194": 85.0}  # 2 x 12.5 + 2 x 30: aq-1's pm10 replaced too


def test_a_point_with_fewer_fields_keeps_the_other_fields(store: Store) -> None:
    """InfluxDB merges the fields of one point; the SQLite schema does the same."""
    store.write([air("aq-1", "20194", minutes(1), 10.0)])  # pm25=10, pm10=20
    same_series = {"device": "aq-1", "province": "48", "commune": "20194"}
    store.write([Point("air", same_series, {"pm25": 11.0}, minutes(1))])
    assert values(store.latest_by_unit(PM25, "commune", since=T0)) == {"20194": 11.0}
    pm10 = store.latest_by_unit(MetricRef("air", "pm10"), "commune", since=T0)
    assert values(pm10) == {"20194": 20.0}


def test_latest_at_level_device_is_each_devices_last_value(store: Store) -> None:
    """The no_data and device-level rules ask for level "device": one value per device."""
    store.write(
        [
            air("aq-1", "20194", minutes(1), 10.0),
            air("aq-1", "20194", minutes(4), 12.0),  # aq-1's last value
            air("aq-2", "20194", minutes(2), 40.0),
            air("aq-3", "20260", minutes(3), 55.5),
            air("aq-3", "20260", minutes(9), 1.0),  # after until
        ]
    )
    result = store.latest_by_unit(PM25, "device", since=T0, until=minutes(5))
    assert result == [
        UnitValue(code="aq-1", value=12.0, ts=minutes(4), devices=1),
        UnitValue(code="aq-2", value=40.0, ts=minutes(2), devices=1),
        UnitValue(code="aq-3", value=55.5, ts=minutes(3), devices=1),
    ]
    inside = store.latest_by_unit(PM25, "device", since=T0, parent=UnitRef("commune", "20260"))
    assert inside == [UnitValue(code="aq-3", value=1.0, ts=minutes(9), devices=1)]


# -- window_by_unit ----------------------------------------------------------------------


def window_points() -> list[Point]:
    """Commune 20194: aq-1 reads 10, 20, 30 and aq-2 reads 100 in [T0, T0+60 min): the
    mean of the readings is 160 / 4 = 40 (a mean of the devices' means would be 60)."""
    return [
        air("aq-1", "20194", minutes(-1), 500.0),  # before start
        air("aq-1", "20194", minutes(0), 10.0),  # exactly at start: counts
        air("aq-1", "20194", minutes(20), 20.0),
        air("aq-1", "20194", minutes(40), 30.0),
        air("aq-2", "20194", minutes(50), 100.0),  # the newest reading of 20194
        air("aq-2", "20194", minutes(60), 900.0),  # exactly at end: excluded
        air("aq-3", "20260", minutes(10), 7.0),
        air("aq-3", "20260", minutes(30), 5.0),
        air("hn-1", "00004", minutes(30), 70.0, province="01"),
    ]


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("mean", {"20194": 40.0, "20260": 6.0, "00004": 70.0}),
        ("sum", {"20194": 160.0, "20260": 12.0, "00004": 70.0}),
        ("max", {"20194": 100.0, "20260": 7.0, "00004": 70.0}),
        ("min", {"20194": 10.0, "20260": 5.0, "00004": 70.0}),
        ("last", {"20194": 100.0, "20260": 5.0, "00004": 70.0}),
    ],
)
def test_window_aggregates_every_reading_in_the_window(
    store: Store, aggregation: Aggregation, expected: dict[str, float]
) -> None:
    store.write(window_points())
    result = store.window_by_unit(
        PM25, "commune", start=T0, end=minutes(60), aggregation=aggregation
    )
    assert [unit.code for unit in result] == ["00004", "20194", "20260"]  # sorted by code
    assert values(result) == pytest.approx(expected)
    by_code = {unit.code: unit for unit in result}
    assert (by_code["20194"].ts, by_code["20194"].devices) == (minutes(50), 2)
    assert (by_code["20260"].ts, by_code["20260"].devices) == (minutes(30), 1)


def test_window_with_a_parent_and_at_a_higher_level(store: Store) -> None:
    store.write(window_points())
    inside = store.window_by_unit(
        PM25,
        "commune",
        start=T0,
        end=minutes(60),
        aggregation="mean",
        parent=UnitRef("province", "48"),
    )
    assert values(inside) == {"20194": 40.0, "20260": 6.0}
    provinces = store.window_by_unit(
        PM25, "province", start=T0, end=minutes(60), aggregation="mean"
    )
    # 48: (10 + 20 + 30 + 100 + 7 + 5) / 6 readings, not the mean of the communes (23)
    assert provinces == [
        UnitValue(code="01", value=70.0, ts=minutes(30), devices=1),
        UnitValue(code="48", value=pytest.approx(172.0 / 6), ts=minutes(50), devices=3),
    ]


def test_window_at_level_device(store: Store) -> None:
    store.write(window_points())
    result = store.window_by_unit(PM25, "device", start=T0, end=minutes(60), aggregation="mean")
    assert result == [
        UnitValue(code="aq-1", value=20.0, ts=minutes(40), devices=1),
        UnitValue(code="aq-2", value=100.0, ts=minutes(50), devices=1),
        UnitValue(code="aq-3", value=6.0, ts=minutes(30), devices=1),
        UnitValue(code="hn-1", value=70.0, ts=minutes(30), devices=1),
    ]


def test_window_counts_each_reading_where_the_device_was(store: Store) -> None:
    """A device moved from 20194 to 20260 mid-window: its readings stay with the unit they
    were tagged with (unlike "latest", which counts a device where it was last seen)."""
    store.write(
        [
            air("aq-1", "20194", minutes(5), 10.0),
            air("aq-1", "20194", minutes(10), 30.0),
            air("aq-1", "20260", minutes(20), 50.0),
            air("aq-2", "20260", minutes(25), 70.0),
        ]
    )
    result = store.window_by_unit(PM25, "commune", start=T0, end=minutes(60), aggregation="sum")
    assert result == [
        UnitValue(code="20194", value=40.0, ts=minutes(10), devices=1),
        UnitValue(code="20260", value=120.0, ts=minutes(25), devices=2),
    ]
    [province] = store.window_by_unit(
        PM25, "province", start=T0, end=minutes(60), aggregation="mean"
    )
    assert (province.value, province.ts, province.devices) == (40.0, minutes(25), 2)


def test_window_sums_counters_of_units_without_devices(store: Store) -> None:
    """Public-service counters carry unit tags and no device tag (ingest/contracts/gov.py):
    a province's on-time sum is the sum of its communes' readings."""

    def dossiers(commune: str, at: datetime, on_time: float, resolved: float) -> Point:
        tags = {"province": "48", "commune": commune}
        return Point("dossiers", tags, {"resolved_on_time": on_time, "resolved": resolved}, at)

    store.write(
        [
            dossiers("20194", minutes(5), 9.0, 10.0),
            dossiers("20194", minutes(35), 8.0, 10.0),
            dossiers("20260", minutes(15), 150.0, 200.0),
        ]
    )
    on_time, resolved = MetricRef("dossiers", "resolved_on_time"), MetricRef("dossiers", "resolved")
    window = {"start": T0, "end": minutes(60), "aggregation": "sum"}
    communes = store.window_by_unit(on_time, "commune", **window)  # type: ignore[arg-type]
    assert communes == [
        UnitValue(code="20194", value=17.0, ts=minutes(35), devices=1),
        UnitValue(code="20260", value=150.0, ts=minutes(15), devices=1),
    ]
    [numerator] = store.window_by_unit(on_time, "province", **window)  # type: ignore[arg-type]
    [denominator] = store.window_by_unit(resolved, "province", **window)  # type: ignore[arg-type]
    assert (numerator.value, denominator.value) == (167.0, 220.0)


def test_window_without_readings_is_empty(store: Store) -> None:
    assert (
        store.window_by_unit(PM25, "commune", start=T0, end=minutes(60), aggregation="mean") == []
    )
    store.write(window_points())
    assert (
        store.window_by_unit(
            PM25, "commune", start=minutes(61), end=minutes(120), aggregation="mean"
        )
        == []
    )
    assert (
        store.window_by_unit(PM25, "commune", start=minutes(5), end=minutes(5), aggregation="sum")
        == []
    )
    with pytest.raises(ValueError, match="aggregation must be one of"):
        store.window_by_unit(PM25, "commune", start=T0, end=minutes(1), aggregation="p95")  # type: ignore[arg-type]


# -- series ------------------------------------------------------------------------------


def bucketed_points() -> list[Point]:
    return [
        air("aq-1", "20194", minutes(-1), 500.0),  # before start
        air("aq-1", "20194", minutes(10), 1.0),
        air("aq-2", "20194", minutes(50), 3.0),
        air("aq-1", "20194", minutes(65), 10.0),
        # the bucket 02:00-03:00 stays empty
        air("aq-2", "20194", minutes(180), 7.0),
        air("aq-1", "20194", minutes(200), 9.0),
        air("aq-1", "20194", minutes(240), 800.0),  # == end: excluded
        air("aq-9", "20260", minutes(20), 600.0),  # another commune
    ]


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("mean", [2.0, 10.0, 8.0]),
        ("max", [3.0, 10.0, 9.0]),
        ("min", [1.0, 10.0, 7.0]),
        ("sum", [4.0, 10.0, 16.0]),
        ("last", [3.0, 10.0, 9.0]),
    ],
)
def test_series_buckets(store: Store, aggregation: Aggregation, expected: list[float]) -> None:
    store.write(bucketed_points())
    result = store.series(
        PM25,
        UnitRef("commune", "20194"),
        start=T0,
        end=minutes(240),
        every=HOUR,
        aggregation=aggregation,
    )
    assert [point.ts for point in result] == [T0, T0 + HOUR, T0 + 3 * HOUR]
    assert [point.value for point in result] == pytest.approx(expected)


def test_series_buckets_are_aligned_to_the_epoch_not_to_start(store: Store) -> None:
    store.write(bucketed_points())
    result = store.series(
        PM25, UnitRef("commune", "20194"), start=minutes(30), end=minutes(70), every=HOUR
    )
    assert result == [SeriesPoint(T0, 3.0), SeriesPoint(T0 + HOUR, 10.0)]


def test_series_buckets_before_1970_are_aligned_too(store: Store) -> None:
    """Floor, not truncation towards zero: 23:30 on 1969-12-31 is in the 23:00 bucket."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    store.write([air("aq-1", "20194", epoch - timedelta(minutes=30), 4.0)])
    store.write([air("aq-1", "20194", epoch + timedelta(minutes=30), 6.0)])
    result = store.series(
        PM25, UnitRef("commune", "20194"), start=epoch - HOUR, end=epoch + HOUR, every=HOUR
    )
    assert result == [SeriesPoint(epoch - HOUR, 4.0), SeriesPoint(epoch, 6.0)]


def test_series_of_a_unit_without_data_is_empty(store: Store) -> None:
    store.write(bucketed_points())
    unit = UnitRef("commune", "99999")
    assert store.series(PM25, unit, start=T0, end=minutes(240), every=HOUR) == []


# -- names, text and time ----------------------------------------------------------------


def test_tags_with_spaces_commas_equals_quotes_and_vietnamese_round_trip(store: Store) -> None:
    measurement = "chất lượng, không khí"
    field = "bụi mịn=PM2.5"
    level = "xã, phường = cấp 2"
    code = "Phường Hải Châu, \"trung tâm\"=1 'cũ'"
    device = "trạm số 1, đường Bạch Đằng = 'bờ sông'"
    store.write([Point(measurement, {"device": device, level: code}, {field: 35.2}, minutes(3))])
    result = store.latest_by_unit(MetricRef(measurement, field), level, since=T0)
    assert result == [UnitValue(code=code, value=35.2, ts=minutes(3), devices=1)]
    trend = store.series(
        MetricRef(measurement, field), UnitRef(level, code), start=T0, end=minutes(60), every=HOUR
    )
    assert trend == [SeriesPoint(T0, 35.2)]


def test_decomposed_vietnamese_is_stored_and_found_as_nfc(store: Store) -> None:
    nfc_code = "Phường Hòa Khánh"
    nfd_code = unicodedata.normalize("NFD", nfc_code)
    assert nfd_code != nfc_code
    store.write([air("aq-1", None, minutes(1), 10.0, ward=nfd_code)])
    store.write([air("aq-2", None, minutes(2), 30.0, ward=nfc_code)])
    result = store.latest_by_unit(PM25, "ward", since=T0)
    assert result == [UnitValue(code=nfc_code, value=20.0, ts=minutes(2), devices=2)]
    trend = store.series(PM25, UnitRef("ward", nfd_code), start=T0, end=minutes(60), every=HOUR)
    assert trend == [SeriesPoint(T0, 20.0)]


def test_millisecond_timestamps_round_trip_exactly(store: Store) -> None:
    at = datetime(2026, 11, 2, 1, 2, 3, 456_000, tzinfo=UTC)
    store.write([air("aq-1", "20194", at, 1.0)])
    store.write([air("aq-2", "20260", at + timedelta(microseconds=789), 2.0)])  # sub-ms cut
    result = store.latest_by_unit(PM25, "commune", since=at)
    assert [unit.ts for unit in result] == [at, at]
    one_ms = store.series(
        PM25,
        UnitRef("commune", "20194"),
        start=T0,
        end=minutes(60),
        every=timedelta(milliseconds=1),
    )
    assert one_ms == [SeriesPoint(at, 1.0)]
    assert store.latest_by_unit(PM25, "commune", since=at + timedelta(milliseconds=1)) == []


def test_three_levels_province_district_commune(store: Store) -> None:
    def point(device: str, district: str, commune: str, value: float) -> Point:
        tags = {"device": device, "province": "48", "district": district, "commune": commune}
        return Point("air", tags, {"pm25": value}, minutes(1))

    store.write(
        [
            point("aq-1", "490", "20194", 10.0),
            point("aq-2", "490", "20197", 30.0),
            point("aq-3", "492", "20230", 50.0),
        ]
    )
    districts = store.latest_by_unit(PM25, "district", since=T0, parent=UnitRef("province", "48"))
    assert values(districts) == {"490": 20.0, "492": 50.0}
    communes = store.latest_by_unit(PM25, "commune", since=T0, parent=UnitRef("district", "490"))
    assert values(communes) == {"20194": 10.0, "20197": 30.0}
    trend = store.series(PM25, UnitRef("district", "490"), start=T0, end=minutes(60), every=HOUR)
    assert trend == [SeriesPoint(T0, 20.0)]


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"fields": {"pm25": float("nan")}}, "must be finite"),
        ({"fields": {}}, "at least one field"),
        ({"ts": datetime(2026, 11, 2, 1, 0)}, "timezone-aware"),
        ({"tags": {"device": "a\\b"}}, "backslash"),
        ({"tags": {"device": "a\nb"}}, "control characters"),
        ({"tags": {"time": "x"}}, "reserves"),
    ],
)
def test_a_bad_point_is_refused_and_the_rest_of_the_batch_is_written(
    store: Store, bad: dict[str, object], reason: str
) -> None:
    good = air("aq-1", "20194", minutes(1), 10.0)
    base: dict[str, object] = {
        "measurement": "air",
        "tags": {"device": "aq-9", "commune": "20194"},
        "fields": {"pm25": 99.0},
        "ts": minutes(2),
    }
    broken = Point(**(base | bad))  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match=reason) as caught:
        store.write([good, broken, air("aq-2", "20194", minutes(1), 30.0)])
    assert "1 of 3 points refused" in str(caught.value)
    [unit] = store.latest_by_unit(PM25, "commune", since=T0)
    assert (unit.value, unit.devices) == (20.0, 2)


def test_unknown_aggregation_and_bad_every_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="aggregation must be one of"):
        store.latest_by_unit(PM25, "commune", since=T0, aggregation="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole number of milliseconds"):
        store.series(PM25, UnitRef("commune", "1"), start=T0, end=minutes(1), every=timedelta(0))
