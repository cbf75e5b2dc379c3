"""The unit page's key figures and ranking (dashboard/kpi.py, dashboard/ranking.py) on real
stores: SQLite (a file in tmp_path) and a real influxd 1.6.7, with points written through
the store's own ``write``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.ports import Store
from core.settings import InfluxSettings, Settings, load_settings
from core.store import InfluxStore, SqliteStore
from core.types import Point, UnitRef
from dashboard.access import Access
from dashboard.data import DashboardData
from dashboard.kpi import TimeRange, kpi_frame, parse_range
from dashboard.ranking import children_ranking
from layers.geography import Geography
from tests.conftest import REPO, FakeClock
from tests.fixtures.signin import TEST_SECRET_ENV

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 4, 1, 0, tzinfo=UTC)  # 08:00 Wednesday in Đà Nẵng
HAI_VAN = {"province": "48", "commune": "20194"}
CAM_LE = {"province": "48", "commune": "20260"}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)


@pytest.fixture(scope="module")
def geography(settings: Settings) -> Geography:
    return Geography.from_settings(settings)


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("influxdb", marks=pytest.mark.integration)]
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


def air(device: str, tags: dict[str, str], pm25: float, at: datetime) -> Point:
    return Point("air", {"device": device, **tags}, {"pm25": pm25, "pm10": 2 * pm25}, at)


def gauge(alarm: float, at: datetime) -> Point:
    return Point("water", {"device": "wl-1", **HAI_VAN}, {"level": 1.0, "alarm": alarm}, at)


def test_live_and_ranges_on_a_real_store(store: Store, settings: Settings) -> None:
    points = []
    for hour in range(24 * 14):  # two weeks, hourly, at half past
        at = NOW - timedelta(hours=hour, minutes=30)
        this_week = hour < 24 * 7
        points.append(air("aq-1", HAI_VAN, 40.0 if this_week else 20.0, at))
        points.append(air("aq-2", HAI_VAN, 60.0 if this_week else 20.0, at))
    points.append(air("aq-1", HAI_VAN, 10.0, NOW - timedelta(minutes=1)))  # the latest of aq-1
    store.write(points)
    live = kpi_frame(store, settings.metrics, UnitRef("commune", "20194"), _range("live"), NOW)
    pm25 = live.loc["pm25"]
    assert pm25["value"] == pytest.approx(35.0)  # aq-1's 10 and aq-2's 60
    assert pm25["previous"] == pytest.approx(50.0)  # 40 and 60, a day ago
    assert pm25["change"] == pytest.approx(-15.0)
    assert pm25["change_pct"] == pytest.approx(-30.0)
    assert pm25["ts"] == NOW - timedelta(minutes=1)
    assert pm25["devices"] == 2

    week = kpi_frame(store, settings.metrics, UnitRef("commune", "20194"), _range("7d"), NOW)
    pm25 = week.loc["pm25"]
    # Hourly bucket means: 50 in every hour of the week but the last (10 and 40, 60: 36.7).
    assert pm25["value"] == pytest.approx((50.0 * 167 + (10 + 40 + 60) / 3) / 168, abs=0.05)
    assert pm25["previous"] == pytest.approx(20.0)
    assert pm25["devices"] == 2
    assert week.loc["pm10", "value"] == pytest.approx(2 * pm25["value"])


def test_custom_days_end_at_local_midnight(store: Store, settings: Settings) -> None:
    store.write(
        [
            gauge(3.0, datetime(2026, 11, 2, 16, 59, tzinfo=UTC)),  # 23:59 on 2 November
            gauge(1.0, datetime(2026, 11, 2, 17, 0, tzinfo=UTC)),  # 00:00 on 3 November
            gauge(0.0, datetime(2026, 11, 1, 17, 0, tzinfo=UTC)),  # 00:00 on 2 November
            gauge(2.0, datetime(2026, 11, 1, 16, 59, tzinfo=UTC)),  # 23:59 on 1 November
        ]
    )
    unit = UnitRef("commune", "20194")
    second = kpi_frame(store, settings.metrics, unit, _range("custom", "2026-11-02"), NOW)
    alarm = second.loc["flood_alarm"]  # aggregation max
    assert (alarm["value"], alarm["previous"]) == (3.0, 2.0)
    assert alarm["ts"] == datetime(2026, 11, 2, 16, 59, tzinfo=UTC)
    third = kpi_frame(store, settings.metrics, unit, _range("custom", "2026-11-03"), NOW)
    assert (third.loc["flood_alarm", "value"], third.loc["flood_alarm", "previous"]) == (1.0, 3.0)
    assert third.loc["flood_alarm", "change"] == -2.0


def test_children_ranking_on_a_real_store(
    store: Store, settings: Settings, geography: Geography
) -> None:
    store.write(
        [
            air("aq-1", HAI_VAN, 80.0, NOW - timedelta(days=2)),
            air("aq-1", HAI_VAN, 20.0, NOW - timedelta(minutes=5)),
            air("aq-3", CAM_LE, 30.0, NOW - timedelta(minutes=3)),
        ]
    )
    data = DashboardData(
        store,
        settings.metrics,
        clock=FakeClock(NOW),
        level="commune",
        hierarchy=geography.hierarchy,
    )
    admin = Access.admin(geography.hierarchy)
    now_ranked = children_ranking(data, admin, "48", "pm25", _range("live"))
    assert list(now_ranked.index[:2]) == ["20194", "20260"]
    week_ranked = children_ranking(data, admin, "48", "pm25", _range("7d"))
    assert list(week_ranked.index[:2]) == ["20260", "20194"]  # Hải Vân's 80 two days ago
    assert week_ranked.loc["20194", "value"] == pytest.approx(50.0)
    officer = Access(geography.hierarchy, ["20194"], role="leader")
    assert children_ranking(data, officer, "48", "pm25", _range("7d")).empty


def _range(kind: str, day: str | None = None) -> TimeRange:
    return parse_range(kind, day, day, NOW, TZ)
