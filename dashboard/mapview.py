"""The map views of the drill-down: for a place, the units drawn, their geometry URL and
the far units of the inset, prepared once per view and shared by every page.

A view is the units of one level inside a place (:class:`dashboard.place.View`). Home is
the scope (or the country) drawn at ``layers.map_level``; every other place is drawn one
level down (``Places.view_of``). The home view is prepared when the app starts (a bad
boundary file fails there); the others on first use: 0.2-0.3 s for a province's communes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import geopandas as gpd

from core.settings import Label
from core.types import UnitRef
from dashboard.geo import GeoCache
from dashboard.place import Places, View
from dashboard.views.map import MapUnit, inset_codes
from layers.geography import Geography
from layers.geometry import unit_bounds


@dataclass(frozen=True, slots=True)
class MapView:
    """What the map draws for one place."""

    place: str | None  # the unit whose children are drawn; None = the country
    level: str
    units: list[MapUnit]
    geo_url: str
    inset: frozenset[str]  # far units drawn in an inset (views.map.inset_codes)
    parent: UnitRef | None  # the store's filter for this view's values

    @property
    def key(self) -> str:
        """Identifies the drawn geometry: a new view (or new boundaries after a restart)
        needs a full figure, never an update."""
        return self.geo_url


def map_units(geography: Geography, frame: gpd.GeoDataFrame) -> list[MapUnit]:
    """The units of ``frame`` in its order, with hover names: "Phường Hải Vân" in
    Vietnamese, "Hai Van Ward" in English."""
    units = []
    for code, full_name in zip(frame["code"], frame["full_name"], strict=True):
        code = str(code)
        english = full_name
        if geography.hierarchy.get(code) is not None:
            # full_name(code, "en") is "Hai Van Ward, Da Nang City": the unit is the first part.
            english = geography.hierarchy.full_name(code, "en").split(", ")[0]
        units.append(MapUnit(code, Label(vi=str(full_name), en=english)))
    return units


class MapViews:
    """The drill-down's views over one geography (thread-safe, cached per view)."""

    def __init__(self, geography: Geography, geo: GeoCache) -> None:
        self.geography = geography
        self.geo = geo
        self.places = Places(geography.hierarchy, geography.levels_with_boundaries, geography.scope)
        self._views: dict[tuple[str, str | None], MapView] = {}
        self._lock = threading.Lock()

    def home(self) -> MapView:
        return self.view(View(self.places.home(), self.geography.map_level))

    def of_place(self, place: str | None) -> MapView:
        """The view of ``place`` (home when it is home, or not a place with a map)."""
        place = self.places.place_or_home(place)
        if place == self.places.home():
            return self.home()
        view = self.places.view_of(place)
        return self.home() if view is None else self.view(view)

    def view(self, view: View) -> MapView:
        # The scope's own view is the level's file as a whole: one geometry URL for both.
        parent = None if view.place == self.geography.scope else view.place
        key = (view.level, parent)
        with self._lock:
            found = self._views.get(key)
        if found is not None:
            return found
        frame = self.geography.view(view.level, parent)  # outside the lock: may take 0.3 s
        made = MapView(
            place=view.place,
            level=view.level,
            units=map_units(self.geography, frame),
            geo_url=self.geo.url(view.level, parent),
            inset=inset_codes(unit_bounds(frame)),
            parent=self._ref(view.place),
        )
        with self._lock:
            return self._views.setdefault(key, made)

    def _ref(self, code: str | None) -> UnitRef | None:
        if code is None:
            return None
        unit = self.geography.hierarchy.unit(code)
        return UnitRef(unit.level, unit.code)
