"""Map geometry for the browser: compact GeoJSON with rings wound for d3-geo."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import mapping as to_mapping

DECIMALS = 5  # about 1 m


def map_geojson(frame: gpd.GeoDataFrame, *, tolerance: float | None = None) -> dict[str, Any]:
    """FeatureCollection with feature ``id`` = code and properties {code, name, full_name}.

    Exterior rings are clockwise and holes counter-clockwise: Plotly's SVG geo trace
    (d3-geo) reads RFC 7946 counter-clockwise outer rings as "the whole globe except the
    polygon" and fills the map with one colour. ``tolerance`` (degrees) simplifies the
    coverage so neighbours stay edge-matched. Every geometry is a MultiPolygon."""
    geometries = frame.geometry.to_numpy()
    if tolerance:
        geometries = shapely.coverage_simplify(geometries, tolerance)
    geometries = shapely.set_precision(geometries, 10.0**-DECIMALS)
    geometries = shapely.orient_polygons(geometries, exterior_cw=True)
    # One geometry type for every feature, so the browser code handles one shape of data.
    geometries = np.array([_multipolygon(geometry) for geometry in geometries], dtype=object)
    features = []
    for code, name, full_name, geometry in zip(
        frame["code"], frame["name"], frame["full_name"], geometries, strict=True
    ):
        mapping = to_mapping(geometry)
        features.append(
            {
                "type": "Feature",
                "id": str(code),
                "properties": {"code": str(code), "name": name, "full_name": full_name},
                "geometry": _rounded(mapping),
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _multipolygon(geometry: shapely.Geometry) -> shapely.Geometry:
    if isinstance(geometry, shapely.Polygon):
        return shapely.MultiPolygon([geometry])
    if isinstance(geometry, shapely.MultiPolygon):
        return geometry
    # simplification or rounding can leave a collection with slivers: keep the polygons
    parts = [part for part in shapely.get_parts(geometry) if isinstance(part, shapely.Polygon)]
    return shapely.MultiPolygon(parts)


def _rounded(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _rounded(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        if node and isinstance(node[0], float | int) and not isinstance(node[0], bool):
            return [round(float(value), DECIMALS) for value in node]
        return [_rounded(value) for value in node]
    return node


def bounds(frame: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    """(min lon, min lat, max lon, max lat) of a frame."""
    west, south, east, north = (float(value) for value in np.asarray(frame.total_bounds))
    return west, south, east, north
