"""The devices page's data: connection status at the interval boundaries, per-kind
intervals, filters, the access rule, one store query per catalogue metric, and the
unregistered devices from the ingest's table and the store."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine

from core.db import make_engine
from core.errors import RetryableError
from core.settings import MetricSettings, Settings
from dashboard.devices_status import (
    STATUS_COLUMNS,
    FilterError,
    connection_status,
    count_by,
    device_status_frame,
    latest_readings,
)
from dashboard.devices_unregistered import (
    UNREGISTERED_COLUMNS,
    place_devices,
    read_unassigned,
    unregistered_frame,
)
from ingest.unassigned import SqlUnassignedDevices
from layers.geography import Geography
from layers.levels import Hierarchy
from layers.registry import Device
from tests.unit.dashboard.devices_seed import (
    CAM_LE,
    DA_NANG,
    HAI_VAN,
    INTERVALS,
    NOW,
    FakeStore,
    admin,
    device,
    ha_noi_commune,
    officer,
    reading,
)

MINUTE = 60.0


@pytest.fixture(scope="module")
def hierarchy(geography: Geography) -> Hierarchy:
    return geography.hierarchy


@pytest.fixture(scope="module")
def metrics(settings: Settings) -> dict[str, MetricSettings]:
    return dict(settings.metrics)


# ------------------------------------------------------------------ status boundaries


@pytest.mark.parametrize(
    ("age_s", "expected"),
    [
        pytest.param(0.0, "online", id="just-now"),
        pytest.param(-30.0, "online", id="device-clock-ahead"),
        pytest.param(2 * MINUTE, "online", id="exactly-2-intervals-is-online"),
        pytest.param(2 * MINUTE + 0.001, "late", id="just-over-2-intervals-is-late"),
        pytest.param(5 * MINUTE, "late", id="exactly-5-intervals-is-late"),
        pytest.param(5 * MINUTE + 0.001, "offline", id="just-over-5-intervals-is-offline"),
        pytest.param(None, "offline", id="never-seen"),
    ],
)
def test_status_at_the_boundaries(age_s: float | None, expected: str) -> None:
    last_seen = None if age_s is None else NOW - timedelta(seconds=age_s)
    assert connection_status(last_seen, NOW, MINUTE) == expected


def frame_for(
    store: FakeStore,
    devices: list[Device],
    metrics: dict[str, MetricSettings],
    hierarchy: Hierarchy,
    access: object = None,
    **filters: str | None,
) -> pd.DataFrame:
    return device_status_frame(
        store,
        devices,
        metrics,
        INTERVALS,
        NOW,
        access if access is not None else admin(hierarchy),  # type: ignore[arg-type]
        hierarchy=hierarchy,
        **filters,  # type: ignore[arg-type]
    )


def test_each_kind_has_its_own_interval(
    hierarchy: Hierarchy, metrics: dict[str, MetricSettings]
) -> None:
    tags = hierarchy.level_tags(HAI_VAN)
    devices = [
        device("aq-1", "air", HAI_VAN, hierarchy),
        device("wl-1", "water", HAI_VAN, hierarchy),
        device("nz-1", "noise", HAI_VAN, hierarchy),  # no expected interval: the default
    ]
    store = FakeStore()
    store.write(
        [
            reading("aq-1", "air", tags, 500, pm25=12.0),
            reading("wl-1", "water", tags, 500, level=1.25),
        ]
    )
    frame = frame_for(store, devices, metrics, hierarchy).set_index("device_id")
    # 500 s: more than 5 air intervals (300 s), fewer than 2 water intervals (600 s)
    assert frame.loc["aq-1", "status"] == "offline"
    assert frame.loc["wl-1", "status"] == "online"
    assert frame.loc["nz-1", "status"] == "offline"  # never seen
    assert frame.loc["wl-1", "interval_s"] == 300
    assert frame.loc["nz-1", "interval_s"] == 60
    assert frame.loc["aq-1", "age_s"] == 500
    assert math.isnan(frame.loc["nz-1", "age_s"])
    assert pd.isna(frame.loc["nz-1", "last_seen"])


def test_values_of_the_devices_kind_only_and_one_query_per_metric(
    hierarchy: Hierarchy, metrics: dict[str, MetricSettings]
) -> None:
    tags = hierarchy.level_tags(CAM_LE)
    devices = [device(f"aq-{n:04d}", "air", CAM_LE, hierarchy) for n in range(1000)]
    store = FakeStore()
    store.write([reading(d.device_id, "air", tags, 30, pm25=20.0, pm10=41.5) for d in devices])
    store.write([reading("aq-0007", "water", tags, 10, level=9.9)])  # a stray kind
    frame = frame_for(store, devices, metrics, hierarchy).set_index("device_id")
    assert len(store.queries) == len(metrics)  # not one per device
    assert list(frame.columns) == [*STATUS_COLUMNS[1:], *metrics]
    row = frame.loc["aq-0007"]
    assert (row["pm25"], row["pm10"]) == (20.0, 41.5)
    assert math.isnan(row["water_level"])  # another kind's value is not this device's
    assert row["age_s"] == 30  # and did not make it look newer
    assert row["unit_name"] == "Phường Cẩm Lệ, Thành phố Đà Nẵng"


@pytest.fixture
def city(hierarchy: Hierarchy) -> tuple[FakeStore, list[Device]]:
    """aq-hv online and wl-hv late in Hải Vân, aq-cl offline in Cẩm Lệ, aq-hn online in
    Hà Nội, aq-out (outside every unit) online, wl-never never seen."""
    hanoi = ha_noi_commune(hierarchy)
    devices = [
        device("aq-hv", "air", HAI_VAN, hierarchy),
        device("wl-hv", "water", HAI_VAN, hierarchy),
        device("aq-cl", "air", CAM_LE, hierarchy),
        device("aq-hn", "air", hanoi, hierarchy),
        device("aq-out", "air", None, hierarchy),
        device("wl-never", "water", CAM_LE, hierarchy),
    ]
    store = FakeStore()
    store.write(
        [
            reading("aq-hv", "air", hierarchy.level_tags(HAI_VAN), 60, pm25=35.0),
            reading("wl-hv", "water", hierarchy.level_tags(HAI_VAN), 1000, level=1.0),
            reading("aq-cl", "air", hierarchy.level_tags(CAM_LE), 3600, pm25=5.0),
            reading("aq-hn", "air", hierarchy.level_tags(hanoi), 10, pm25=50.0),
            reading("aq-out", "air", {}, 10, pm25=8.0),
        ]
    )
    return store, devices


def ids(frame: pd.DataFrame) -> list[str]:
    return list(frame["device_id"])


def test_worst_first_then_longest_silent(
    city: tuple[FakeStore, list[Device]],
    hierarchy: Hierarchy,
    metrics: dict[str, MetricSettings],
) -> None:
    frame = frame_for(*city, metrics, hierarchy)
    assert ids(frame) == ["wl-never", "aq-cl", "wl-hv", "aq-hv", "aq-hn", "aq-out"]
    assert list(frame["status"]) == ["offline", "offline", "late", "online", "online", "online"]


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        pytest.param((HAI_VAN,), ["wl-hv", "aq-hv"], id="commune-officer"),
        pytest.param((DA_NANG,), ["wl-never", "aq-cl", "wl-hv", "aq-hv"], id="province-officer"),
        pytest.param((), [], id="no-units"),
        pytest.param(("99999",), [], id="unknown-unit"),
    ],
)
def test_only_devices_of_visible_units(
    city: tuple[FakeStore, list[Device]],
    hierarchy: Hierarchy,
    metrics: dict[str, MetricSettings],
    units: tuple[str, ...],
    expected: list[str],
) -> None:
    frame = frame_for(*city, metrics, hierarchy, officer(hierarchy, *units))
    assert ids(frame) == expected  # aq-out (no unit) is an admin's only


def test_a_unit_out_of_reach_answers_like_no_data(
    city: tuple[FakeStore, list[Device]],
    hierarchy: Hierarchy,
    metrics: dict[str, MetricSettings],
) -> None:
    hai_van = officer(hierarchy, HAI_VAN)
    asked = frame_for(*city, metrics, hierarchy, hai_van, unit=CAM_LE)
    nothing = frame_for(*city, metrics, hierarchy, hai_van, unit="20999")
    assert asked.empty
    assert nothing.empty
    assert list(asked.columns) == list(nothing.columns)
    # The province filter gives the officer their own commune, never the others.
    assert ids(frame_for(*city, metrics, hierarchy, hai_van, unit=DA_NANG)) == ["wl-hv", "aq-hv"]


def test_filters_unit_with_descendants_kind_and_status(
    city: tuple[FakeStore, list[Device]],
    hierarchy: Hierarchy,
    metrics: dict[str, MetricSettings],
) -> None:
    everything = ["wl-never", "aq-cl", "wl-hv", "aq-hv"]
    assert ids(frame_for(*city, metrics, hierarchy, unit=DA_NANG)) == everything
    assert ids(frame_for(*city, metrics, hierarchy, unit=HAI_VAN)) == ["wl-hv", "aq-hv"]
    assert ids(frame_for(*city, metrics, hierarchy, unit=DA_NANG, kind="water")) == [
        "wl-never",
        "wl-hv",
    ]
    assert ids(frame_for(*city, metrics, hierarchy, status="online")) == [
        "aq-hv",
        "aq-hn",
        "aq-out",
    ]
    assert ids(frame_for(*city, metrics, hierarchy, kind="air", status="offline")) == ["aq-cl"]
    assert frame_for(*city, metrics, hierarchy, kind="noise").empty
    with pytest.raises(FilterError, match="status must be one of offline, late, online: up"):
        frame_for(*city, metrics, hierarchy, status="up")


def test_unit_names_in_english(
    city: tuple[FakeStore, list[Device]],
    hierarchy: Hierarchy,
    metrics: dict[str, MetricSettings],
) -> None:
    frame = frame_for(*city, metrics, hierarchy, unit=HAI_VAN, lang="en")
    assert set(frame["unit_name"]) == {"Hai Van Ward, Da Nang City"}
    admin_view = frame_for(*city, metrics, hierarchy).set_index("device_id")
    assert admin_view.loc["aq-out", "unit_name"] == ""


def test_counts_per_status_and_kind(
    city: tuple[FakeStore, list[Device]],
    hierarchy: Hierarchy,
    metrics: dict[str, MetricSettings],
) -> None:
    counts = count_by(frame_for(*city, metrics, hierarchy, unit=DA_NANG))
    assert counts[""] == {"offline": 2, "late": 1, "online": 1}
    assert counts["air"] == {"offline": 1, "late": 0, "online": 1}
    assert counts["water"] == {"offline": 1, "late": 1, "online": 0}
    assert count_by(frame_for(*city, metrics, hierarchy, kind="noise")) == {
        "": {"offline": 0, "late": 0, "online": 0}
    }


def test_store_errors_reach_the_caller(
    hierarchy: Hierarchy, metrics: dict[str, MetricSettings]
) -> None:
    store = FakeStore()
    store.fail = RetryableError("store down")
    with pytest.raises(RetryableError):
        frame_for(store, [device("aq-1", "air", HAI_VAN, hierarchy)], metrics, hierarchy)


# ------------------------------------------------------------------ unregistered


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")


def seen(engine: Engine, device_id: str, why: str, minutes_ago: list[float]) -> None:
    registry = SqlUnassignedDevices(engine, write_every_s=0)
    for minutes in minutes_ago:
        registry.seen(device_id, "air", why, NOW - timedelta(minutes=minutes))


@pytest.fixture
def strangers(hierarchy: Hierarchy, engine: Engine) -> tuple[FakeStore, list[Device], pd.DataFrame]:
    """Registered aq-hv; unregistered: bus-7 with no position (ingest table and store),
    ship-2 outside the map (ingest table only, data older than the lookback), aq-new placed
    in Hải Vân, wl-new placed in Cẩm Lệ; unit-20194, a government source."""
    unassigned = {"province": "unassigned", "commune": "unassigned"}
    store = FakeStore()
    store.write(
        [
            reading("aq-hv", "air", hierarchy.level_tags(HAI_VAN), 30, pm25=3.0),
            reading("bus-7", "air", unassigned, 120, pm25=9.0),
            reading("aq-new", "air", hierarchy.level_tags(HAI_VAN), 60, pm25=7.0),
            reading("wl-new", "water", hierarchy.level_tags(CAM_LE), 600, level=0.4),
            reading("unit-20194", "air", hierarchy.level_tags(HAI_VAN), 5, pm25=1.0),
        ]
    )
    seen(engine, "bus-7", "no_position", [90, 30, 2])
    seen(engine, "ship-2", "outside_map", [60 * 24 * 9])
    seen(engine, "aq-hv", "no_position", [60 * 24])  # registered since
    return store, [device("aq-hv", "air", HAI_VAN, hierarchy)], read_unassigned(engine)


def strangers_for(
    strangers: tuple[FakeStore, list[Device], pd.DataFrame],
    metrics: dict[str, MetricSettings],
    hierarchy: Hierarchy,
    access: object,
    **filters: str | None,
) -> pd.DataFrame:
    store, devices, unassigned = strangers
    return unregistered_frame(
        store,
        devices,
        metrics,
        NOW,
        access,  # type: ignore[arg-type]
        hierarchy=hierarchy,
        unassigned=unassigned,
        **filters,  # type: ignore[arg-type]
    )


def test_the_ingests_table_is_read_newest_first(engine: Engine) -> None:
    assert read_unassigned(engine).empty  # the ingest never made the table: nothing
    seen(engine, "bus-7", "no_position", [90, 30, 2])
    seen(engine, "ship-2", "outside_map", [10])
    table = read_unassigned(engine)
    assert list(table["device_id"]) == ["bus-7", "ship-2"]
    bus = table.iloc[0]
    assert (bus["why"], bus["count"]) == ("no_position", 3)
    assert bus["first_seen"] == NOW - timedelta(minutes=90)
    assert bus["last_seen"] == NOW - timedelta(minutes=2)
    assert read_unassigned(None).empty


def test_admin_sees_every_unregistered_device(
    strangers: tuple[FakeStore, list[Device], pd.DataFrame],
    hierarchy: Hierarchy,
    metrics: dict[str, MetricSettings],
) -> None:
    frame = strangers_for(strangers, metrics, hierarchy, admin(hierarchy))
    assert list(frame.columns) == list(UNREGISTERED_COLUMNS)
    assert ids(frame) == ["aq-new", "bus-7", "wl-new", "ship-2"]  # newest first
    rows = frame.set_index("device_id")
    assert rows.loc["aq-new", "unit_code"] == HAI_VAN
    assert rows.loc["aq-new", "why"] == "not_registered"
    assert pd.isna(rows.loc["aq-new", "count"])
    assert rows.loc["wl-new", "kind"] == "water"
    assert rows.loc["wl-new", "unit_name"] == "Phường Cẩm Lệ, Thành phố Đà Nẵng"
    bus = rows.loc["bus-7"]
    assert bus["unit_code"] is None
    assert (bus["why"], bus["count"]) == ("no_position", 3)
    assert bus["first_seen"] == NOW - timedelta(minutes=90)
    assert bus["last_seen"] == NOW - timedelta(minutes=2)  # the newer of the two sources
    assert rows.loc["ship-2", "why"] == "outside_map"


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        pytest.param((HAI_VAN,), ["aq-new"], id="commune-officer"),
        pytest.param((DA_NANG,), ["aq-new", "wl-new"], id="province-officer"),
        pytest.param((CAM_LE,), ["wl-new"], id="other-commune"),
        pytest.param((), [], id="nobody"),
    ],
)
def test_others_see_only_devices_placed_in_their_units(
    strangers: tuple[FakeStore, list[Device], pd.DataFrame],
    hierarchy: Hierarchy,
    metrics: dict[str, MetricSettings],
    units: tuple[str, ...],
    expected: list[str],
) -> None:
    frame = strangers_for(strangers, metrics, hierarchy, officer(hierarchy, *units))
    assert ids(frame) == expected


def test_unregistered_filters(
    strangers: tuple[FakeStore, list[Device], pd.DataFrame],
    hierarchy: Hierarchy,
    metrics: dict[str, MetricSettings],
) -> None:
    everyone = admin(hierarchy)
    assert ids(strangers_for(strangers, metrics, hierarchy, everyone, unit=CAM_LE)) == ["wl-new"]
    assert ids(strangers_for(strangers, metrics, hierarchy, everyone, unit=DA_NANG)) == [
        "aq-new",
        "wl-new",
    ]  # the unplaced are in no unit
    assert ids(strangers_for(strangers, metrics, hierarchy, everyone, kind="water")) == ["wl-new"]


def test_placements_are_bounded_and_newest_first(
    hierarchy: Hierarchy, metrics: dict[str, MetricSettings]
) -> None:
    store = FakeStore()
    tags = hierarchy.level_tags(HAI_VAN)
    store.write([reading(f"x-{n}", "air", tags, n, pm25=1.0) for n in range(10)])
    since = NOW - timedelta(days=7)
    readings = latest_readings(store, metrics, since)
    store.queries.clear()
    placed = place_devices(store, metrics, readings, {"x-0"}, "commune", since, limit=3)
    assert placed == {"x-1": HAI_VAN, "x-2": HAI_VAN, "x-3": HAI_VAN}
    assert len(store.queries) == 3
    # Beyond the limit a device is not placed: shown to admins only, as "unplaced".
    frame = unregistered_frame(
        store, [], metrics, NOW, admin(hierarchy), hierarchy=hierarchy, placed=placed,
        readings=readings,
    )  # fmt: skip
    assert frame.set_index("device_id").loc["x-9", "why"] == "unplaced"
    assert list(frame["device_id"][:4]) == ["x-0", "x-1", "x-2", "x-3"]


def test_a_broken_state_database_is_retryable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}")  # a folder: SQLite cannot open it
    with pytest.raises(RetryableError, match="unassigned devices could not be read"):
        read_unassigned(engine)
