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
        self,
        hierarchy: Hierarchy | None,
        units: Iterable[str],
        *,
        everything: bool = False,
        role: str = "viewer",
        username: str = "",
    ) -> None:
        self._hierarchy = hierarchy
        self.units: frozenset[str] = frozenset(units)
        self.everything = everything
        self.role = role
        self.username = username

    @classmethod
    def for_user(cls, hierarchy: Hierarchy, user: User) -> Access:
        """A disabled user sees nothing; an admin sees everything."""
        if user.disabled:
            return cls(hierarchy, (), role="viewer", username=user.username)
        return cls(
            hierarchy,
            user.units,
            everything=user.role == "admin",
            role=user.role,
            username=user.username,
        )

    @classmethod
    def admin(cls, hierarchy: Hierarchy | None = None, username: str = "admin") -> Access:
        """Everything (an admin; tests and the command line)."""
        return cls(hierarchy, (), everything=True, role="admin", username=username)

    @classmethod
    def nobody(cls, hierarchy: Hierarchy) -> Access:
        """No user (not signed in): sees nothing, may do nothing."""
        return cls(hierarchy, ())

    @property
    def can_act(self) -> bool:
        """Acknowledge alerts and silence units or devices: admins and operators (leaders
        and viewers read)."""
        return self.role in ("admin", "operator") and (self.everything or bool(self.units))

    @property
    def sees_pipeline(self) -> bool:
        """The ingest pipeline's health concerns the whole deployment: admins, operators."""
        return self.role in ("admin", "operator")

    def top_units(self) -> list[str]:
        """The user's own units that the hierarchy knows, highest first (where a page for
        "everything I may see" starts); empty for an admin, who starts at home."""
        hierarchy = self._hierarchy
        if self.everything or hierarchy is None:
            return []
        known = [code for code in self.units if hierarchy.get(code) is not None]
        return sorted(known, key=lambda code: (len(hierarchy.ancestors(code)), code))

    def reaches(self, code: str | None) -> bool:
        """``code`` is visible, or one of the user's units lies inside it (a commune
        officer may open their province's map; the other communes stay blank). ``None``
        (the country) is an admin's only, unless a user unit is in it: every unit is."""
        if self.everything:
            return True
        if code is None:
            return bool(self.top_units())
        if self.can_see(code):
            return True
        hierarchy = self._hierarchy
        return hierarchy is not None and any(
            code in {unit.code for unit in hierarchy.ancestors(mine)} for mine in self.top_units()
        )

    def can_see(self, code: str) -> bool:
        if self.everything:
            return True
        if not self.units or self._hierarchy is None or self._hierarchy.get(code) is None:
            return False
        return any(unit.code in self.units for unit in self._hierarchy.ancestors(code))

    def visible(self, codes: Iterable[str]) -> list[str]:
        """The codes this user may see, in the given order."""
        return [code for code in codes if self.can_see(code)]
