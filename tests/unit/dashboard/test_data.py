"""The dashboard's named queries on a real SqliteStore (a file in tmp_path)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from core.store import SqliteStore
from core.types import Point, UnitRef
from dashboard.data import DashboardData, series_frame, unit_values_frame
from tests.conftest import FakeClock

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
DANANG = UnitRef("province", "48")
HAI_VAN = UnitRef("commune", "20194")


def air(device: str, commune: str, pm25: float, ts: datetime, province: str = "48") -> Point:
    tags = {"device": device, "province": province, "commune": commune}
    return Point("air", tags, {"pm25": pm25, "pm10": pm25 * 2}, ts)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "timeseries.sqlite")
    opened.write(
        [
            air("aq-1", "20194", 90.0, NOW - timedelta(minutes=3)),
            air("aq-2", "20194", 100.0, NOW - timedelta(minutes=1)),
            air("aq-3", "20197", 20.0, NOW - timedelta(hours=2)),
            air("aq-4", "20197", 30.0, NOW - timedelta(days=2)),  # beyond the lookback
            air("aq-5", "00004", 55.0, NOW, province="01"),  # Hà Nội: outside the scope
        ]
        + [air("aq-1", "20194", 40.0 + step, NOW - timedelta(minutes=5 * step + 3)) for step in
           range(1, 12)]
    )  # fmt: skip
    yield opened
    opened.close()


@pytest.fixture
def data(store: SqliteStore, settings: Settings) -> DashboardData:
    return DashboardData(
        store, settings.metrics, clock=FakeClock(NOW), level="commune", scope=DANANG
    )


def test_map_values_per_commune_within_scope_and_lookback(data: DashboardData) -> None:
    frame = data.map_values("pm25")
    assert list(frame.index) == ["20194", "20197"]
    assert frame.loc["20194", "value"] == pytest.approx(95.0)  # mean of the devices' last
    assert frame.loc["20194", "devices"] == 2
    assert frame.loc["20194", "ts"] == NOW - timedelta(minutes=1)
    assert frame.loc["20197", "value"] == pytest.approx(20.0)  # aq-4 is too old to count
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"


def test_unknown_metric_names_the_catalogue(data: DashboardData) -> None:
    with pytest.raises(KeyError, match="pm25"):
        data.map_values("no2")


def test_unit_latest_has_every_catalogue_metric(data: DashboardData, settings: Settings) -> None:
    frame = data.unit_latest(HAI_VAN)
    assert list(frame.index) == list(settings.metrics)
    assert frame.loc["pm25", "value"] == pytest.approx(95.0)
    assert frame.loc["pm10", "value"] == pytest.approx(190.0)
    assert math.isnan(frame.loc["water_level", "value"])
    assert frame.loc["water_level", "devices"] == 0


def test_trend_is_15_minute_buckets_of_the_last_day(data: DashboardData) -> None:
    frame = data.trend("pm25", HAI_VAN)
    assert list(frame.columns) == ["ts", "value"]
    assert all(ts.minute % 15 == 0 and ts.second == 0 for ts in frame["ts"])
    assert frame["ts"].is_monotonic_increasing
    assert frame["ts"].iloc[-1] == NOW - timedelta(minutes=15)  # [00:45, 01:00) holds the last
    assert len(frame) == 4  # readings from 00:02 to 00:59: buckets 00:00, 00:15, 00:30, 00:45


class CountingStore:
    """Passes through to the real store and counts the queries."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.store, name)
        if name in ("latest_by_unit", "series"):
            self.calls += 1
        return attribute


def test_cache_serves_all_screens_with_one_query(store: SqliteStore, settings: Settings) -> None:
    counting = CountingStore(store)
    cached = DashboardData(
        counting,  # type: ignore[arg-type]
        settings.metrics,
        clock=FakeClock(NOW),
        level="commune",
        scope=DANANG,
        cache_s=60,
    )
    first = cached.map_values("pm25")
    assert cached.map_values("pm25") is first
    assert counting.calls == 1
    cached.map_values("pm10")  # another query, another key
    assert counting.calls == 2

    uncached = DashboardData(
        counting,  # type: ignore[arg-type]
        settings.metrics,
        clock=FakeClock(NOW),
        level="commune",
        scope=DANANG,
    )
    uncached.map_values("pm25")
    uncached.map_values("pm25")
    assert counting.calls == 4


def test_empty_frames_keep_their_columns_and_types() -> None:
    values = unit_values_frame([])
    assert list(values.columns) == ["value", "ts", "devices"]
    assert str(values["ts"].dtype) == "datetime64[us, UTC]"
    series = series_frame([])
    assert series.empty
    assert list(series.columns) == ["ts", "value"]
