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
        codes = frame["code"].to_numpy(dtype=str)
        order = np.argsort(codes, kind="stable")
        self._codes = codes[order]
        geometries = np.asarray(frame.geometry.to_numpy(), dtype=object)[order]
        shapely.prepare(geometries)
        self._tree = shapely.STRtree(geometries)

    def __len__(self) -> int:
        return len(self._codes)

    def locate(self, lon: float, lat: float) -> str | None:
        return self.locate_many([lon], [lat])[0]

    def locate_many(self, lons: Sequence[float], lats: Sequence[float]) -> list[str | None]:
        """The unit code of every (lon, lat) pair, None outside every unit (or for NaN)."""
        xs, ys = np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)
        if xs.shape != ys.shape or xs.ndim != 1:
            raise ValueError(f"lons and lats must be equally long lists ({xs.shape}, {ys.shape})")
        found: list[str | None] = [None] * len(xs)
        if not len(xs) or not len(self._codes):
            return found
        point_at, geometry_at = self._tree.query(shapely.points(xs, ys), predicate="intersects")
        # Geometries are stored in code order: the smallest geometry index per point is the
        # lowest code, which decides points on a shared border.
        order = np.lexsort((geometry_at, point_at))
        point_at, geometry_at = point_at[order], geometry_at[order]
        points, first = np.unique(point_at, return_index=True)
        for point, code in zip(
            points.tolist(), self._codes[geometry_at[first]].tolist(), strict=True
        ):
            found[point] = str(code)
        return found
