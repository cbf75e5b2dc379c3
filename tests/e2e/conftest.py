"""The real dashboard in headless Debian Chromium.

``dashboard_url`` serves ``create_app`` with a real SqliteStore (readings for the Đà Nẵng
communes written through the store's ``write``) and the real Geography of config.yaml,
under waitress on a free 127.0.0.1 port. ``browser`` is /usr/bin/chromium driven by
playwright (never a downloaded browser). ``page`` records every request and every console
error so the tests can assert on them.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dash
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright
from sqlalchemy import Engine

from core.db import make_engine
from core.settings import Settings, load_settings
from core.store import SqliteStore
from core.types import DeadLetter, Point
from dashboard.app import create_app, make_server, stop_server
from ingest.deadletter import SqlDeadLetterStore
from layers.geography import Geography
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS
from tests.fixtures.signin import PASSWORD, TEST_SECRET_ENV, add_user

REPO = Path(__file__).resolve().parents[2]
SERVER_START_S = 10.0
REFRESH_S = 2  # the wall refreshes every 10 s; the tests do not wait that long

# PM2.5 values cycling through every VN_AQI band, with the boundary 25.0 (→ Tốt) among them.
PM25_CYCLE = (12.0, 25.0, 37.4, 65.0, 110.0, 199.9, 320.0)
NO_DATA_UNITS = 3  # the last communes get no readings: drawn grey
STALE_UNITS = 2  # the two before them report only hours ago: drawn faded, "Dữ liệu cũ"
DEAD_LETTERS = 3
HAI_VAN = "20194"
CAM_LE = "20260"


def e2e_settings() -> Settings:
    """config.yaml as shipped, with a short refresh interval."""
    return load_settings(
        REPO / "config.yaml",
        environ={"CITYOPS_DASHBOARD__REFRESH_S": str(REFRESH_S), **TEST_SECRET_ENV},
    )


@dataclass
class Scenario:
    """What the store holds, so tests can assert on what the page must show."""

    settings: Settings
    geography: Geography
    now: datetime
    store: SqliteStore | None = None
    pm25: dict[str, float] = field(default_factory=dict)
    no_data: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    live: str = ""  # the commune the live-refresh test writes to; others leave it alone
    live_tags: dict[str, str] = field(default_factory=dict)


def _readings(geography: Geography, now: datetime) -> tuple[list[Point], Scenario]:
    scenario = Scenario(settings=e2e_settings(), geography=geography, now=now)
    codes = [str(code) for code in geography.boundaries("commune")["code"]]
    with_data = codes[:-NO_DATA_UNITS]
    scenario.no_data = codes[-NO_DATA_UNITS:]
    scenario.stale = with_data[-STALE_UNITS:]
    scenario.live = next(code for code in with_data if code not in (HAI_VAN, CAM_LE))
    points: list[Point] = []
    hai_van_tags: dict[str, str] = {}
    for index, code in enumerate(with_data):
        tags = {"device": f"aq-{index:04d}", "province": "48", "commune": code}
        value = PM25_CYCLE[index % len(PM25_CYCLE)]
        if code == HAI_VAN:
            value = 95.0  # the pollution episode: Xấu
            hai_van_tags = tags
        if code == scenario.live:
            value = 12.0  # Tốt, until the live-refresh test writes a hazardous value
        scenario.pm25[code] = value
        if code == scenario.live:
            scenario.live_tags = tags
        age = timedelta(hours=3) if code in scenario.stale else timedelta(minutes=2)
        points.append(Point("air", tags, {"pm25": value, "pm10": value * 1.6}, now - age))
    # 24 hours of readings from Hải Vân's sensor (the trend), rising into the episode.
    for step in range(95):
        ts = now - timedelta(minutes=15 * (96 - step))
        points.append(Point("air", hai_van_tags, {"pm25": 20.0 + step * 0.8, "pm10": 40.0}, ts))
    # The Cẩm Lệ river gauge.
    gauge = {"device": "wl-camle", "province": "48", "commune": CAM_LE}
    points.append(Point("water", gauge, {"level": 2.1, "alarm": 2.0}, now - timedelta(minutes=5)))
    return points, scenario


@pytest.fixture(scope="session")
def scenario_and_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scenario, str]]:
    settings = e2e_settings()
    geography = Geography.from_settings(settings)
    folder = tmp_path_factory.mktemp("dashboard")
    store = SqliteStore(folder / "timeseries.sqlite")
    points, scenario = _readings(geography, datetime.now(UTC))
    store.write(points)
    scenario.store = store
    engine = make_engine(f"sqlite:///{folder / 'state.sqlite'}")
    dead_letters = SqlDeadLetterStore(engine)
    for number in range(DEAD_LETTERS):
        dead_letters.put(
            DeadLetter(scenario.now, f"city/air/bad-{number}", b"{not json", "payload is not JSON")
        )
    # No device layer here (its markers would sit on the communes the tests hover);
    # tests/e2e/test_drilldown.py draws devices.
    add_e2e_users(engine)
    app = create_app(
        settings, store, geography, dead_letters=dead_letters, devices=list, state_engine=engine
    )
    with serving(app) as url:
        yield scenario, url
    store.close()
    engine.dispose()


# The users of the e2e servers: an admin, and a ward's officer who may see Hải Vân only.
OFFICER = "hai-van"


def add_e2e_users(engine: Engine) -> None:
    add_user(engine, "admin")
    add_user(engine, OFFICER, "operator", [HAI_VAN])


def goto_signed_in(page: Page, url: str, username: str = "admin") -> None:
    """Open ``url``; on the sign-in page, sign in as ``username`` (the real form) and
    land on ``url``."""
    page.goto(url)
    if "/login" not in page.url:
        return
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda current: "/login" not in current)


@contextmanager
def serving(app: dash.Dash) -> Iterator[str]:
    """Serve ``app`` under waitress on a free 127.0.0.1 port; its base URL."""
    server = make_server(app, "127.0.0.1", 0)
    port = int(server.effective_port)  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, name="dashboard-e2e", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the dashboard did not answer on 127.0.0.1:{port} in {SERVER_START_S} s"
                )
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(server)
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def scenario(scenario_and_url: tuple[Scenario, str]) -> Scenario:
    return scenario_and_url[0]


@pytest.fixture(scope="session")
def dashboard_url(scenario_and_url: tuple[Scenario, str]) -> str:
    return scenario_and_url[1]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        # precise memory figures: the wall test reads the JS heap over many beats
        args = [*CHROMIUM_ARGS, "--enable-precise-memory-info"]
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield chromium
        chromium.close()


@dataclass
class PageLog:
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


def open_page(browser: Browser, log: PageLog, width: int = 1920, height: int = 1080) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(20_000)

    def on_request(request: Request) -> None:
        log.requests.append(request.url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            log.console_errors.append(f"{message.text} @ {message.location}")

    def on_page_error(error: Any) -> None:
        log.console_errors.append(f"page error: {error}")

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return page


@pytest.fixture
def page(browser: Browser, page_log: PageLog) -> Iterator[Page]:
    opened = open_page(browser, page_log)
    yield opened
    opened.context.close()
