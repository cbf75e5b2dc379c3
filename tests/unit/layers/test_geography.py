"""Geography on the shipped Đà Nẵng data (2 levels) and on the three-level fixture."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import shape

from core.errors import ConfigError
from core.settings import parse_settings
from layers.geography import Geography

REPO = Path(__file__).resolve().parents[3]


def test_shipped_communes_load_scoped_with_names_from_the_hierarchy(danang: Geography) -> None:
    communes = danang.boundaries("commune")
    assert len(communes) == 94
    assert communes["code"].is_unique
    first = communes.iloc[0]
    assert (first["code"], first["full_name"]) == ("20194", "Phường Hải Vân")
    assert shapely.is_valid(communes.geometry.to_numpy()).all()
    assert danang.lowest_level == "commune"
    assert danang.levels_with_boundaries == ["province", "commune"]
    assert danang.boundaries("commune") is communes  # read once


def test_the_scope_also_cuts_the_level_above(danang: Geography) -> None:
    assert list(danang.boundaries("province")["code"]) == ["48"]


@pytest.mark.parametrize(
    ("lon", "lat", "code"),
    [
        (108.2208, 16.0678, "20242"),  # central Hải Châu
        (108.2075, 16.0186, "20260"),  # Cẩm Lệ bridge gauge
        (108.3270, 15.8770, "20410"),  # Hội An
        (109.5, 16.0, None),  # the open sea
        (105.85, 21.03, None),  # Hà Nội: outside the deployment's scope
    ],
)
def test_point_to_commune(danang: Geography, lon: float, lat: float, code: str | None) -> None:
    assert danang.locator().locate(lon, lat) == code


def test_locate_many_matches_locate(danang: Geography) -> None:
    lons, lats = [108.2208, 109.5, 108.3270], [16.0678, 16.0, 15.8770]
    assert danang.locator().locate_many(lons, lats) == ["20242", None, "20410"]
    assert danang.locator() is danang.locator()


def test_map_geojson_winds_rings_for_d3_and_stays_small(danang: Geography) -> None:
    collection = danang.map_geojson("commune")
    assert danang.map_geojson("commune") is collection  # built once
    assert len(collection["features"]) == 94
    feature = collection["features"][0]
    assert feature["id"] == feature["properties"]["code"] == "20194"
    assert feature["properties"]["full_name"] == "Phường Hải Vân"
    for item in collection["features"]:
        assert item["geometry"]["type"] == "MultiPolygon"
        for polygon in item["geometry"]["coordinates"]:
            exterior = shapely.LinearRing(polygon[0])
            assert not exterior.is_ccw, f"{item['id']}: exterior ring must be clockwise"
            for hole in polygon[1:]:
                assert shapely.LinearRing(hole).is_ccw
    text = json.dumps(collection, ensure_ascii=False, separators=(",", ":"))
    assert len(text.encode()) < 600_000
    # the rounded geometry still covers the original commune
    area = shape(feature["geometry"]).area
    original = danang.boundaries("commune").geometry.iloc[0].area
    assert abs(area - original) / original < 0.001


def test_scope_of_a_single_commune() -> None:
    raw = {"layers": {"scope": "20194"}}
    geography = Geography.from_settings(parse_settings(raw, environ={}, base_dir=REPO))
    assert list(geography.boundaries("commune")["code"]) == ["20194"]
    assert list(geography.boundaries("province")["code"]) == ["48"]
    assert geography.locator().locate(108.2208, 16.0678) is None  # Hải Châu: out of scope


def test_three_level_geography(three_level: Geography) -> None:
    assert three_level.hierarchy.levels == ("province", "district", "commune")
    assert three_level.lowest_level == "commune"
    assert three_level.locator().locate(108.125, 16.005) == "20236"
    assert three_level.hierarchy.level_tags("20236") == {
        "province": "48",
        "district": "492",
        "commune": "20236",
    }
    # a point on the border of 20194 and 20197 goes to the lower code, always
    assert three_level.locator().locate(108.11, 16.005) == "20194"
    districts = three_level.map_geojson("district")
    assert [f["id"] for f in districts["features"]] == ["490", "492"]
    assert districts["features"][1]["properties"]["full_name"] == "Quận Hải Châu"


def test_three_level_scoped_to_a_district(make_three_level: Callable[..., Geography]) -> None:
    geography = make_three_level(scope="490", map_level="district")
    assert list(geography.boundaries("district")["code"]) == ["490"]
    assert list(geography.boundaries("commune")["code"]) == ["20194", "20197"]
    assert geography.locator().locate(108.115, 16.005) == "20197"
    assert geography.locator().locate(108.125, 16.005) is None  # 20236 is in district 492


def test_lowest_level_is_the_last_level_with_a_file(
    make_three_level: Callable[..., Geography],
) -> None:
    geography = make_three_level(
        boundaries={"district": "tests/data/three_level/districts.geojson"}, map_level="district"
    )
    assert geography.lowest_level == "district"
    assert geography.locator().locate(108.125, 16.005) == "492"
    with pytest.raises(KeyError, match="commune"):
        geography.boundaries("commune")


def test_bad_layer_settings_are_config_errors(
    make_three_level: Callable[..., Geography],
) -> None:
    with pytest.raises(
        ConfigError, match=r"layers\.map_level must be a level with a boundary file"
    ):
        make_three_level(
            boundaries={"district": "tests/data/three_level/districts.geojson"},
            map_level="commune",
        )
    with pytest.raises(ConfigError, match=r"layers\.scope must be the code of a unit.*'20200'"):
        make_three_level(scope="20200")


def test_bad_boundary_file_fails_on_first_use_naming_file_and_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.geojson"
    geometry = {"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]]]}
    feature = {"type": "Feature", "properties": {"code": "99999"}, "geometry": geometry}
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    raw = {"layers": {"boundaries": {"commune": str(bad)}, "scope": None}}
    geography = Geography.from_settings(parse_settings(raw, environ={}, base_dir=REPO))
    with pytest.raises(ConfigError) as caught:
        geography.locator()
    assert str(bad) in str(caught.value)
    assert "'99999'" in str(caught.value)


def test_views_are_simplified_for_the_size_they_are_drawn_at() -> None:
    raw = {
        "layers": {
            "scope": None,
            "map_level": "commune",
            "boundaries": {
                "province": "layers/data/vn_provinces_2025.geojson",
                "commune": "layers/data/vn_communes_2025.geojson",
            },
        }
    }
    country = Geography.from_settings(parse_settings(raw, environ={}, base_dir=REPO))
    national = country.map_geojson("commune")
    assert len(national["features"]) == 3321
    danang = country.map_geojson("commune", "48")
    assert len(danang["features"]) == 94
    assert country.map_geojson("commune", "48") is danang  # built once per view

    def vertices(collection: dict[str, Any], codes: set[str]) -> int:
        return sum(
            shapely.get_num_coordinates(shape(f["geometry"]))
            for f in collection["features"]
            if f["id"] in codes
        )

    codes = {f["id"] for f in danang["features"]}
    # the country's communes are drawn small: coarser than one province's
    assert vertices(national, codes) < 0.8 * vertices(danang, codes)
    # and neighbours still share their borders exactly
    geometries = [shape(f["geometry"]) for f in national["features"]]
    assert shapely.coverage_is_valid(shapely.make_valid(geometries))
    with pytest.raises(KeyError):
        country.map_geojson("commune", "20194")  # a commune has no communes
    with pytest.raises(KeyError):
        country.map_geojson("province", "48")  # not above its own level
