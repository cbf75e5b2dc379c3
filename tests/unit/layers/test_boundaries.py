"""load_boundaries: codes checked against the hierarchy, names from it, scope, repairs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import shapely

from core.errors import ConfigError
from layers.boundaries import load_boundaries
from layers.levels import Hierarchy

REPO = Path(__file__).resolve().parents[3]
COMMUNES = REPO / "tests" / "data" / "three_level" / "communes.geojson"


def _square(west: float, south: float, size: float = 0.01) -> dict[str, Any]:
    east, north = west + size, south + size
    ring = [[west, south], [west, north], [east, north], [east, south], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _feature(code: Any, geometry: dict[str, Any] | None, **properties: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"code": code, **properties},
        "geometry": geometry,
    }


def _write(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_three_level_communes_sorted_by_code_with_names_from_the_hierarchy(
    three: Hierarchy, tmp_path: Path
) -> None:
    # file order reversed and a stale name in the file: the hierarchy wins
    path = _write(
        tmp_path / "communes.geojson",
        [
            _feature("20242", _square(108.13, 16.0), full_name="Phuong cu"),
            _feature("20194", _square(108.10, 16.0)),
        ],
    )
    frame = load_boundaries(path, "commune", three)
    assert list(frame.columns) == ["code", "name", "full_name", "geometry"]
    assert list(frame["code"]) == ["20194", "20242"]
    assert list(frame["full_name"]) == ["Phường Hòa Hiệp Bắc", "Phường Phước Ninh"]
    assert frame.crs.to_epsg() == 4326
    assert frame.geometry.iloc[0].contains(shapely.Point(108.105, 16.005))


@pytest.mark.parametrize(
    ("scope", "codes"),
    [
        (None, ["20194", "20197", "20236", "20242"]),
        ("48", ["20194", "20197", "20236", "20242"]),
        ("490", ["20194", "20197"]),
        ("492", ["20236", "20242"]),
        ("20236", ["20236"]),
    ],
)
def test_scope_keeps_the_unit_and_its_descendants(
    three: Hierarchy, scope: str | None, codes: list[str]
) -> None:
    assert list(load_boundaries(COMMUNES, "commune", three, scope=scope)["code"]) == codes


def test_unknown_scope_is_a_config_error(three: Hierarchy) -> None:
    with pytest.raises(ConfigError, match=r"layers\.scope must be the code of a unit"):
        load_boundaries(COMMUNES, "commune", three, scope="77")


def test_shipped_provinces_scoped_to_danang(national: Hierarchy) -> None:
    path = REPO / "layers" / "data" / "vn_provinces_2025.geojson"
    assert len(load_boundaries(path, "province", national)) == 34
    scoped = load_boundaries(path, "province", national, scope="48")
    assert list(scoped["full_name"]) == ["Thành phố Đà Nẵng"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("this is not json", "must be a readable GeoJSON file"),
        ('{"type": "FeatureCollection", "features": []}', "must hold at least one feature"),
        (
            json.dumps(
                {"type": "FeatureCollection", "features": [_feature(None, _square(0, 0))]}
            ).replace('"code": null', '"id": 1'),
            "must have a `code` property",
        ),
    ],
)
def test_unreadable_file_names_the_file(
    three: Hierarchy, tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "b.geojson"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_boundaries(path, "commune", three)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)
    assert "layers.boundaries.commune" in str(caught.value)


def test_missing_file_names_the_file(three: Hierarchy, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must name an existing GeoJSON file") as caught:
        load_boundaries(tmp_path / "none.geojson", "commune", three)
    assert "none.geojson" in str(caught.value)


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        (
            [_feature("20194", _square(0, 0)), _feature("99999", _square(1, 0))],
            "feature 1 code must be the code of a commune in hierarchy.units_file: '99999'",
        ),
        (
            [_feature("490", _square(0, 0))],  # a district in the communes file
            "feature 0 code must be the code of a commune in hierarchy.units_file: '490'",
        ),
        (
            [_feature("20194", _square(0, 0)), _feature("20194", _square(1, 0))],
            "feature 1 code must be unique (also feature 0): '20194'",
        ),
        (
            [_feature("20194", {"type": "Point", "coordinates": [108.1, 16.0]})],
            "feature 0 (20194) geometry must be a (Multi)Polygon: 'Point'",
        ),
        (
            [_feature("20194", None)],
            "feature 0 (20194) geometry must be a (Multi)Polygon: None",
        ),
    ],
)
def test_bad_feature_names_file_index_and_value(
    three: Hierarchy, tmp_path: Path, features: list[dict[str, Any]], expected: str
) -> None:
    path = _write(tmp_path / "bad.geojson", features)
    with pytest.raises(ConfigError) as caught:
        load_boundaries(path, "commune", three)
    assert f"layers.boundaries.commune {path} {expected}" == str(caught.value)


def test_invalid_geometry_is_repaired_polygonal_and_logged(
    three: Hierarchy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    path = _write(
        tmp_path / "bowtie.geojson",
        [_feature("20197", bowtie), _feature("20194", _square(2, 0))],
    )
    with caplog.at_level(logging.WARNING, logger="cityops.layers"):
        frame = load_boundaries(path, "commune", three)
    repaired = frame.set_index("code").geometry["20197"]
    assert repaired.is_valid
    assert repaired.geom_type == "MultiPolygon"
    assert repaired.area == pytest.approx(0.5)
    assert [record.getMessage() for record in caplog.records] == [
        f"{path}: repaired 1 invalid geometries: 20197"
    ]
