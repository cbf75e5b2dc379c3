"""The hierarchy is data: 2 levels (2025) and 3 levels (pre-2025) from configuration."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import Label, LevelSettings
from layers.levels import Hierarchy, fold

TWO = [
    LevelSettings(name="province", code_length=2, label=Label(vi="Tỉnh", en="Province")),
    LevelSettings(name="commune", code_length=5, label=Label(vi="Xã", en="Commune")),
]
HEADER = "level,code,parent_code,name,full_name,name_en,unit_type\n"


def test_2025_structure_has_34_provinces_and_3321_communes(national: Hierarchy) -> None:
    assert national.levels == ("province", "commune")
    assert len(national.units_at("province")) == 34
    assert len(national.units_at("commune")) == 3321
    assert len(national.units_at("commune", parent="48")) == 94
    with pytest.raises(KeyError, match="district"):
        national.units_at("district")


def test_navigation_and_names(national: Hierarchy) -> None:
    assert national.level_tags("20194") == {"province": "48", "commune": "20194"}
    assert national.full_name("20194") == "Phường Hải Vân, Thành phố Đà Nẵng"
    assert national.full_name("20194", "en") == "Hai Van Ward, Da Nang City"
    assert national.full_name("48") == "Thành phố Đà Nẵng"
    assert [u.code for u in national.ancestors("20194")] == ["48", "20194"]
    parent = national.parent("20194")
    assert parent is not None
    assert parent.full_name == "Thành phố Đà Nẵng"
    assert national.parent("48") is None
    children = [unit.code for unit in national.children("48")]
    assert children[0] == "20194"
    assert children == sorted(children)
    assert len(children) == 94
    assert national.children("20194") == []
    assert national.get("99999") is None
    with pytest.raises(KeyError, match="99999"):
        national.unit("99999")


def test_names_are_nfc(national: Hierarchy) -> None:
    for unit in national.units_at("commune", parent="48"):
        assert unicodedata.is_normalized("NFC", unit.full_name), unit.code


def test_decomposed_names_in_the_file_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    decomposed = unicodedata.normalize("NFD", "Đà Nẵng")
    path.write_text(HEADER + f"province,48,,{decomposed},Thành phố {decomposed},Da Nang,Tỉnh\n")
    unit = Hierarchy.from_csv(TWO, path).unit("48")
    assert unit.name == "Đà Nẵng"
    assert unit.full_name == "Thành phố Đà Nẵng"


def test_search_is_accent_insensitive(national: Hierarchy) -> None:
    assert fold("Hoà Khánh") == fold("Hòa Khánh") == "hoa khanh"
    assert fold("Đà Nẵng") == fold("ĐÀ NẴNG") == "da nang"
    found = [unit.code for unit in national.search("hoa khanh")]
    assert "20200" in found  # Phường Hoà Khánh, spelt with the old tone placement
    assert [unit.code for unit in national.search("Hòa Khánh")] == found
    assert national.search("HẢI VÂN")[0].code == "20194"
    assert national.search("   ") == []
    assert len(national.search("xa", limit=5)) == 5


def test_three_levels(three: Hierarchy) -> None:
    assert three.levels == ("province", "district", "commune")
    assert three.level_tags("20242") == {"province": "48", "district": "492", "commune": "20242"}
    assert three.full_name("20242") == "Phường Phước Ninh, Quận Hải Châu, Thành phố Đà Nẵng"
    assert three.full_name("20242", "en") == "Phuoc Ninh Ward, Hai Chau District, Da Nang City"
    assert [u.code for u in three.ancestors("20242")] == ["48", "492", "20242"]
    assert [u.code for u in three.children("48")] == ["490", "492"]
    assert [u.code for u in three.units_at("commune", parent="492")] == ["20236", "20242"]
    assert [u.code for u in three.units_at("commune", parent="48")] == [
        "20194",
        "20197",
        "20236",
        "20242",
    ]
    assert [u.code for u in three.units_at("district")] == ["490", "492"]
    assert three.is_within("20194", "490")
    assert not three.is_within("20194", "492")
    assert [u.code for u in three.search("hai chau")] == ["492", "20236"]


@pytest.mark.parametrize(
    ("rows", "line", "expected"),
    [
        ("region,1,,A,A,A,x\n", 2, "level must be one of ['province', 'commune']: 'region'"),
        ("province,480,,A,A,A,x\n", 2, "code must be 2 digits for level province: '480'"),
        ("province,4A,,A,A,A,x\n", 2, "code must be 2 digits for level province: '4A'"),
        ("province,48,,A,A,A,x\ncommune,2019,48,B,B,B,x\n", 3, "must be 5 digits"),
        ("province,48,,A,A,A,x\nprovince,48,,A,A,A,x\n", 3, "must be unique (also line 2)"),
        ("province,48,,A,A,A,x\ncommune,20194,49,B,B,B,x\n", 3, "must be the code of a province"),
        (
            "province,48,,A,A,A,x\nprovince,49,,B,B,B,x\ncommune,20194,20195,C,C,C,x\n"
            "commune,20195,48,D,D,D,x\n",
            4,
            "parent_code must be the code of a province in the file: '20195'",
        ),
        ("province,48,,A,A,A,x\ncommune,20194,,B,B,B,x\n", 3, "must be empty for the top level"),
        ("province,48,, ,A,A,x\n", 2, "name must be set"),
    ],
)
def test_bad_units_file_names_file_line_and_value(
    tmp_path: Path, rows: str, line: int, expected: str
) -> None:
    path = tmp_path / "units.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Hierarchy.from_csv(TWO, path)
    assert f"{path}:{line}" in str(caught.value)
    assert expected in str(caught.value)


def test_missing_units_file_or_column(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must name an existing CSV file") as caught:
        Hierarchy.from_csv(TWO, tmp_path / "none.csv")
    assert "none.csv" in str(caught.value)
    path = tmp_path / "units.csv"
    path.write_text("level,code,name\nprovince,48,A\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"missing \['parent_code', 'full_name'"):
        Hierarchy.from_csv(TWO, path)
