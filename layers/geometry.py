"""Map geometry for the browser: compact GeoJSON with rings wound for d3-geo."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import mapping as to_mapping

DECIMALS = 5  # about 1 m
# Simplify a view to about one pixel of a 4K wall screen (3,840 px across the longer
# side of what it shows): coarser is visible there, finer only adds bytes and render time.
PIXELS_ACROSS = 3840
FAR_FACTOR = 4.0


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


def far_codes(bounds: pd.DataFrame, *, factor: float = FAR_FACTOR) -> frozenset[str]:
    """Units far away from the others (islands such as Đặc khu Hoàng Sa, 350 km off Đà
    Nẵng): the map draws them in an inset, so they do not set the scale of the view.

    ``bounds`` has columns code, minx, miny, maxx, maxy. A unit is far when its centre is
    more than ``factor`` times the 75th-percentile distance from the median centre."""
    if len(bounds) < 4:
        return frozenset()
    centre_x = (bounds["minx"] + bounds["maxx"]) / 2
    centre_y = (bounds["miny"] + bounds["maxy"]) / 2
    distance = ((centre_x - centre_x.median()) ** 2 + (centre_y - centre_y.median()) ** 2) ** 0.5
    typical = float(distance.quantile(0.75))
    if typical <= 0:
        return frozenset()
    far = bounds.loc[distance > factor * typical, "code"]
    return frozenset(str(code) for code in far) if len(far) <= len(bounds) // 10 else frozenset()


def unit_bounds(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    """code, minx, miny, maxx, maxy per unit (the input of :func:`far_codes`)."""
    table: pd.DataFrame = frame.bounds
    table["code"] = frame["code"].astype(str).to_numpy()
    return table


def view_tolerance(frame: gpd.GeoDataFrame, *, pixels: int = PIXELS_ACROSS) -> float:
    """The simplification tolerance (degrees) for a map of ``frame``: one pixel of a map
    ``pixels`` wide showing the units that set its scale (far units go to an inset).

    A national map (16° across) gets 0.0042°, Đà Nẵng's communes (1.7° without Hoàng Sa)
    0.00044°: the same rule gives the country coarse borders and a province fine ones."""
    if len(frame) == 0:
        return 0.0
    table = unit_bounds(frame)
    near = table[~table["code"].isin(far_codes(table))]
    width = float(near["maxx"].max() - near["minx"].min())
    height = float(near["maxy"].max() - near["miny"].min())
    return max(width, height) / pixels


def bounds(frame: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    """(min lon, min lat, max lon, max lat) of a frame."""
    west, south, east, north = (float(value) for value in np.asarray(frame.total_bounds))
    return west, south, east, north
