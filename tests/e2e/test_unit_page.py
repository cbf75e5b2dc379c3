"""A unit's page in headless Chromium: KPI cards, the ranking (sorted by a click), the
range and metric selectors kept in the URL, a commune officer who cannot open another
commune; nothing fetched from outside; screenshots at 1920×1080 in screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import dashboard.app as app_module
from core.db import make_engine
from core.store import SqliteStore
from core.types import Point
from dashboard.context import DashboardContext
from dashboard.unit_page import mount_unit_page
from layers.geography import Geography
from layers.registry import Device
from tests.e2e.conftest import (
    OFFICER,
    PageLog,
    add_e2e_users,
    e2e_settings,
    goto_signed_in,
    serving,
)

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
FIRST_DRAW_MS = 20_000  # a cold page loads plotly.js and the geometry first
HAI_VAN = {"province": "48", "commune": "20194"}
CAM_LE = {"province": "48", "commune": "20260"}
DEVICES = [
    Device("aq-hv-1", "air", "Trường Tiểu học Hải Vân", 108.13, 16.12, "20194", HAI_VAN),
    Device("aq-hv-2", "air", "Cảng Liên Chiểu", 108.14, 16.11, "20194", HAI_VAN),
    Device("aq-cl-1", "air", "Chợ Cẩm Lệ", 108.20, 16.01, "20260", CAM_LE),
]


@pytest.fixture(scope="module")
def unit_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = e2e_settings()
    geography = Geography.from_settings(settings)
    folder = tmp_path_factory.mktemp("unit-page")
    store = SqliteStore(folder / "timeseries.sqlite")
    now = datetime.now(UTC)
    points = []
    for hour in range(24 * 8):  # a week and a day, hourly
        at = now - timedelta(hours=hour, minutes=5)
        points.append(
            Point("air", {"device": "aq-hv-1", **HAI_VAN}, {"pm25": 30.0, "pm10": 50.0}, at)
        )
        points.append(
            Point("air", {"device": "aq-hv-2", **HAI_VAN}, {"pm25": 90.0, "pm10": 50.0}, at)
        )
    points.append(Point("air", {"device": "aq-cl-1", **CAM_LE}, {"pm25": 12.0, "pm10": 20.0}, now))
    store.write(points)
    engine = make_engine(f"sqlite:///{folder / 'state.sqlite'}")
    add_e2e_users(engine)
    seen: list[DashboardContext] = []
    real = app_module.mount_exports
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            app_module, "mount_exports", lambda ctx, *args: (seen.append(ctx), real(ctx, *args))
        )
        app = app_module.create_app(
            settings, store, geography, devices=lambda: DEVICES, state_engine=engine
        )
    if not any(rule.rule.startswith("/area/") for rule in app.server.url_map.iter_rules()):
        mount_unit_page(app, seen[0])  # until dashboard/app.py mounts it itself
    with serving(app) as url:
        yield url
    store.close()
    engine.dispose()


def test_a_commune_officer_reads_their_commune(
    page: Page, page_log: PageLog, unit_url: str
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    goto_signed_in(page, unit_url + "/area/commune/20194", OFFICER)
    expect(page.locator(".unit-title")).to_have_text("Phường Hải Vân", timeout=FIRST_DRAW_MS)
    pm25 = page.locator('.kpi-card[data-metric="pm25"]')
    expect(pm25.locator(".kpi-number")).to_have_text("60,0")  # 30 and 90
    expect(pm25).to_contain_text("Kém")
    expect(pm25).to_contain_text("so với 24 giờ trước: 60,0 µg/m³")
    # The devices of the commune, ranked, best first; the other commune's is not there.
    rows = page.locator("#unit-ranking-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-code", "aq-hv-1")
    expect(rows.nth(0)).to_have_attribute("data-mark", "best")
    # The province is not theirs: its crumb is text, not a link.
    expect(page.locator(".breadcrumb a")).to_have_count(0)
    expect(page.locator(".unit-map-graph .choropleth")).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / "unit-commune-1920x1080-vi.png"), full_page=True)

    # A week, chosen in the page, lands in the URL; a reload keeps it.
    page.locator("#unit-range label", has_text="7 ngày").click()
    page.wait_for_url("**range=7d**")
    expect(page.locator("#unit-status")).to_contain_text("7 ngày qua")
    expect(pm25).to_contain_text("Trung bình 7 ngày qua")
    page.reload()
    expect(page.locator("#unit-status")).to_contain_text("7 ngày qua")
    expect(page.locator("#unit-range input:checked")).to_have_value("7d")

    # Sorting by a click: worst first.
    value_header = page.locator("#unit-ranking-table thead th", has_text="Bụi mịn PM2.5")
    value_header.locator("a").click()
    page.wait_for_url("**sort=value**")
    expect(value_header).to_have_attribute("aria-sort", "ascending")
    value_header.locator("a").click()
    page.wait_for_url("**sort=-value**")
    expect(value_header).to_have_attribute("aria-sort", "descending")
    expect(rows.nth(0)).to_have_attribute("data-code", "aq-hv-2")

    # Another commune: as if it did not exist.
    page.goto(unit_url + "/area/commune/20260")
    expect(page.locator("#unit-head")).to_have_text(
        "Không có đơn vị hành chính mã 20260", timeout=FIRST_DRAW_MS
    )
    expect(page.locator(".kpi-card")).to_have_count(0)
    external = [url for url in page_log.requests if not url.startswith(unit_url)]
    assert external == []
    assert page_log.console_errors == []


def test_an_admin_walks_from_the_province_to_a_commune(
    page: Page, page_log: PageLog, unit_url: str
) -> None:
    goto_signed_in(page, unit_url + "/area/province/48?lang=en")
    expect(page.locator(".unit-title")).to_have_text("Da Nang", timeout=FIRST_DRAW_MS)
    rows = page.locator("#unit-ranking-table tbody tr")
    expect(rows.nth(0)).to_have_attribute("data-code", "20260")  # 12 µg/m³: the cleanest
    expect(rows.nth(0)).to_contain_text("Best")
    expect(rows.nth(1)).to_have_attribute("data-code", "20194")
    expect(rows.nth(1)).to_contain_text("Worst")
    page.screenshot(path=str(SCREENSHOTS / "unit-province-1920x1080-en.png"), full_page=True)
    rows.nth(1).locator("a").click()
    page.wait_for_url("**/area/commune/20194?**")
    expect(page.locator(".unit-title")).to_have_text("Hai Van")
    expect(page.locator(".breadcrumb a")).to_have_text("Da Nang")
    assert page_log.console_errors == []
