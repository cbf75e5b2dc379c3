"""Everything geographic a service needs, built once from the settings."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd

from core.errors import ConfigError
from core.settings import Settings
from layers.boundaries import load_boundaries
from layers.geometry import map_geojson, view_tolerance
from layers.levels import Hierarchy
from layers.locate import Locator


class Geography:
    """Hierarchy + boundaries per level (scoped, cached) + the point → unit locator.

    Files are read on first use, not in the constructor; thread-safe, so the dashboard's
    server threads can share one instance."""

    def __init__(
        self,
        hierarchy: Hierarchy,
        boundary_files: Mapping[str, Path],
        *,
        scope: str | None,
        map_level: str,
    ) -> None:
        self.hierarchy = hierarchy
        self.scope = scope
        self.map_level = map_level
        self._files = dict(boundary_files)
        unknown = [level for level in self._files if level not in hierarchy.levels]
        if unknown:
            raise ConfigError(
                f"layers.boundaries.{unknown[0]}",
                unknown[0],
                f"must be a level of hierarchy.levels {list(hierarchy.levels)}",
            )
        with_files = self.levels_with_boundaries
        if not with_files:
            raise ConfigError("layers.boundaries", {}, "must name a file for at least one level")
        if map_level not in self._files:
            raise ConfigError("layers.map_level", map_level, "must be a level with a boundary file")
        if scope is not None and hierarchy.get(scope) is None:
            raise ConfigError("layers.scope", scope, "must be the code of a unit in the hierarchy")
        self.lowest_level: str = with_files[-1]
        # re-entrant: locator() and map_geojson() call boundaries() while holding it
        self._lock = threading.RLock()
        self._frames: dict[str, gpd.GeoDataFrame] = {}
        self._geojson: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._locator: Locator | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Geography:
        hierarchy = Hierarchy.from_csv(
            settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
        )
        files = {level: settings.path(path) for level, path in settings.layers.boundaries.items()}
        return cls(
            hierarchy, files, scope=settings.layers.scope, map_level=settings.layers.map_level
        )

    @property
    def levels_with_boundaries(self) -> list[str]:
        """Levels that have a boundary file, top first."""
        return [level for level in self.hierarchy.levels if level in self._files]

    def boundaries(self, level: str) -> gpd.GeoDataFrame:
        """The units of ``level`` inside the scope (read once). Callers must not modify it."""
        with self._lock:
            if level not in self._frames:
                if level not in self._files:
                    raise KeyError(f"no boundary file for level {level!r}")
                self._frames[level] = load_boundaries(
                    self._files[level], level, self.hierarchy, scope=self._scope_for(level)
                )
            return self._frames[level]

    def _scope_for(self, level: str) -> str | None:
        """The unit that bounds ``level``: the scope itself for its level and the levels
        below it; for a level above it, the scope's ancestor at that level (a district
        scope shows its province, not the whole country)."""
        if self.scope is None:
            return None
        for unit in self.hierarchy.ancestors(self.scope):
            if unit.level == level:
                return unit.code
        return self.scope

    def locator(self) -> Locator:
        """Point → unit code over the lowest level with a boundary file."""
        with self._lock:
            if self._locator is None:
                self._locator = Locator(self.boundaries(self.lowest_level))
            return self._locator

    def view(self, level: str, parent: str | None = None) -> gpd.GeoDataFrame:
        """The units of ``level`` inside ``parent`` (None: the whole scope), e.g. the
        communes of one province for a drill-down. Raises KeyError for a level without a
        boundary file, an unknown parent, a parent not above ``level``, or one with no
        units of ``level`` inside the scope."""
        frame = self.boundaries(level)
        if parent is None:
            return frame
        unit = self.hierarchy.get(parent)
        levels = self.hierarchy.levels
        if unit is None or levels.index(unit.level) >= levels.index(level):
            raise KeyError(f"{parent!r} is not a unit above level {level!r}")
        inside = frame[[self.hierarchy.is_within(str(code), parent) for code in frame["code"]]]
        if len(inside) == 0:
            raise KeyError(f"no {level} of {parent!r} inside the scope")
        return inside.reset_index(drop=True)

    def map_geojson(self, level: str, parent: str | None = None) -> dict[str, Any]:
        """The browser FeatureCollection of :meth:`view` (built once per view), simplified
        for the size it is drawn at (:func:`layers.geometry.view_tolerance`): the country's
        communes coarser than one province's. Shared borders stay matched within a view."""
        key = (level, parent)
        with self._lock:
            if key not in self._geojson:
                frame = self.view(level, parent)
                self._geojson[key] = map_geojson(frame, tolerance=view_tolerance(frame))
            return self._geojson[key]
