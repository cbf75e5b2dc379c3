"""What InfluxStore tells its caller when a real influxd 1.6.7 refuses a write or is gone:
PermanentError (with the server's reason) when retrying cannot help, RetryableError when
it can. 5xx and timeouts from a scripted server: tests/unit/store/test_influx_http.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import PermanentError, RetryableError
from core.settings import InfluxSettings
from core.store import InfluxStore
from core.types import MetricRef, Point, UnitRef, UnitValue
from tests.fixtures.influxd import InfluxServer, RestartableInfluxd

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
PM25 = MetricRef("air", "pm25")


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def air(device: str, commune: str, at: datetime, pm25: float) -> Point:
    return Point(
        "air", {"device": device, "province": "48", "commune": commune}, {"pm25": pm25}, at
    )


def water(at: datetime, level: float) -> Point:
    return Point("water", {"device": "w-1", "commune": "20260"}, {"level": level}, at)


def values(result: list[UnitValue]) -> dict[str, float]:
    return {unit.code: unit.value for unit in result}


def influx_store(server: InfluxServer, database: str, **settings: object) -> InfluxStore:
    return InfluxStore(InfluxSettings(url=server.url, database=database, **settings))  # type: ignore[arg-type]


def test_field_type_conflict_is_permanent_with_the_servers_message(
    influxd: InfluxServer, influx_db: str
) -> None:
    # InfluxDB 1.x keeps field types per shard (one week): the integer goes into the same one.
    integer_point = f"air,device=old,commune=20194 pm25=7i {int(T0.timestamp() * 1000)}"
    assert influxd.write(integer_point, influx_db).status_code == 204
    store = influx_store(influxd, influx_db)
    try:
        with pytest.raises(PermanentError, match="field type conflict") as caught:
            store.write([air("aq-1", "20194", minutes(1), 10.0), water(minutes(1), 2.1)])
        assert "HTTP 400" in str(caught.value)
        water_level = store.latest_by_unit(MetricRef("water", "level"), "commune", since=T0)
        assert values(water_level) == {"20260": 2.1}  # the rest of the batch was stored
    finally:
        store.close()


def test_a_float_into_a_string_field_is_a_partial_write_carrying_the_servers_reason(
    influxd: InfluxServer, influx_db: str
) -> None:
    """Another writer (an old firmware bridge) stored pm25 as text in this shard; our float
    then conflicts. The error is permanent, names field, measurement, both types and how
    many points the server dropped, and the good points of the batch are stored."""
    text_point = f'air,device=bridge,commune=20194 pm25="cao" {int(T0.timestamp() * 1000)}'
    assert influxd.write(text_point, influx_db).status_code == 204
    store = influx_store(influxd, influx_db)
    try:
        with pytest.raises(PermanentError) as caught:
            store.write(
                [
                    air("aq-1", "20194", minutes(1), 10.0),
                    water(minutes(1), 2.1),
                    air("aq-2", "20194", minutes(2), 20.0),
                ]
            )
        assert not isinstance(caught.value, RetryableError)
        assert str(caught.value) == (
            "InfluxDB could not write 3 points: HTTP 400: partial write: field type conflict:"
            ' input field "pm25" on measurement "air" is type float, already exists as type'
            " string dropped=2"
        )
        water_level = store.latest_by_unit(MetricRef("water", "level"), "commune", since=T0)
        assert values(water_level) == {"20260": 2.1}
    finally:
        store.close()


def test_an_outage_is_retryable_and_the_same_store_writes_again_after_it(
    influxd_restartable: RestartableInfluxd,
) -> None:
    store = influx_store(influxd_restartable.server, "outage", timeout_s=2)
    try:
        store.write([air("aq-1", "20194", minutes(1), 10.0)])
        influxd_restartable.stop()
        with pytest.raises(RetryableError, match="could not write 1 points") as caught:
            store.write([air("aq-1", "20194", minutes(2), 11.0)])
        assert caught.value.__cause__ is not None  # the connection error, for the log
        with pytest.raises(RetryableError):
            store.latest_by_unit(PM25, "commune", since=T0)
        influxd_restartable.start()  # same port and data directory
        store.write([air("aq-1", "20194", minutes(2), 11.0)])  # the caller's retry
        assert store.latest_by_unit(PM25, "commune", since=T0) == [
            UnitValue(code="20194", value=11.0, ts=minutes(2), devices=1)
        ]
        points = store.series(
            PM25,
            UnitRef("commune", "20194"),
            start=T0,
            end=minutes(60),
            every=timedelta(minutes=1),
        )
        assert [point.value for point in points] == [10.0, 11.0]  # kept through the restart
    finally:
        store.close()


def test_bad_database_name_is_permanent(influxd: InfluxServer) -> None:
    store = influx_store(influxd, "bad/name")
    try:
        with pytest.raises(PermanentError, match="invalid name"):
            store.write([air("aq-1", "20194", minutes(1), 10.0)])
    finally:
        store.close()


def test_missing_database_without_create_is_permanent(influxd: InfluxServer) -> None:
    store = influx_store(influxd, "never_created", create_database=False)
    try:
        with pytest.raises(PermanentError, match="database not found"):
            store.write([air("aq-1", "20194", minutes(1), 10.0)])
        with pytest.raises(PermanentError, match="database not found"):
            store.latest_by_unit(PM25, "commune", since=T0)
    finally:
        store.close()


def test_unknown_retention_policy_is_permanent(influxd: InfluxServer, influx_db: str) -> None:
    store = influx_store(influxd, influx_db, retention_policy="no_such_rp")
    try:
        with pytest.raises(PermanentError, match="retention policy not found"):
            store.write([air("aq-1", "20194", minutes(1), 10.0)])
    finally:
        store.close()


def test_creates_its_database_and_again_after_it_was_dropped(
    influxd: InfluxServer,
) -> None:
    database = "created_by_store"
    store = influx_store(influxd, database)
    try:
        store.write([air("aq-1", "20194", minutes(1), 10.0)])
        influxd.query(f'DROP DATABASE "{database}"')
        with pytest.raises(RetryableError, match="database not found"):
            store.write([air("aq-1", "20194", minutes(2), 11.0)])
        store.write([air("aq-1", "20194", minutes(2), 11.0)])  # the caller's retry
        assert values(store.latest_by_unit(PM25, "commune", since=T0)) == {"20194": 11.0}
    finally:
        store.close()
        influxd.query(f'DROP DATABASE "{database}"')
