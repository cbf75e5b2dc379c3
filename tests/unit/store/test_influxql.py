"""InfluxQL quoting and the two queries InfluxStore sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.store.influx import latest_query, quote_ident, quote_string, series_query
from core.types import MetricRef, UnitRef

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
T0_MS = 1_793_581_200_000


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("pm25", '"pm25"'),
        ("xã phường", '"xã phường"'),
        ('a"b', '"a\\"b"'),
        ("a\\", '"a\\\\"'),
        ("it's", '"it\'s"'),
    ],
)
def test_quote_ident(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("20194", "'20194'"),
        ("Phường Hải Châu", "'Phường Hải Châu'"),
        ("it's", "'it\\'s'"),
        ("a\\", "'a\\\\'"),
        ("x' OR 1=1 --", "'x\\' OR 1=1 --'"),
    ],
)
def test_quote_string(value: str, quoted: str) -> None:
    assert quote_string(value) == quoted


def test_latest_query_quotes_every_name_and_value() -> None:
    query = latest_query(
        MetricRef("air", "pm25"), "commune", T0, UnitRef("province", "48'; DROP DATABASE x")
    )
    assert query == (
        f'SELECT last("pm25") FROM "air" WHERE time >= {T0_MS}ms'
        ' AND "province" = \'48\\\'; DROP DATABASE x\' GROUP BY "device", "commune"'
    )
    assert latest_query(MetricRef("air", "pm25"), "commune", T0) == (
        f'SELECT last("pm25") FROM "air" WHERE time >= {T0_MS}ms GROUP BY "device", "commune"'
    )


def test_latest_query_until_is_an_exclusive_end() -> None:
    until = T0 + timedelta(hours=1)
    query = latest_query(
        MetricRef("air", "pm25"), "commune", T0, UnitRef("province", "48"), until=until
    )
    assert query == (
        f'SELECT last("pm25") FROM "air" WHERE time >= {T0_MS}ms'
        f" AND time < {T0_MS + 3_600_000}ms AND \"province\" = '48'"
        ' GROUP BY "device", "commune"'
    )


@pytest.mark.parametrize("aggregation", ["mean", "max", "min", "sum", "last"])
def test_series_query(aggregation: str) -> None:
    query = series_query(
        MetricRef("water", "level"),
        UnitRef("commune", "20260"),
        T0,
        T0 + timedelta(days=1),
        timedelta(minutes=15),
        aggregation,  # type: ignore[arg-type]
    )
    assert query == (
        f'SELECT {aggregation}("level") FROM "water" WHERE "commune" = \'20260\''
        f" AND time >= {T0_MS}ms AND time < {T0_MS + 86_400_000}ms"
        " GROUP BY time(900000ms) fill(none)"
    )


def test_series_query_refuses_unknown_aggregation_and_sub_ms_buckets() -> None:
    metric, unit = MetricRef("air", "pm25"), UnitRef("commune", "1")
    with pytest.raises(ValueError, match="aggregation"):
        series_query(metric, unit, T0, T0, timedelta(hours=1), "count")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="milliseconds"):
        series_query(metric, unit, T0, T0, timedelta(microseconds=1500), "mean")
