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
