"""What a signed-in user may see: their units and everything inside them.

The data layer asks this for every query and export, so a crafted request for another
unit gets nothing even though the page never offered it. Pure: a hierarchy and codes in,
answers out.
"""

from __future__ import annotations

from collections.abc import Iterable

from dashboard.users import User
from layers.levels import Hierarchy


class Access:
    """The units a user may see and their descendants; ``everything`` for an admin.

    A code the hierarchy does not know (a typo, the ``unassigned`` pseudo-unit, a unit
    dissolved since) is visible to an admin only."""

    def __init__(
        self, hierarchy: Hierarchy, units: Iterable[str], *, everything: bool = False
    ) -> None:
        self._hierarchy = hierarchy
        self.units: frozenset[str] = frozenset(units)
        self.everything = everything

    @classmethod
    def for_user(cls, hierarchy: Hierarchy, user: User) -> Access:
        """A disabled user sees nothing; an admin sees everything."""
        if user.disabled:
            return cls(hierarchy, ())
        return cls(hierarchy, user.units, everything=user.role == "admin")

    def can_see(self, code: str) -> bool:
        if self.everything:
            return True
        if not self.units or self._hierarchy.get(code) is None:
            return False
        return any(unit.code in self.units for unit in self._hierarchy.ancestors(code))

    def visible(self, codes: Iterable[str]) -> list[str]:
        """The codes this user may see, in the given order."""
        return [code for code in codes if self.can_see(code)]
