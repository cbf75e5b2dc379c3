"""layers import: GIS office files in, the project's prepared layer out."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from layers.boundaries import load_boundaries
from layers.importer import FieldNames, LayerFileError, import_boundaries, normalise_code
from tests.unit.layers.layer_fixtures import LEVELS, clean_communes, hierarchy, square, write

OFFICE = FieldNames(code="MA_XA", name="TEN_XA", parent="MA_TINH")


def office_columns() -> dict[str, list[object]]:
    """How a GIS office hands them over: numeric codes without leading zeros, NFD names."""
    columns = clean_communes()
    return {
        "MA_XA": [1, 2, 3, 4],
        "TEN_XA": [unicodedata.normalize("NFD", str(name)) + "  " for name in columns["name"]],
        "MA_TINH": [1, 1, 1, 2],
        "geometry": columns["geometry"],
    }


def run(source: Path, out: Path, fields: FieldNames = OFFICE, **kwargs: object) -> object:
    return import_boundaries(source, out, level="commune", levels=LEVELS, fields=fields, **kwargs)


@pytest.mark.parametrize("suffix", [".shp", ".gpkg", ".geojson"])
def test_round_trip_pads_codes_nfc_names_and_loads_as_a_boundaries_file(
    tmp_path: Path, suffix: str
) -> None:
    source = write(tmp_path / f"office{suffix}", office_columns())
    out = tmp_path / "prepared" / "communes.geojson"
    report = run(source, out)
    assert report.features == 4  # type: ignore[attr-defined]
    assert report.padded_codes == 4  # type: ignore[attr-defined]
    written = json.loads(out.read_text(encoding="utf-8"))
    properties = [feature["properties"] for feature in written["features"]]
    assert properties[0] == {"code": "00001", "name": "Hoà Khánh", "parent_code": "01"}
    assert unicodedata.is_normalized("NFC", properties[0]["name"])
    assert {feature["geometry"]["type"] for feature in written["features"]} == {"MultiPolygon"}
    loaded = load_boundaries(out, "commune", hierarchy(tmp_path))
    assert list(loaded["code"]) == ["00001", "00002", "00003", "00004"]
    assert loaded.geometry.iloc[0].equals_exact(shapely.MultiPolygon([square(0, 0)]), 1e-7)


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:3405"])  # web mercator, VN-2000 / UTM 48N
def test_projected_squares_come_out_in_lon_lat(tmp_path: Path, crs: str) -> None:
    source = write(tmp_path / "projected.gpkg", clean_communes(), crs=crs)
    assert gpd.read_file(source).total_bounds[0] > 1000  # really metres in the file
    report = run(source, tmp_path / "out.geojson", FieldNames())
    assert crs.split(":")[1] in report.source_crs  # type: ignore[attr-defined]
    result = gpd.read_file(tmp_path / "out.geojson")
    assert result.crs.to_epsg() == 4326
    # VN-2000 has its own datum (a 7-parameter shift to WGS 84): a few metres at most
    np.testing.assert_allclose(result.total_bounds, [108.0, 16.0, 108.11, 16.11], atol=1e-4)


def shapefile_columns() -> dict[str, list[object]]:
    """Shapefile field names have at most 10 characters."""
    columns = clean_communes()
    columns["PARENT"] = columns.pop("parent_code")
    return columns


SHAPEFILE = FieldNames(parent="PARENT")


def test_a_file_without_crs_in_lon_lat_is_taken_as_4326(tmp_path: Path) -> None:
    source = write(tmp_path / "nocrs.shp", shapefile_columns())
    source.with_suffix(".prj").unlink()
    report = run(source, tmp_path / "out.geojson", SHAPEFILE)
    assert "assumed EPSG:4326" in report.source_crs  # type: ignore[attr-defined]


def test_a_file_without_crs_in_metres_is_refused_naming_the_file(tmp_path: Path) -> None:
    source = write(tmp_path / "metres.shp", shapefile_columns(), crs="EPSG:3405")
    source.with_suffix(".prj").unlink()
    with pytest.raises(LayerFileError, match=r"metres\.shp: has no CRS.*--source-crs"):
        run(source, tmp_path / "out.geojson", SHAPEFILE)
    report = run(source, tmp_path / "out.geojson", SHAPEFILE, source_crs="EPSG:3405")
    assert report.features == 4  # type: ignore[attr-defined]


def test_a_missing_field_names_the_option_and_the_fields_there_are(tmp_path: Path) -> None:
    source = write(tmp_path / "office.gpkg", office_columns())
    with pytest.raises(LayerFileError, match=r"no field 'ma_huyen' \(--parent-field\).*MA_XA"):
        run(source, tmp_path / "out.geojson", FieldNames("MA_XA", "TEN_XA", "ma_huyen"))
    assert not (tmp_path / "out.geojson").exists()


def test_field_names_match_case_insensitively(tmp_path: Path) -> None:
    source = write(tmp_path / "office.shp", office_columns())
    report = run(source, tmp_path / "out.geojson", FieldNames("ma_xa", "ten_xa", "ma_tinh"))
    assert report.fields.code == "MA_XA"  # type: ignore[attr-defined]


def test_a_bow_tie_is_repaired_and_reported(tmp_path: Path) -> None:
    columns = clean_communes()
    x, y = 108.0, 16.0
    bow_tie = shapely.Polygon([(x, y), (x + 0.01, y + 0.01), (x + 0.01, y), (x, y + 0.01)])
    assert not bow_tie.is_valid
    columns["geometry"][0] = bow_tie
    source = write(tmp_path / "bowtie.geojson", columns)
    report = run(source, tmp_path / "out.geojson", FieldNames())
    assert report.repaired == ("00001",)  # type: ignore[attr-defined]
    repaired = gpd.read_file(tmp_path / "out.geojson").geometry.iloc[0]
    assert repaired.is_valid
    assert repaired.geom_type == "MultiPolygon"
    assert len(repaired.geoms) == 2
    assert repaired.area == pytest.approx(0.01 * 0.01 / 2)


def test_several_layers_need_a_choice(tmp_path: Path) -> None:
    source = write(tmp_path / "two.gpkg", clean_communes())
    gpd.GeoDataFrame(clean_communes(), crs=4326).to_file(source, layer="other")
    with pytest.raises(LayerFileError, match="several layers"):
        run(source, tmp_path / "out.geojson", FieldNames())
    report = run(source, tmp_path / "out.geojson", FieldNames(), layer="other")
    assert report.features == 4  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "content"), [("none.geojson", None), ("text.geojson", "not geodata")]
)
def test_unreadable_files_raise_a_clear_error(
    tmp_path: Path, name: str, content: str | None
) -> None:
    source = tmp_path / name
    if content is not None:
        source.write_text(content, encoding="utf-8")
    with pytest.raises(LayerFileError, match=name):
        run(source, tmp_path / "out.geojson", FieldNames())


@pytest.mark.parametrize(
    ("value", "expected"),
    [(4, "00004"), (20194.0, "20194"), (" 20194 ", "20194"), ("4", "00004"), ("", None),
     (float("nan"), None), ("ABC", "ABC"), ("1234567", "1234567")],
)  # fmt: skip
def test_normalise_code(value: object, expected: str | None) -> None:
    assert normalise_code(value, 5) == expected
