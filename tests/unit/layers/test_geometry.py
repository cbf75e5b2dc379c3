"""map_geojson: ids, rounding, MultiPolygons and ring orientation for d3-geo; bounds."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import shape

from layers.geometry import bounds, map_geojson


def _frame(*geometries: shapely.Geometry) -> gpd.GeoDataFrame:
    codes = [f"2019{i}" for i in range(len(geometries))]
    return gpd.GeoDataFrame(
        {"code": codes, "name": ["A"] * len(codes), "full_name": ["Phường A"] * len(codes)},
        geometry=list(geometries),
        crs="EPSG:4326",
    )


def _ring_is_ccw(ring: list[list[float]]) -> bool:
    return bool(shapely.LinearRing(ring).is_ccw)


def test_rfc7946_rings_are_rewound_clockwise_outside_counter_clockwise_holes() -> None:
    # RFC 7946 winding on input: exterior counter-clockwise, hole clockwise
    exterior = [(108.0, 16.0), (108.1, 16.0), (108.1, 16.1), (108.0, 16.1), (108.0, 16.0)]
    hole = [(108.02, 16.02), (108.02, 16.08), (108.08, 16.08), (108.08, 16.02), (108.02, 16.02)]
    polygon = shapely.Polygon(exterior, [hole])
    assert polygon.exterior.is_ccw
    assert not polygon.interiors[0].is_ccw
    feature = map_geojson(_frame(polygon))["features"][0]
    assert feature["geometry"]["type"] == "MultiPolygon"
    [[outer, inner]] = feature["geometry"]["coordinates"]
    assert not _ring_is_ccw(outer)
    assert _ring_is_ccw(inner)
    assert shape(feature["geometry"]).area == pytest.approx(polygon.area)


def test_features_carry_code_names_and_rounded_coordinates() -> None:
    square = shapely.box(108.123456789, 16.0, 108.2, 16.087654321)
    collection = map_geojson(_frame(square))
    assert collection["type"] == "FeatureCollection"
    [feature] = collection["features"]
    assert feature["id"] == "20190"
    assert feature["properties"] == {"code": "20190", "name": "A", "full_name": "Phường A"}
    xs = {x for x, _ in feature["geometry"]["coordinates"][0][0]}
    ys = {y for _, y in feature["geometry"]["coordinates"][0][0]}
    assert xs == {108.12346, 108.2}
    assert ys == {16.0, 16.08765}


def test_simplification_keeps_neighbours_edge_matched() -> None:
    # two neighbours sharing a zig-zag border of 200 small steps
    border = [(108.1 + 0.00001 * (i % 2), 16.0 + 0.0005 * i) for i in range(201)]
    west = shapely.Polygon([(108.0, 16.1), (108.0, 16.0), *border])
    east = shapely.Polygon([*border, (108.2, 16.1), (108.2, 16.0)])
    assert west.is_valid
    assert east.is_valid
    frame = _frame(west, east)
    full = map_geojson(frame)
    simple = map_geojson(frame, tolerance=0.001)

    def vertices(collection: dict[str, object]) -> int:
        features = collection["features"]
        assert isinstance(features, list)
        return sum(shapely.get_num_coordinates(shape(f["geometry"])) for f in features)

    assert vertices(simple) < vertices(full) / 10
    left, right = (shape(f["geometry"]) for f in simple["features"])
    assert left.intersection(right).area == pytest.approx(0, abs=1e-12)  # no overlap
    assert left.union(right).area == pytest.approx(0.02, rel=1e-3)  # no gap


def test_bounds() -> None:
    frame = _frame(shapely.box(108.0, 15.9, 108.1, 16.0), shapely.box(108.3, 16.1, 108.4, 16.2))
    assert bounds(frame) == pytest.approx((108.0, 15.9, 108.4, 16.2))
    assert all(isinstance(value, float) for value in bounds(frame))
