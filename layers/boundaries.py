"""Read and check boundary files (GeoJSON with a ``code`` property per feature)."""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import geopandas as gpd
import shapely

from core.errors import ConfigError
from layers.levels import Hierarchy

log = logging.getLogger("cityops.layers")


def load_boundaries(
    path: Path, level: str, hierarchy: Hierarchy, *, scope: str | None = None
) -> gpd.GeoDataFrame:
    """Boundaries of one level as a GeoDataFrame(code, name, full_name, geometry) in EPSG:4326.

    Every feature's code must be a unit of ``level`` in the hierarchy; names come from the
    hierarchy (joined by code, never by name). ``scope``: keep only units inside that unit.
    Raises ConfigError naming the file and the bad value."""
    key = f"layers.boundaries.{level}"
    if not path.exists():
        raise ConfigError(key, str(path), "must name an existing GeoJSON file")
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise ConfigError(key, str(path), f"must be a readable GeoJSON file ({exc})") from exc
    if "code" not in frame.columns:
        raise ConfigError(key, str(path), "must have a `code` property on every feature")
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    codes = [unicodedata.normalize("NFC", str(code)).strip() for code in frame["code"]]
    for position, code in enumerate(codes):
        unit = hierarchy.get(code)
        if unit is None or unit.level != level:
            raise ConfigError(
                f"{key} {path} feature {position} code",
                code,
                f"must be the code of a {level} in hierarchy.units_file",
            )
    geometry = frame.geometry.values
    invalid = ~shapely.is_valid(geometry)
    if invalid.any():
        log.warning("%s: repairing %d invalid geometries", path, int(invalid.sum()))
        geometry = shapely.make_valid(geometry)
    result = gpd.GeoDataFrame(
        {
            "code": codes,
            "name": [hierarchy.unit(code).name for code in codes],
            "full_name": [hierarchy.unit(code).full_name for code in codes],
        },
        geometry=list(geometry),
        crs="EPSG:4326",
    )
    if scope is not None:
        if hierarchy.get(scope) is None:
            raise ConfigError("layers.scope", scope, "must be the code of a unit in the hierarchy")
        keep = [hierarchy.is_within(code, scope) for code in result["code"]]
        result = result[keep]
    return result.sort_values("code").reset_index(drop=True)
