"""Small deliberately broken boundary layers, generated in tmp_path (no files in the repo).

Four communes of a made-up two-level hierarchy, as 0.01° squares near Đà Nẵng:
00001 and 00002 (province 01) side by side, 00003 (province 01) above 00001, 00004
(province 02) far away. Province 01 is the rectangle around the first three."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import shapely

from core.settings import Label, LevelSettings
from layers.levels import Hierarchy

LEVELS = [
    LevelSettings(name="province", code_length=2, label=Label(vi="Tỉnh", en="Province")),
    LevelSettings(name="commune", code_length=5, label=Label(vi="Xã", en="Commune")),
]
UNITS_CSV = """level,code,parent_code,name,full_name,name_en,unit_type
province,01,,Một,Tỉnh Một,One,Tỉnh
province,02,,Hai,Tỉnh Hai,Two,Tỉnh
commune,00001,01,Hoà Khánh,Xã Hoà Khánh,Hoa Khanh,Xã
commune,00002,01,Bình,Xã Bình,Binh,Xã
commune,00003,01,Ba,Xã Ba,Ba,Xã
commune,00004,02,Bốn,Xã Bốn,Bon,Xã
"""
X, Y, SIDE = 108.0, 16.0, 0.01  # a 0.01° square is about 1.07 km × 1.11 km here


def square(column: float, row: float, side: float = SIDE) -> shapely.Polygon:
    x, y = X + column * SIDE, Y + row * SIDE
    return shapely.box(x, y, x + side, y + side)


def hierarchy(tmp_path: Path) -> Hierarchy:
    path = tmp_path / "units.csv"
    path.write_text(UNITS_CSV, encoding="utf-8")
    return Hierarchy.from_csv(LEVELS, path)


def clean_communes() -> dict[str, list[object]]:
    return {
        "code": ["00001", "00002", "00003", "00004"],
        "name": ["Hoà Khánh", "Bình", "Ba", "Bốn"],
        "parent_code": ["01", "01", "01", "02"],
        "geometry": [square(0, 0), square(1, 0), square(0, 1), square(10, 10)],
    }


def write(path: Path, columns: dict[str, list[object]], crs: str | None = "EPSG:4326") -> Path:
    frame = gpd.GeoDataFrame(columns, geometry="geometry", crs="EPSG:4326")
    if crs is not None and crs != "EPSG:4326":
        frame = frame.to_crs(crs)
    elif crs is None:
        frame = frame.set_crs(None, allow_override=True)
    frame.to_file(path, engine="pyogrio")
    return path


def provinces(path: Path) -> Path:
    return write(
        path,
        {
            "code": ["01", "02"],
            "geometry": [
                shapely.box(X, Y, X + 2 * SIDE, Y + 2 * SIDE),
                square(10, 10),
            ],
        },
    )
