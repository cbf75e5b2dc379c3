"""Read and check boundary files (GeoJSON with a ``code`` property per feature)."""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from core.errors import ConfigError
from layers.levels import Hierarchy

log = logging.getLogger("cityops.layers")

_POLYGONAL = ("Polygon", "MultiPolygon")


def load_boundaries(
    path: Path, level: str, hierarchy: Hierarchy, *, scope: str | None = None
) -> gpd.GeoDataFrame:
    """Boundaries of one level as a GeoDataFrame(code, name, full_name, geometry) in EPSG:4326,
    sorted by code.

    Every feature's code must be a unit of ``level`` in the hierarchy, once; names come from
    the hierarchy (joined by code, never by name). ``scope``: keep only that unit and the
    units inside it. Raises ConfigError naming the file and the bad value."""
    key = f"layers.boundaries.{level}"
    if not path.is_file():
        raise ConfigError(key, str(path), "must name an existing GeoJSON file")
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise ConfigError(key, str(path), f"must be a readable GeoJSON file ({exc})") from exc
    if len(frame) == 0:
        raise ConfigError(key, str(path), "must hold at least one feature")
    if "code" not in frame.columns:
        raise ConfigError(key, str(path), "must have a `code` property on every feature")
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    codes = [_code(value) for value in frame["code"]]
    seen: dict[str, int] = {}
    for position, (code, geometry) in enumerate(zip(codes, frame.geometry, strict=True)):
        where = f"{key} {path} feature {position}"
        unit = hierarchy.get(code)
        if unit is None or unit.level != level:
            raise ConfigError(
                f"{where} code", code, f"must be the code of a {level} in hierarchy.units_file"
            )
        if code in seen:
            raise ConfigError(f"{where} code", code, f"must be unique (also feature {seen[code]})")
        seen[code] = position
        kind = None if geometry is None else geometry.geom_type
        if kind not in _POLYGONAL:
            raise ConfigError(f"{where} ({code}) geometry", kind, "must be a (Multi)Polygon")
    geometries = _repaired(np.asarray(frame.geometry.values, dtype=object), codes, path)
    result = gpd.GeoDataFrame(
        {
            "code": codes,
            "name": [hierarchy.unit(code).name for code in codes],
            "full_name": [hierarchy.unit(code).full_name for code in codes],
        },
        geometry=list(geometries),
        crs="EPSG:4326",
    )
    if scope is not None:
        if hierarchy.get(scope) is None:
            raise ConfigError("layers.scope", scope, "must be the code of a unit in the hierarchy")
        result = result[[hierarchy.is_within(code, scope) for code in result["code"]]]
    return result.sort_values("code").reset_index(drop=True)


def _code(value: object) -> str:
    return unicodedata.normalize("NFC", str(value)).strip()


def _repaired(geometries: np.ndarray, codes: list[str], path: Path) -> np.ndarray:
    """Invalid polygons (self-intersections from tracing) made valid, staying polygonal:
    method="structure" never turns a polygon into lines or points."""
    invalid = ~shapely.is_valid(geometries)
    if invalid.any():
        bad = [code for code, flag in zip(codes, invalid.tolist(), strict=True) if flag]
        log.warning("%s: repaired %d invalid geometries: %s", path, len(bad), ", ".join(bad))
        geometries = geometries.copy()
        geometries[invalid] = shapely.make_valid(
            geometries[invalid], method="structure", keep_collapsed=False
        )
    return geometries
