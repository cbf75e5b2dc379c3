"""The hierarchy is data: 2 levels (2025) and 3 levels (pre-2025) from configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import Label, LevelSettings
from layers.levels import Hierarchy, fold

REPO = Path(__file__).resolve().parents[3]
TWO = [
    LevelSettings(name="province", code_length=2, label=Label(vi="Tỉnh", en="Province")),
    LevelSettings(name="commune", code_length=5, label=Label(vi="Xã", en="Commune")),
]
THREE = [
    TWO[0],
    LevelSettings(name="district", code_length=3, label=Label(vi="Huyện", en="District")),
    TWO[1],
]
HEADER = "level,code,parent_code,name,full_name,name_en,unit_type\n"


@pytest.fixture(scope="module")
def national() -> Hierarchy:
    return Hierarchy.from_csv(TWO, REPO / "layers/data/admin_codes_2025.csv")


@pytest.fixture(scope="module")
def three() -> Hierarchy:
    return Hierarchy.from_csv(THREE, REPO / "tests/data/three_level/units.csv")


def test_2025_structure_has_34_provinces_and_3321_communes(national: Hierarchy) -> None:
    assert national.levels == ("province", "commune")
    assert len(national.units_at("province")) == 34
    assert len(national.units_at("commune")) == 3321
    assert len(national.units_at("commune", parent="48")) == 94


def test_navigation_and_names(national: Hierarchy) -> None:
    assert national.level_tags("20194") == {"province": "48", "commune": "20194"}
    assert national.full_name("20194") == "Phường Hải Vân, Thành phố Đà Nẵng"
    assert national.full_name("20194", "en") == "Hai Van Ward, Da Nang City"
    assert [u.code for u in national.ancestors("20194")] == ["48", "20194"]
    parent = national.parent("20194")
    assert parent is not None
    assert parent.full_name == "Thành phố Đà Nẵng"
    assert national.parent("48") is None
    assert national.children("48")[0].code == "20194"
    assert national.get("99999") is None
    with pytest.raises(KeyError, match="99999"):
        national.unit("99999")


def test_search_is_accent_insensitive(national: Hierarchy) -> None:
    assert fold("Hoà Khánh") == fold("Hòa Khánh") == "hoa khanh"
    assert fold("Đà Nẵng") == "da nang"
    found = [unit.code for unit in national.search("hoa khanh")]
    assert "20200" in found  # Phường Hoà Khánh, spelt with the old tone placement
    assert national.search("HẢI VÂN")[0].code == "20194"
    assert national.search("   ") == []


def test_three_levels(three: Hierarchy) -> None:
    assert three.levels == ("province", "district", "commune")
    assert three.level_tags("20242") == {"province": "48", "district": "492", "commune": "20242"}
    assert three.full_name("20242") == "Phường Phước Ninh, Quận Hải Châu, Thành phố Đà Nẵng"
    assert [u.code for u in three.units_at("commune", parent="492")] == ["20236", "20242"]
    assert [u.code for u in three.units_at("commune", parent="48")] == [
        "20194",
        "20197",
        "20236",
        "20242",
    ]
    assert three.is_within("20194", "490")
    assert not three.is_within("20194", "492")


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("region,1,,A,A,A,x\n", "level must be one of ['province', 'commune']: 'region'"),
        ("province,480,,A,A,A,x\n", "code must be 2 digits for level province: '480'"),
        ("province,48,,A,A,A,x\ncommune,2019,48,B,B,B,x\n", "must be 5 digits"),
        ("province,48,,A,A,A,x\nprovince,48,,A,A,A,x\n", "must be unique (also line 2)"),
        ("province,48,,A,A,A,x\ncommune,20194,49,B,B,B,x\n", "must be the code of a province"),
        ("province,48,,A,A,A,x\ncommune,20194,,B,B,B,x\n", "must be empty for the top level"),
    ],
)
def test_bad_units_file_names_file_line_and_value(tmp_path: Path, rows: str, expected: str) -> None:
    path = tmp_path / "units.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Hierarchy.from_csv(TWO, path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_missing_units_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must name an existing CSV file"):
        Hierarchy.from_csv(TWO, tmp_path / "none.csv")
