"""`cityops layers import` and `layers check` as an operator runs them: real process, real
files, exit codes 0 (usable), 1 (errors), 2 (the file cannot be used)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.layers.layer_fixtures import UNITS_CSV, clean_communes, write

REPO = Path(__file__).resolve().parents[2]
CITYOPS = Path(sys.executable).parent / "cityops"
NATIONAL = Path("/work/shared/geodata/vn_communes_2025.geojson")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CITYOPS), *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The shipped config with the four-commune test hierarchy and the office's field names."""
    (tmp_path / "units.csv").write_text(UNITS_CSV, encoding="utf-8")
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    text = text.replace("units_file: layers/data/admin_codes_2025.csv", "units_file: units.csv")
    text = text.replace('scope: "48"', "scope: null")
    text = text.replace(
        "import_fields: {code: code, name: name, parent: parent_code}",
        "import_fields: {code: MA_XA, name: TEN_XA, parent: MA_TINH}",
    )
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def office_file(path: Path) -> Path:
    columns = clean_communes()
    office = {
        "MA_XA": [int(str(code)) for code in columns["code"]],
        "TEN_XA": columns["name"],
        "MA_TINH": [1, 1, 1, 2],
        "geometry": columns["geometry"],
    }
    return write(path, office, crs="EPSG:3857")


def test_import_with_config_field_names_then_check_is_usable(tmp_path: Path, config: Path) -> None:
    source = office_file(tmp_path / "office.gpkg")
    out = tmp_path / "communes.geojson"
    imported = run(
        "layers", "import", str(source), "--level", "commune", "--out", str(out), "-c", str(config)
    )
    assert imported.returncode == 0, imported.stderr
    assert "4 đơn vị / units" in imported.stdout
    assert "EPSG:3857" in imported.stdout
    checked = run("layers", "check", str(out), "--level", "commune", "-c", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip().endswith("USABLE (exit code 0)")


def test_check_with_errors_exits_1_and_says_so(tmp_path: Path, config: Path) -> None:
    columns = clean_communes()
    columns["code"] = ["00001", "00001", "00003", "00004"]
    path = write(tmp_path / "dup.geojson", columns)
    result = run("layers", "check", str(path), "--level", "commune", "-c", str(config))
    assert result.returncode == 1
    assert "Mã trùng lặp / duplicate codes: 1" in result.stdout
    assert "Thiếu ranh giới" in result.stdout
    assert "00002 Xã Bình" in result.stdout
    assert "NOT USABLE" in result.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["layers", "check", "nowhere.geojson", "--level", "commune"], "no such file"),
        (["layers", "check", "README.md", "--level", "commune"], "not a readable geodata file"),
        (["layers", "check", "{geojson}", "--level", "district"], "--level 'district'"),
        (
            ["layers", "import", "{geojson}", "--level", "commune", "--out", "{out}",
             "--code-field", "MA_XA"],
            "has no field 'MA_XA' (--code-field)",
        ),
    ],
)  # fmt: skip
def test_broken_input_is_one_clear_line_and_exit_2(
    tmp_path: Path, config: Path, args: list[str], message: str
) -> None:
    geojson = write(tmp_path / "plain.geojson", clean_communes())
    filled = [arg.format(geojson=geojson, out=tmp_path / "out.geojson") for arg in args]
    result = run(*filled, "-c", str(config))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_the_shipped_da_nang_layer_is_usable() -> None:
    result = run(
        "layers", "check", "layers/data/danang_2025_communes.geojson", "--level", "commune"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 lỗi / errors" in result.stdout
    assert "Thiếu ranh giới" not in result.stdout  # all 94 communes of scope 48


@pytest.mark.skipif(not NATIONAL.exists(), reason="shared national layer not present")
def test_the_national_layer_has_its_two_known_gaps_and_is_fast() -> None:
    started = time.monotonic()
    result = run("layers", "check", str(NATIONAL), "--level", "commune", "--scope", "all")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gaps between neighbours: 2" in result.stdout
    assert "0,0195 km²  tại / at 106.79297 E 20.69243 N" in result.stdout
    assert "419 m²  tại / at 108.04663 E 15.76484 N" in result.stdout
    assert "overlap" not in result.stdout
    assert elapsed < 20
