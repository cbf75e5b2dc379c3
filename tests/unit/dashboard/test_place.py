"""Drill-down places on the real 2025 hierarchy (2 levels) and the 3-level fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Label, LevelSettings
from dashboard.place import Crumb, Places, View
from layers.levels import Hierarchy

REPO = Path(__file__).resolve().parents[3]
PROVINCE = LevelSettings(name="province", code_length=2, label=Label(vi="Tỉnh", en="Province"))
DISTRICT = LevelSettings(name="district", code_length=3, label=Label(vi="Huyện", en="District"))
COMMUNE = LevelSettings(name="commune", code_length=5, label=Label(vi="Xã", en="Commune"))


@pytest.fixture(scope="module")
def national() -> Hierarchy:
    return Hierarchy.from_csv([PROVINCE, COMMUNE], REPO / "layers/data/admin_codes_2025.csv")


@pytest.fixture(scope="module")
def three() -> Hierarchy:
    return Hierarchy.from_csv(
        [PROVINCE, DISTRICT, COMMUNE], REPO / "tests/data/three_level/units.csv"
    )


def test_country_to_province_to_commune(national: Hierarchy) -> None:
    places = Places(national, ["province", "commune"], scope=None)
    assert places.home() is None
    assert places.view_of(None) == View(None, "province")
    assert places.view_of("48") == View("48", "commune")
    assert places.view_of("20194") is None  # the lowest level has a page, not a map
    assert places.can_open("48")
    assert not places.can_open("20194")
    assert places.breadcrumb("48") == [Crumb(None, "Việt Nam"), Crumb("48", "Thành phố Đà Nẵng")]
    assert [c.label for c in places.breadcrumb("48", "en")] == ["Viet Nam", "Da Nang"]


def test_a_scoped_deployment_never_drills_up(national: Hierarchy) -> None:
    places = Places(national, ["province", "commune"], scope="48")
    assert places.home() == "48"
    assert not places.within_reach(None)
    assert not places.within_reach("01")  # Hà Nội: outside the city's screen
    assert places.place_or_home("01") == "48"
    assert places.place_or_home("20194") == "48"  # a commune link opens its parent's map
    assert places.place_or_home("99999") == "48"
    assert places.breadcrumb("48") == [Crumb("48", "Thành phố Đà Nẵng")]


def test_three_levels_drill_through_districts(three: Hierarchy) -> None:
    places = Places(three, ["province", "district", "commune"], scope=None)
    assert places.view_of(None) == View(None, "province")
    assert places.view_of("48") == View("48", "district")
    assert places.view_of("490") == View("490", "commune")
    assert places.place_or_home("20194") == "490"
    assert [c.code for c in places.breadcrumb("490")] == [None, "48", "490"]


def test_a_level_without_boundaries_is_skipped(three: Hierarchy) -> None:
    # Districts known in the code list but no district boundary file: province → communes.
    places = Places(three, ["province", "commune"], scope=None)
    assert places.view_of("48") == View("48", "commune")
    # a link to a district still works: its communes, without a district map to click
    assert places.view_of("490") == View("490", "commune")
