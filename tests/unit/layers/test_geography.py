"""Boundaries, point → unit, map geometry and the device registry on the shipped data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely
from shapely.geometry import shape

from core.errors import ConfigError
from core.settings import load_settings, parse_settings
from layers.geography import Geography
from layers.registry import Device, place_device, read_registry, write_registry

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def danang() -> Geography:
    return Geography.from_settings(load_settings(REPO / "config.yaml", environ={}))


@pytest.fixture(scope="module")
def three_level() -> Geography:
    raw = {
        "hierarchy": {
            "levels": [
                {"name": "province", "code_length": 2, "label": {"vi": "Tỉnh", "en": "P"}},
                {"name": "district", "code_length": 3, "label": {"vi": "Huyện", "en": "D"}},
                {"name": "commune", "code_length": 5, "label": {"vi": "Xã", "en": "C"}},
            ],
            "units_file": "tests/data/three_level/units.csv",
        },
        "layers": {
            "boundaries": {"commune": "tests/data/three_level/communes.geojson"},
            "scope": None,
            "map_level": "commune",
        },
    }
    return Geography.from_settings(parse_settings(raw, environ={}, base_dir=REPO))


def test_shipped_communes_load_scoped_with_names_from_the_hierarchy(danang: Geography) -> None:
    communes = danang.boundaries("commune")
    assert len(communes) == 94
    assert communes["code"].is_unique
    first = communes.iloc[0]
    assert (first["code"], first["full_name"]) == ("20194", "Phường Hải Vân")
    assert shapely.is_valid(communes.geometry.to_numpy()).all()
    assert danang.lowest_level == "commune"


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


def test_map_geojson_winds_rings_for_d3_and_stays_small(danang: Geography) -> None:
    collection = danang.map_geojson("commune")
    assert len(collection["features"]) == 94
    feature = collection["features"][0]
    assert feature["id"] == feature["properties"]["code"] == "20194"
    assert feature["properties"]["full_name"] == "Phường Hải Vân"
    for item in collection["features"]:
        for polygon in item["geometry"]["coordinates"]:
            exterior = shapely.LinearRing(polygon[0])
            assert not exterior.is_ccw, f"{item['id']}: exterior ring must be clockwise"
            for hole in polygon[1:]:
                assert shapely.LinearRing(hole).is_ccw
    text = json.dumps(collection, separators=(",", ":"))
    assert len(text.encode()) < 700_000
    # the rounded geometry still covers the original commune
    area = shape(feature["geometry"]).area
    original = danang.boundaries("commune").geometry.iloc[0].area
    assert abs(area - original) / original < 0.001


def test_three_level_geography(three_level: Geography) -> None:
    assert three_level.locator().locate(108.125, 16.005) == "20236"
    assert three_level.hierarchy.level_tags("20236") == {
        "province": "48",
        "district": "492",
        "commune": "20236",
    }
    device = place_device("aq-1", "air", "A", 108.105, 16.005, three_level)
    assert device.tags == {"province": "48", "district": "490", "commune": "20194"}
    # a point on the border of 20194 and 20197 goes to the lower code, always
    assert three_level.locator().locate(108.11, 16.005) == "20194"


def test_boundary_code_not_in_hierarchy_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.geojson"
    geometry = {"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]]]}
    bad.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {"code": "99999"}, "geometry": geometry}
                ],
            }
        )
    )
    raw = {"layers": {"boundaries": {"commune": str(bad)}, "scope": None}}
    geography = Geography.from_settings(parse_settings(raw, environ={}, base_dir=REPO))
    with pytest.raises(ConfigError) as caught:
        geography.boundaries("commune")
    assert str(bad) in str(caught.value)
    assert "'99999'" in str(caught.value)
    raw = {"layers": {"boundaries": {"commune": str(tmp_path / "none.geojson")}}}
    geography = Geography.from_settings(parse_settings(raw, environ={}, base_dir=REPO))
    with pytest.raises(ConfigError, match="must name an existing GeoJSON file"):
        geography.boundaries("commune")


def test_registry_round_trip_and_errors(danang: Geography, tmp_path: Path) -> None:
    path = tmp_path / "devices" / "registry.csv"
    devices = [
        place_device("aq-0001", "air", "Trạm Hải Châu", 108.2208, 16.0678, danang),
        place_device("wl-sea", "water", "Phao biển", 109.5, 16.0, danang),
    ]
    write_registry(path, devices)
    loaded = read_registry(path, danang)
    assert loaded["aq-0001"] == Device(
        "aq-0001", "air", "Trạm Hải Châu", 108.2208, 16.0678, "20242",
        {"province": "48", "commune": "20242"},
    )  # fmt: skip
    assert loaded["wl-sea"].unit_code is None
    assert loaded["wl-sea"].tags == {}
    path.write_text(
        "device_id,kind,name,lon,lat\naq-1,air,A,108.2,16.0\naq-1,air,B,108.2,16.0\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r":3 device_id must be unique \(also line 2\)"):
        read_registry(path, danang)
    path.write_text("device_id,kind,name,lon,lat\naq-1,air,A,east,16.0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r":2 lon must be a number: 'east'"):
        read_registry(path, danang)
