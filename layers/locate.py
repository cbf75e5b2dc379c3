"""Point → unit code, with an STRtree over the lowest level's polygons."""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import shapely


class Locator:
    """Finds the unit that contains a point. A point on a shared border goes to the unit
    with the lowest code, so the answer never depends on the order of the file."""

    def __init__(self, frame: gpd.GeoDataFrame) -> None:
        order = np.argsort(frame["code"].to_numpy(dtype=str), kind="stable")
        self._codes = frame["code"].to_numpy(dtype=str)[order]
        geometries = frame.geometry.to_numpy()[order]
        shapely.prepare(geometries)
        self._tree = shapely.STRtree(geometries)

    def locate(self, lon: float, lat: float) -> str | None:
        return self.locate_many([lon], [lat])[0]

    def locate_many(self, lons: Sequence[float], lats: Sequence[float]) -> list[str | None]:
        points = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        found: list[str | None] = [None] * len(points)
        point_index, geometry_index = self._tree.query(points, predicate="intersects")
        # geometry indices follow code order, so the first hit per point is the lowest code
        for point_at, geometry_at in sorted(
            zip(point_index.tolist(), geometry_index.tolist(), strict=True)
        ):
            if found[point_at] is None:
                found[point_at] = str(self._codes[geometry_at])
        return found
