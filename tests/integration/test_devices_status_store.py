"""The devices page's data on real stores: SQLite (a file in tmp_path) and a real influxd
1.6.7 (a fresh database per test). The statuses, last values and the placement of
unregistered devices (a query with the device as parent) must come out the same."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from core.ports import Store
from core.settings import InfluxSettings, Settings, load_settings
from core.store import InfluxStore, SqliteStore
from core.types import Point
from dashboard.devices_status import device_status_frame
from dashboard.devices_unregistered import unregistered_frame
from layers.geography import Geography
from layers.levels import Hierarchy
from tests.fixtures.signin import TEST_SECRET_ENV
from tests.unit.dashboard.devices_seed import (
    CAM_LE,
    HAI_VAN,
    INTERVALS,
    NOW,
    admin,
    device,
    officer,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)


@pytest.fixture(scope="module")
def hierarchy(settings: Settings) -> Hierarchy:
    return Geography.from_settings(settings).hierarchy


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


def point(
    kind: str, device_id: str, tags: dict[str, str], seconds_ago: float, **fields: float
) -> Point:
    return Point(kind, {"device": device_id, **tags}, fields, NOW - timedelta(seconds=seconds_ago))


def test_statuses_values_and_placements(
    store: Store, settings: Settings, hierarchy: Hierarchy
) -> None:
    hai_van, cam_le = hierarchy.level_tags(HAI_VAN), hierarchy.level_tags(CAM_LE)
    unassigned = {level: "unassigned" for level in hierarchy.levels}
    store.write(
        [
            point("air", "aq-hv", hai_van, 3600, pm25=80.0, pm10=100.0),  # older value first
            point("air", "aq-hv", hai_van, 120, pm25=35.25, pm10=60.0),  # exactly 2 intervals
            point("water", "wl-hv", hai_van, 1501, level=1.5, alarm=1.0),  # just over 5 × 300
            point("air", "aq-cl", cam_le, 121, pm25=10.0),  # just over 2 intervals
            point("air", "aq-new", hai_van, 3600, pm25=7.0),  # unregistered, moved to Cẩm Lệ:
            point("air", "aq-new", cam_le, 60, pm25=8.0),
            point("air", "bus-7", unassigned, 30, pm25=9.0),
            point("air", "unit-20194", hai_van, 10, pm25=11.0),  # a unit's own source
        ]
    )
    devices = [
        device("aq-hv", "air", HAI_VAN, hierarchy),
        device("wl-hv", "water", HAI_VAN, hierarchy),
        device("aq-cl", "air", CAM_LE, hierarchy),
        device("aq-never", "air", CAM_LE, hierarchy),
    ]
    frame = device_status_frame(
        store, devices, settings.metrics, INTERVALS, NOW, admin(hierarchy), hierarchy=hierarchy
    ).set_index("device_id")
    assert frame["status"].to_dict() == {
        "aq-never": "offline",
        "wl-hv": "offline",
        "aq-cl": "late",
        "aq-hv": "online",
    }
    assert (frame.loc["aq-hv", "pm25"], frame.loc["aq-hv", "pm10"]) == (35.25, 60.0)
    assert frame.loc["aq-hv", "last_seen"] == NOW - timedelta(seconds=120)
    assert (frame.loc["wl-hv", "water_level"], frame.loc["wl-hv", "flood_alarm"]) == (1.5, 1.0)

    strangers = unregistered_frame(
        store, devices, settings.metrics, NOW, admin(hierarchy), hierarchy=hierarchy
    ).set_index("device_id")
    assert list(strangers.index) == ["bus-7", "aq-new"]
    assert strangers.loc["aq-new", "unit_code"] == CAM_LE  # where it sends from now
    assert strangers.loc["bus-7", "unit_code"] is None
    assert strangers.loc["bus-7", "why"] == "unplaced"
    mine = unregistered_frame(
        store, devices, settings.metrics, NOW, officer(hierarchy, HAI_VAN), hierarchy=hierarchy
    )
    assert mine.empty  # aq-new left Hải Vân
