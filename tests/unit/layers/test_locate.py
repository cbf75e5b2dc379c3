"""Locator: point → unit code, deterministic on borders, vectorised."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely

from layers.locate import Locator

# Four 0.01° squares side by side, in code order, like tests/data/three_level.
CODES = ["20194", "20197", "20236", "20242"]


def _squares(order: list[int]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": [CODES[i] for i in order]},
        geometry=[shapely.box(108.10 + 0.01 * i, 16.00, 108.11 + 0.01 * i, 16.01) for i in order],
        crs="EPSG:4326",
    )


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]])
def test_border_points_go_to_the_lowest_code_whatever_the_file_order(order: list[int]) -> None:
    locator = Locator(_squares(order))
    assert len(locator) == 4
    assert locator.locate(108.105, 16.005) == "20194"
    assert locator.locate(108.135, 16.005) == "20242"
    assert locator.locate(108.11, 16.005) == "20194"  # shared edge of 20194 and 20197
    assert locator.locate(108.13, 16.01) == "20236"  # corner of 20236 and 20242
    assert locator.locate(108.14, 16.0) == "20242"  # outer corner still counts as inside


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(108.095, 16.005), (108.145, 16.005), (108.12, 16.02), (math.nan, 16.0), (108.12, math.nan)],
)
def test_outside_or_not_a_number_is_none(lon: float, lat: float) -> None:
    assert Locator(_squares([0, 1, 2, 3])).locate(lon, lat) is None


def test_locate_many_agrees_with_a_brute_force_search() -> None:
    frame = _squares([1, 3, 0, 2])
    rng = np.random.default_rng(7)
    lons = rng.uniform(108.09, 108.15, 5000)
    lats = rng.uniform(15.995, 16.015, 5000)
    found = Locator(frame).locate_many(lons.tolist(), lats.tolist())
    points = shapely.points(lons, lats)
    expected: list[str | None] = [None] * len(points)
    for code, geometry in sorted(zip(frame["code"], frame.geometry, strict=True), reverse=True):
        for index in np.flatnonzero(shapely.intersects(geometry, points)):
            expected[index] = code  # overwritten by lower codes: the lowest wins
    assert found == expected
    assert {code for code in found if code} == set(CODES)
    assert None in found


def test_locate_many_edge_cases() -> None:
    locator = Locator(_squares([0, 1, 2, 3]))
    assert locator.locate_many([], []) == []
    with pytest.raises(ValueError, match="equally long"):
        locator.locate_many([108.1, 108.2], [16.0])
    empty = Locator(_squares([]))
    assert empty.locate_many([108.105], [16.005]) == [None]
