"""Administrative geography: hierarchy as data, boundaries, point → unit, map geometry."""

from layers.geography import Geography
from layers.levels import Hierarchy, Unit
from layers.locate import Locator
from layers.registry import Device

__all__ = ["Device", "Geography", "Hierarchy", "Locator", "Unit"]
