"""Everything geographic a service needs, built once from the settings."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

import geopandas as gpd

from core.errors import ConfigError
from core.settings import Settings
from layers.boundaries import load_boundaries
from layers.geometry import map_geojson
from layers.levels import Hierarchy
from layers.locate import Locator


class Geography:
    """Hierarchy + boundaries per level (scoped, cached) + the point → unit locator."""

    def __init__(
        self,
        hierarchy: Hierarchy,
        boundary_files: dict[str, Any],
        *,
        scope: str | None,
        map_level: str,
    ) -> None:
        self.hierarchy = hierarchy
        self.scope = scope
        self.map_level = map_level
        self._files = boundary_files
        with_files = [level for level in hierarchy.levels if level in boundary_files]
        if not with_files:
            raise ConfigError("layers.boundaries", {}, "must name a file for at least one level")
        if map_level not in boundary_files:
            raise ConfigError("layers.map_level", map_level, "must be a level with a boundary file")
        self.lowest_level: str = with_files[-1]
        self._lock = threading.Lock()
        self._frames: dict[str, gpd.GeoDataFrame] = {}
        self._geojson: dict[str, dict[str, Any]] = {}

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
        return [level for level in self.hierarchy.levels if level in self._files]

    def boundaries(self, level: str) -> gpd.GeoDataFrame:
        with self._lock:
            if level not in self._frames:
                if level not in self._files:
                    raise KeyError(f"no boundary file for level {level!r}")
                self._frames[level] = load_boundaries(
                    self._files[level], level, self.hierarchy, scope=self._scope_for(level)
                )
            return self._frames[level]

    def _scope_for(self, level: str) -> str | None:
        """The scope filters levels below it; a level at or above the scope is not cut."""
        if self.scope is None:
            return None
        scope_unit = self.hierarchy.get(self.scope)
        if scope_unit is None:
            raise ConfigError("layers.scope", self.scope, "must be the code of a unit")
        levels = self.hierarchy.levels
        return self.scope if levels.index(level) >= levels.index(scope_unit.level) else None

    @cached_property
    def _locator(self) -> Locator:
        return Locator(self.boundaries(self.lowest_level))

    def locator(self) -> Locator:
        return self._locator

    def map_geojson(self, level: str) -> dict[str, Any]:
        frame = self.boundaries(level)
        with self._lock:
            if level not in self._geojson:
                self._geojson[level] = map_geojson(frame)
            return self._geojson[level]
