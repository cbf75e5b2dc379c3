"""Shared test setup. Server fixtures live in tests/fixtures/ (one module per server):
each probes for the program, starts a private instance on a free loopback port with a
temporary directory, waits until it answers, and stops it at the end."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.influxd",
    "tests.fixtures.mosquitto",
    "tests.fixtures.smtp",
    "tests.fixtures.postgres",
    "tests.fixtures.redis",
]

REPO = Path(__file__).resolve().parent.parent


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 2, 1, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def repo_dir() -> Path:
    return REPO


@pytest.fixture(autouse=True)
def fail_on_logged_exception(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """A callback that swallowed an exception and logged it with ``log.exception`` fails the
    test, unless the test is marked ``@pytest.mark.allow_logged_exceptions``."""
    yield
    if request.node.get_closest_marker("allow_logged_exceptions"):
        return
    swallowed = [
        record
        for record in caplog.get_records("call")
        if record.name.startswith("cityops") and record.exc_info and record.levelno >= logging.ERROR
    ]
    if swallowed:
        first = swallowed[0]
        pytest.fail(
            f"exception logged by {first.name}: {first.getMessage()} ({first.exc_info[1]!r})"
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_logged_exceptions: the test expects exceptions to be logged"
    )
    logging.getLogger("cityops").setLevel(logging.DEBUG)
