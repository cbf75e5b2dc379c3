"""Where the map is in the drill-down: the unit whose children it shows, and the way back up.

The map shows the children of a *place*: the country (no unit) shows the top level that has
boundaries, a province shows its communes (or, with three levels, its districts), and so
on down to the lowest level with boundaries, whose units open their page instead of a map.
The deployment's scope (``layers.scope``) is the highest place a user can reach: a city's
screen never drills *up* into the whole country. Levels are only ever named through the
hierarchy (2 or 3 levels, or any other configured list). Pure: no Dash, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from layers.levels import Hierarchy


@dataclass(frozen=True, slots=True)
class Crumb:
    """One step of the breadcrumb: ``code`` None is the country (the hierarchy's root)."""

    code: str | None
    label: str


@dataclass(frozen=True, slots=True)
class View:
    """What the map draws: the units of ``level`` inside ``place`` (None = everywhere)."""

    place: str | None
    level: str


class Places:
    """Drill-down rules over a hierarchy, the levels that have boundaries and a scope."""

    def __init__(
        self, hierarchy: Hierarchy, levels_with_boundaries: Sequence[str], scope: str | None
    ) -> None:
        if not levels_with_boundaries:
            raise ValueError("the map needs at least one level with boundaries")
        self.hierarchy = hierarchy
        self.levels = [level for level in hierarchy.levels if level in levels_with_boundaries]
        self.scope = scope

    def home(self) -> str | None:
        """The place a bare URL opens: the scope (or the country)."""
        return self.scope

    def within_reach(self, code: str | None) -> bool:
        """A known unit inside the scope (the scope itself included); None = the country,
        reachable only when there is no scope."""
        if code is None:
            return self.scope is None
        if self.hierarchy.get(code) is None:
            return False
        return self.scope is None or self.hierarchy.is_within(code, self.scope)

    def place_or_home(self, code: str | None) -> str | None:
        """``code`` when it is a place the map can show, else home (a link from another
        deployment, a typo or a unit of the lowest level opens home or its parent)."""
        if code is not None and self.within_reach(code):
            if self.view_of(code) is not None:
                return code
            parent = self.hierarchy.parent(code)
            if parent is not None and self.within_reach(parent.code):
                return parent.code
        return self.home()

    def view_of(self, place: str | None) -> View | None:
        """The map of a place: its units one drawn level down; None for a unit of the
        lowest drawn level (it has a page, not a map)."""
        depth = -1 if place is None else self.hierarchy.levels.index(self._level(place))
        below = [level for level in self.levels if self.hierarchy.levels.index(level) > depth]
        return View(place, below[0]) if below else None

    def can_open(self, code: str) -> bool:
        """Clicking this unit drills into it (it has a map below); False = open its page."""
        return self.within_reach(code) and self.view_of(code) is not None

    def breadcrumb(self, place: str | None, lang: str = "vi") -> list[Crumb]:
        """From the highest reachable place down to ``place``; the last crumb is where
        the map is."""
        root = [Crumb(None, "Việt Nam" if lang == "vi" else "Viet Nam")]
        if place is None:
            return root
        chain = self.hierarchy.ancestors(place)
        if self.scope is not None:
            top = next(i for i, unit in enumerate(chain) if unit.code == self.scope)
            chain = chain[top:]
            root = []
        return root + [
            Crumb(unit.code, _name(unit.full_name, unit.name_en, lang)) for unit in chain
        ]

    def _level(self, code: str) -> str:
        return self.hierarchy.unit(code).level


def _name(full_name: str, name_en: str, lang: str) -> str:
    return full_name if lang == "vi" or not name_en else name_en
