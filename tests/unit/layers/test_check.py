"""layers check: each deliberately broken layer gives its finding, a clean one none."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely

from layers.check import CheckReport, check_layer
from layers.importer import LayerFileError
from tests.unit.layers.layer_fixtures import (
    SIDE,
    X,
    Y,
    clean_communes,
    hierarchy,
    provinces,
    square,
    write,
)


def check(tmp_path: Path, columns: dict[str, list[object]], **kwargs: object) -> CheckReport:
    path = write(tmp_path / "communes.geojson", columns)
    return check_layer(path, "commune", hierarchy(tmp_path), **kwargs)  # type: ignore[arg-type]


def test_a_clean_layer_has_no_findings(tmp_path: Path) -> None:
    report = check(tmp_path, clean_communes(), parent_layer=provinces(tmp_path / "p.geojson"))
    assert report.findings == ()
    assert report.exit_code == 0


def test_duplicate_code_and_code_not_in_hierarchy_are_errors(tmp_path: Path) -> None:
    columns = clean_communes()
    columns["code"] = ["00001", "00001", "00003", "99999"]
    report = check(tmp_path, columns)
    assert [f.codes for f in report.of("duplicate_code")] == [("00001",)]
    assert [f.codes for f in report.of("not_in_hierarchy")] == [("99999",)]
    assert [f.codes for f in report.of("missing")] == [("00002",), ("00004",)]
    assert report.exit_code == 1


def test_a_parent_code_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    columns = clean_communes()
    columns["parent_code"] = ["01", "77", "02", "02"]
    report = check(tmp_path, columns)
    assert [(f.codes, f.detail) for f in report.of("bad_parent")] == [(("00002",), "77")]
    assert [f.codes for f in report.of("parent_mismatch")] == [("00003",)]
    assert report.exit_code == 1


def test_a_bow_tie_is_reported_as_repaired_and_stays_usable(tmp_path: Path) -> None:
    columns = clean_communes()
    columns["geometry"][1] = shapely.Polygon(
        [(X + SIDE, Y), (X + 2 * SIDE, Y + SIDE), (X + 2 * SIDE, Y), (X + SIDE, Y + SIDE)]
    )
    report = check(tmp_path, columns)
    assert [f.codes for f in report.of("repaired")] == [("00002",)]
    assert report.errors == 0
    assert report.exit_code == 0


def test_a_sliver_part_below_the_threshold(tmp_path: Path) -> None:
    columns = clean_communes()
    tiny = shapely.box(X + 5 * SIDE, Y, X + 5 * SIDE + 0.00005, Y + 0.00005)  # about 30 m²
    columns["geometry"][3] = shapely.MultiPolygon([square(10, 10), tiny])
    report = check(tmp_path, columns)
    (sliver,) = report.of("sliver")
    assert sliver.codes == ("00004",)
    assert sliver.area_m2 == pytest.approx(30, rel=0.1)
    assert check(tmp_path, columns, min_area_m2=10).of("sliver") == []


def test_a_gap_and_an_overlap_between_neighbours_with_their_areas(tmp_path: Path) -> None:
    columns = clean_communes()
    # 00002 pulled 0.001° left over 00001 (about 0.12 km² of overlap); a 0.002° hole in
    # 00001 that no neighbour fills (about 0.05 km² of gap).
    columns["geometry"][1] = shapely.box(X + SIDE - 0.001, Y, X + 2 * SIDE, Y + SIDE)
    columns["geometry"][0] = shapely.Polygon(
        square(0, 0).exterior.coords,
        [shapely.box(X + 0.004, Y + 0.004, X + 0.006, Y + 0.006).exterior.coords],
    )
    report = check(tmp_path, columns)
    (overlap,) = report.of("overlap")
    assert overlap.codes == ("00001", "00002")
    assert overlap.area_m2 == pytest.approx(0.001 * 0.01 * 107_000 * 111_000, rel=0.05)
    (gap,) = report.of("gap")
    assert gap.codes == ("00001",)
    assert gap.area_m2 == pytest.approx(0.002**2 * 107_000 * 111_000, rel=0.05)
    assert gap.where is not None
    assert gap.where[0] == pytest.approx(X + 0.005, abs=0.001)
    assert set(report.of("unmatched_edges")[0].codes) == {"00001", "00002", "00003"}
    assert report.exit_code == 0
    assert check(tmp_path, columns, min_area_m2=1e6).of("gap") == []


def test_a_child_outside_its_parent(tmp_path: Path) -> None:
    columns = clean_communes()
    columns["geometry"][2] = square(0, 1.5)  # half of it above province 01
    report = check(tmp_path, columns, parent_layer=provinces(tmp_path / "p.geojson"))
    (outside,) = report.of("outside_parent")
    assert outside.codes == ("00003",)
    assert outside.detail == "01"
    assert outside.area_m2 == pytest.approx(0.005 * 0.01 * 107_000 * 111_000, rel=0.05)
    assert report.exit_code == 0


def test_scope_limits_missing_and_notes_units_outside(tmp_path: Path) -> None:
    columns = {key: values[:2] for key, values in clean_communes().items()}
    columns["code"] = ["00001", "00004"]
    columns["parent_code"] = ["01", "02"]
    report = check(tmp_path, columns, scope="01")
    assert [f.codes for f in report.of("missing")] == [("00002",), ("00003",)]
    assert [f.codes for f in report.of("outside_scope")] == [("00004",)]


def test_a_layer_without_code_is_a_file_error(tmp_path: Path) -> None:
    columns = clean_communes()
    columns["ma_xa"] = columns.pop("code")
    with pytest.raises(LayerFileError, match=r"no field 'code'"):
        check(tmp_path, columns)
