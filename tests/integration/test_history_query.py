"""The map at a past moment across the 2025 reform, on a real SQLite store.

Readings are written the way ingest stored them at the time: before the reform with the
old codes (province, district, commune of 63 → 696 → 10,035), after it with the 2025
codes. Expected numbers are worked out by hand next to each assertion."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from core.settings import Label, LevelSettings, MetricSettings
from core.store import SqliteStore
from core.types import Point, UnitRef
from dashboard.history import historical_unit_values, source_codes
from layers.history import HistoryMap
from layers.levels import Hierarchy

REPO = Path(__file__).resolve().parents[2]
LEVELS = [
    LevelSettings(name="province", code_length=2, label=Label(vi="Tỉnh", en="Province")),
    LevelSettings(name="commune", code_length=5, label=Label(vi="Xã", en="Commune")),
]
REFORM = datetime(2025, 6, 30, 17, 0, tzinfo=UTC)  # 2025-07-01 00:00 Asia/Ho_Chi_Minh
AT = datetime(2025, 6, 15, 3, 0, tzinfo=UTC)  # a moment before the reform
DAY = timedelta(hours=24)
MINUTE = timedelta(minutes=1)

PM25 = MetricSettings(
    kind="air", field="pm25", label=Label(vi="Bụi PM2.5", en="PM2.5"), unit="µg/m³"
)
RECEIVED = MetricSettings(
    kind="dossiers",
    field="received",
    label=Label(vi="Hồ sơ tiếp nhận", en="Dossiers received"),
    unit="",
    aggregation="sum",
    decimals=0,
)


@pytest.fixture(scope="module")
def hierarchy() -> Hierarchy:
    return Hierarchy.from_csv(LEVELS, REPO / "layers" / "data" / "admin_codes_2025.csv")


@pytest.fixture(scope="module")
def history() -> HistoryMap:
    mapping = REPO / "layers" / "data" / "commune_mapping_pre2025_to_2025.csv"
    return HistoryMap.from_csv(mapping, reform_start=REFORM)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "timeseries.sqlite")
    yield opened
    opened.close()


def old_air(
    device: str, province: str, district: str, commune: str | None, at: datetime, pm25: float
) -> Point:
    """A reading as stored before the reform: old codes at three levels."""
    tags = {"device": device, "province": province, "district": district}
    if commune is not None:
        tags["commune"] = commune
    return Point("air", tags, {"pm25": pm25}, at)


def new_air(device: str, commune: str, at: datetime, pm25: float) -> Point:
    """A reading as stored after the reform: 2025 codes at two levels."""
    return Point(
        "air", {"device": device, "province": "48", "commune": commune}, {"pm25": pm25}, at
    )


def old_dossiers(province: str, district: str, commune: str, received: float) -> Point:
    """A public-service counter published per (old) unit: no device tag."""
    tags = {"province": province, "district": district, "commune": commune}
    return Point("dossiers", tags, {"received": received}, AT - 30 * MINUTE)


# Đà Nẵng before the reform (old province 48) and Quảng Nam (old 49), merged into 48 in 2025:
#   new 20194 Hải Vân     = old 20194 + 20195 + 20293 + part of 20296 (Hòa Liên)
#   new 20197 Liên Chiểu  = old 20197 + the other part of 20296
#   new 20669 Quế Phước   = old 20668 + part of 20669 + 20674 + 20692 (Quảng Nam)
#   new 20333 Hoàng Sa    = old island district 498 (no communes)
#   new 00004 Ba Đình     = old 00004 + 00013 + parts of others (Hà Nội, not Đà Nẵng)
AIR_BEFORE = [
    old_air("aq-1", "48", "490", "20194", AT - 50 * MINUTE, 99.0),  # older value of aq-1
    old_air("aq-1", "48", "490", "20194", AT - 10 * MINUTE, 12.0),
    old_air("aq-2", "48", "490", "20195", AT - 20 * MINUTE, 30.0),
    old_air("aq-3", "48", "497", "20296", AT - 30 * MINUTE, 50.0),
    old_air("aq-4", "48", "497", "20296", AT - 5 * MINUTE, 70.0),
    old_air("aq-4", "48", "497", "20296", AT + 5 * MINUTE, 700.0),  # after AT: not yet
    old_air("aq-5", "49", "509", "20692", AT - 15 * MINUTE, 20.0),
    old_air("hs-1", "48", "498", None, AT - 40 * MINUTE, 8.0),
    old_air("hn-1", "01", "001", "00013", AT - 10 * MINUTE, 90.0),
    old_air("aq-6", "48", "490", "20194", AT - DAY - MINUTE, 500.0),  # before the window
]


def test_pre_reform_readings_are_mapped_onto_2025_communes(
    store: SqliteStore, history: HistoryMap, hierarchy: Hierarchy
) -> None:
    store.write(AIR_BEFORE)
    frame = historical_unit_values(
        store, history, hierarchy, PM25, "commune", UnitRef("province", "48"), AT, DAY
    )
    assert list(frame.index) == ["20194", "20197", "20333", "20669"]  # Hà Nội's 00004: outside
    assert frame["value"].to_dict() == pytest.approx(
        {
            "20194": 40.5,  # devices' last values 12, 30, 50, 70 (20296 in full): 162 / 4
            "20197": 60.0,  # only old 20296 has data: (50 + 70) / 2
            "20333": 8.0,  # island district 498
            "20669": 20.0,  # Quảng Nam's old 20692
        }
    )
    assert frame["devices"].to_dict() == {"20194": 4, "20197": 2, "20333": 1, "20669": 1}
    assert frame["mapped"].all()
    assert frame["partial"].to_dict() == {
        "20194": True,
        "20197": True,
        "20333": False,
        "20669": False,
    }
    assert frame.loc["20194", "sources"] == "20194, 20195, 20296*"
    assert source_codes(frame.loc["20194", "sources"]) == [
        ("20194", False),
        ("20195", False),
        ("20296", True),
    ]
    assert frame.loc["20333", "sources"] == "498"
    assert frame.loc["20194", "ts"] == pd.Timestamp(AT - 5 * MINUTE)  # aq-4's last before AT
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert str(frame["devices"].dtype) == "int64"


def test_province_level_counts_each_old_unit_once(
    store: SqliteStore, history: HistoryMap, hierarchy: Hierarchy
) -> None:
    store.write(AIR_BEFORE)
    frame = historical_unit_values(store, history, hierarchy, PM25, "province", None, AT, DAY)
    assert list(frame.index) == ["01", "48"]
    # 48: aq-1 12, aq-2 30, aq-3 50, aq-4 70, aq-5 20, hs-1 8 (20296's devices once): 190 / 6
    assert frame.loc["48", "value"] == pytest.approx(190.0 / 6)
    assert frame.loc["48", "devices"] == 6
    assert not frame.loc["48", "partial"]  # all of 20296 is inside 48
    assert frame.loc["48", "sources"] == "20194, 20195, 20296, 20692, 498"
    assert frame.loc["01", "value"] == pytest.approx(90.0)
    inside = historical_unit_values(
        store, history, hierarchy, PM25, "province", UnitRef("province", "48"), AT, DAY
    )
    assert list(inside.index) == ["48"]


def test_a_commune_parent_narrows_to_its_old_province(
    store: SqliteStore, history: HistoryMap, hierarchy: Hierarchy
) -> None:
    store.write(AIR_BEFORE)
    frame = historical_unit_values(
        store, history, hierarchy, PM25, "commune", UnitRef("commune", "20197"), AT, DAY
    )
    assert frame["value"].to_dict() == {"20197": pytest.approx(60.0)}
    assert frame.loc["20197", "sources"] == "20296*"


def test_sums_split_a_divided_old_commune_equally(
    store: SqliteStore, history: HistoryMap, hierarchy: Hierarchy
) -> None:
    store.write(
        [
            old_dossiers("48", "490", "20194", 4.0),
            old_dossiers("48", "490", "20195", 6.0),
            old_dossiers("48", "497", "20296", 10.0),  # split between 20194 and 20197
            old_dossiers("48", "490", "20197", 1.0),
        ]
    )
    communes = historical_unit_values(
        store, history, hierarchy, RECEIVED, "commune", UnitRef("province", "48"), AT, DAY
    )
    assert communes["value"].to_dict() == pytest.approx({"20194": 15.0, "20197": 6.0})
    # 20194: 4 + 6 + 10 / 2; 20197: 1 + 10 / 2
    provinces = historical_unit_values(
        store, history, hierarchy, RECEIVED, "province", None, AT, DAY
    )
    assert provinces["value"].to_dict() == pytest.approx({"48": 21.0})  # 4 + 6 + 10 + 1


def test_after_the_reform_a_reused_code_is_not_mapped(
    store: SqliteStore, history: HistoryMap, hierarchy: Hierarchy
) -> None:
    """20194 was an old commune and is a new one: after the reform it means the new one."""
    store.write(
        [
            old_air("aq-1", "48", "490", "20194", REFORM - 60 * MINUTE, 12.0),  # old 20194
            old_air("aq-2", "48", "490", "20195", REFORM - 30 * MINUTE, 30.0),
            new_air("aq-9", "20194", REFORM + 60 * MINUTE, 99.0),  # new 20194 Hải Vân
        ]
    )
    after = REFORM + 2 * 60 * MINUTE
    frame = historical_unit_values(
        store, history, hierarchy, PM25, "commune", UnitRef("province", "48"), after, DAY
    )
    # The pre-reform readings of the last 24 hours are not read as 2025 codes: only aq-9.
    assert frame["value"].to_dict() == {"20194": 99.0}
    assert frame.loc["20194", "devices"] == 1
    assert (bool(frame.loc["20194", "mapped"]), bool(frame.loc["20194", "partial"])) == (
        False,
        False,
    )
    assert frame.loc["20194", "sources"] == ""
    just_before = REFORM - timedelta(milliseconds=1)
    before = historical_unit_values(
        store, history, hierarchy, PM25, "commune", UnitRef("province", "48"), just_before, DAY
    )
    # Just before the reform the same store shows old 20194 and 20195 mapped: (12 + 30) / 2.
    assert before["value"].to_dict() == {"20194": pytest.approx(21.0)}
    assert bool(before.loc["20194", "mapped"])
    assert before.loc["20194", "sources"] == "20194, 20195"
    # At the reform itself nothing stored before it is read with the 2025 codes.
    at_reform = historical_unit_values(
        store, history, hierarchy, PM25, "commune", UnitRef("province", "48"), REFORM, DAY
    )
    assert at_reform.empty


def test_without_a_map_every_moment_uses_the_codes_as_stored(
    store: SqliteStore, hierarchy: Hierarchy
) -> None:
    store.write(AIR_BEFORE)
    frame = historical_unit_values(
        store, None, hierarchy, PM25, "commune", UnitRef("province", "48"), AT, DAY
    )
    # Old 20194 and 20296 are not 2025 communes of 48 except 20194 (reused): only aq-1.
    assert frame["value"].to_dict() == {"20194": 12.0}
    assert not frame["mapped"].any()


def test_a_naive_moment_is_refused(
    store: SqliteStore, history: HistoryMap, hierarchy: Hierarchy
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        historical_unit_values(
            store, history, hierarchy, PM25, "commune", None, datetime(2025, 6, 15), DAY
        )
