"""Geographies shared by the layers tests: the shipped Đà Nẵng data (loaded once per
session, about half a second) and the small three-level fixture in tests/data/three_level."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.settings import Label, LevelSettings, load_settings, parse_settings
from layers.geography import Geography
from layers.levels import Hierarchy
from tests.fixtures.geodata import three_level_raw

REPO = Path(__file__).resolve().parents[3]
THREE_LEVEL_DIR = REPO / "tests" / "data" / "three_level"
TWO_LEVELS = [
    LevelSettings(name="province", code_length=2, label=Label(vi="Tỉnh", en="Province")),
    LevelSettings(name="commune", code_length=5, label=Label(vi="Xã", en="Commune")),
]
THREE_LEVELS = [
    TWO_LEVELS[0],
    LevelSettings(name="district", code_length=3, label=Label(vi="Huyện", en="District")),
    TWO_LEVELS[1],
]


_three_level_raw = three_level_raw


@pytest.fixture(scope="session")
def danang() -> Geography:
    """The deployment as shipped: config.yaml, 2 levels, scope 48 (Đà Nẵng)."""
    return Geography.from_settings(load_settings(REPO / "config.yaml", environ={}))


@pytest.fixture(scope="session")
def national() -> Hierarchy:
    """The 2025 hierarchy of the whole country (34 provinces, 3,321 communes)."""
    return Hierarchy.from_csv(TWO_LEVELS, REPO / "layers" / "data" / "admin_codes_2025.csv")


@pytest.fixture(scope="session")
def three() -> Hierarchy:
    return Hierarchy.from_csv(THREE_LEVELS, THREE_LEVEL_DIR / "units.csv")


def _make_three_level(**layers: Any) -> Geography:
    return Geography.from_settings(
        parse_settings(_three_level_raw(**layers), environ={}, base_dir=REPO)
    )


@pytest.fixture(scope="session")
def make_three_level() -> Callable[..., Geography]:
    """Build a three-level Geography; keyword arguments override keys of ``layers``."""
    return _make_three_level


@pytest.fixture(scope="module")
def three_level() -> Geography:
    """Province 48 → districts 490, 492 → four square communes; no scope."""
    return _make_three_level()
