"""Shared inputs of the dashboard unit tests: the shipped metric catalogue and geography."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings, load_settings
from layers.geography import Geography
from tests.fixtures.signin import TEST_SECRET_ENV

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)


@pytest.fixture(scope="session")
def geography(settings: Settings) -> Geography:
    return Geography.from_settings(settings)
