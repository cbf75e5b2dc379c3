"""The drill-down in headless Chromium on the national 2025 layers: the country's 34
provinces → click Đà Nẵng → its 94 communes with the devices drawn by state → click Phường
Hải Vân → its own URL and panel → back up by the breadcrumb to the country; a link opens a
place directly; the unit search finds "hoa khanh" with or without accents."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from core.db import make_engine
from core.settings import load_settings
from core.store import SqliteStore
from core.types import Point
from dashboard.app import create_app
from dashboard.views.devices import STATE_COLOURS
from layers.geography import Geography
from layers.registry import Device, place_device
from tests.e2e.conftest import REFRESH_S, PageLog, add_e2e_users, goto_signed_in, serving
from tests.e2e.test_dashboard import SCREENSHOTS, assert_local_only, click_commune, rgb
from tests.fixtures.signin import TEST_SECRET_ENV

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NATIONAL = {
    "CITYOPS_LAYERS__SCOPE": "",
    "CITYOPS_LAYERS__MAP_LEVEL": "province",
    "CITYOPS_LAYERS__BOUNDARIES__COMMUNE": "layers/data/vn_communes_2025.geojson",
    "CITYOPS_DASHBOARD__REFRESH_S": str(REFRESH_S),
}
HAI_VAN = "20194"
# device, lon, lat, pm25 (None: registered, never heard from)
DEVICES = (
    ("aq-hv", 108.1503, 16.1629, 12.0),  # Hải Vân: Tốt → ok
    ("aq-cl", 108.2073, 16.0143, 110.0),  # Cẩm Lệ: above the critical rule (80) → alarm
    ("aq-new", 108.2200, 16.0600, None),  # → offline
    ("aq-hn", 105.8342, 21.0278, 60.0),  # Hà Nội, Ba Đình
)
PATHS = "#map path.choroplethlocation"


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SqliteStore]]:
    settings = load_settings(REPO / "config.yaml", environ=NATIONAL | TEST_SECRET_ENV)
    geography = Geography.from_settings(settings)
    store = SqliteStore(tmp_path_factory.mktemp("national") / "timeseries.sqlite")
    registry: list[Device] = []
    points = []
    at = datetime.now(UTC) - timedelta(minutes=3)
    for device_id, lon, lat, pm25 in DEVICES:
        device = place_device(device_id, "air", f"Trạm {device_id}", lon, lat, geography)
        registry.append(device)
        if pm25 is not None:
            tags = {"device": device_id, **device.tags}
            points.append(Point("air", tags, {"pm25": pm25}, at))
    store.write(points)
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('state') / 'state.sqlite'}")
    add_e2e_users(engine)
    app = create_app(settings, store, geography, devices=lambda: registry, state_engine=engine)
    with serving(app) as url:
        yield url, store
    store.close()
    engine.dispose()


@pytest.fixture(scope="module")
def national_url(national: tuple[str, SqliteStore]) -> str:
    return national[0]


def drawn_codes(page: Page) -> list[str]:
    codes: list[str] = page.evaluate(
        f"() => [...document.querySelectorAll('{PATHS}')].map(p => p.__data__.loc)"
    )
    return codes


def wait_for_units(page: Page, count: int, code: str) -> None:
    """The map shows ``count`` units, ``code`` among them (the old view is gone)."""
    page.wait_for_function(
        """([selector, count, code]) => {
            const paths = [...document.querySelectorAll(selector)];
            return paths.length === count && paths.some(p => p.__data__.loc === code);
        }""",
        arg=[PATHS, count, code],
    )


def test_country_to_commune_and_back_by_the_breadcrumb(
    page: Page, page_log: PageLog, national_url: str
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    goto_signed_in(page, national_url + "/")
    wait_for_units(page, 34, "48")
    expect(page.locator("#breadcrumb li")).to_have_text(["Việt Nam"])
    page.screenshot(path=str(SCREENSHOTS / "drilldown-1-country.png"))

    # Đà Nẵng: the mean of its two reporting devices, (12 + 110) / 2 = 61 → Kém (orange).
    fills = page.evaluate(
        f"() => Object.fromEntries([...document.querySelectorAll('{PATHS}')]"
        ".map(p => [p.__data__.loc, getComputedStyle(p).fill]))"
    )
    assert fills["48"] == rgb("#FF7E00")
    assert fills["01"] == rgb("#FF7E00")  # Hà Nội: 60 → Kém

    click_commune(page, "48")
    expect(page).to_have_url(re.compile(r"/\?place=48&metric=pm25&lang=vi$"))
    wait_for_units(page, 94, HAI_VAN)
    assert "00004" not in drawn_codes(page)  # Hà Nội's communes are not drawn
    expect(page.locator("#breadcrumb li")).to_have_text(["Việt Nam", "Thành phố Đà Nẵng"])
    expect(page.locator(".panel-title")).to_have_text("Thành phố Đà Nẵng")
    # The province's geometry comes by its own versioned URL.
    assert any(re.search(r"/geo/commune/48\.json\?v=[0-9a-f]{16}$", u) for u in page_log.requests)

    # The devices of the city, coloured by state, over the communes.
    markers = page.locator("#map .scattergeo path.point")
    expect(markers).to_have_count(3)
    colours = sorted(markers.evaluate_all("(ps) => ps.map(p => getComputedStyle(p).fill)"))
    expected = sorted(rgb(STATE_COLOURS[s]) for s in ("ok", "alarm", "offline"))
    assert colours == expected
    expect(page.locator(".legend-devices")).to_contain_text("Báo động")
    page.screenshot(path=str(SCREENSHOTS / "drilldown-2-province.png"))

    click_commune(page, HAI_VAN)
    expect(page).to_have_url(re.compile(rf"/\?unit={HAI_VAN}&metric=pm25&lang=vi$"))
    expect(page.locator(".panel-title")).to_have_text("Phường Hải Vân, Thành phố Đà Nẵng")
    expect(page.locator("#breadcrumb li")).to_have_text(
        ["Việt Nam", "Thành phố Đà Nẵng", "Phường Hải Vân"]
    )
    page.screenshot(path=str(SCREENSHOTS / "drilldown-3-commune.png"))

    # Up one step, then to the country, by the breadcrumb; the browser's back button too.
    page.locator("#breadcrumb a", has_text="Thành phố Đà Nẵng").click()
    expect(page).to_have_url(re.compile(r"/\?place=48$"))
    expect(page.locator(".panel-title")).to_have_text("Thành phố Đà Nẵng")
    page.locator("#breadcrumb a", has_text="Việt Nam").click()
    expect(page).to_have_url(re.compile(r"/\?place=$"))
    wait_for_units(page, 34, "48")
    expect(page.locator("#breadcrumb li")).to_have_text(["Việt Nam"])
    page.go_back()
    wait_for_units(page, 94, HAI_VAN)

    assert_local_only(page_log)
    assert page_log.console_errors == []


def test_a_link_opens_the_place_and_search_finds_units(
    page: Page, page_log: PageLog, national_url: str
) -> None:
    goto_signed_in(page, national_url + "/?place=01&lang=en")
    wait_for_units(page, 126, "00004")  # Hà Nội's 126 communes
    expect(page.locator("#breadcrumb li")).to_have_text(["Viet Nam", "Hanoi"])
    expect(page.locator(".panel-title")).to_have_text("Hanoi City")

    page.locator("#lang-select label", has_text="Tiếng Việt").click()
    search = page.locator("#unit-search")
    search.fill("hoa khanh")
    hits = page.locator("#unit-search-results .search-hit")
    expect(hits.first).to_have_text("Phường Hoà Khánh, Thành phố Đà Nẵng")
    expect(hits).to_contain_text(["Xã Hoà Khánh, Tỉnh Tây Ninh"])
    # The other spelling of the same name (same results: wait for its answer).
    with page.expect_response(
        lambda r: "_dash-update-component" in r.url and "Hòa" in (r.request.post_data or "")
    ):
        search.fill("Hòa Khánh")
    expect(hits.first).to_have_text("Phường Hoà Khánh, Thành phố Đà Nẵng")
    hits.first.click()
    expect(page).to_have_url(re.compile(r"/\?unit=20200$"))
    wait_for_units(page, 94, "20200")
    expect(page.locator(".panel-title")).to_have_text("Phường Hoà Khánh, Thành phố Đà Nẵng")
    expect(hits).to_have_count(0)  # the results close after the jump
    assert page_log.console_errors == []


def test_a_device_changing_state_is_recoloured_in_place(
    page: Page, page_log: PageLog, national: tuple[str, SqliteStore]
) -> None:
    url, store = national
    goto_signed_in(page, url + "/?place=48")
    wait_for_units(page, 94, HAI_VAN)
    markers = page.locator("#map .scattergeo path.point")
    expect(markers).to_have_count(3)
    fills = "(ps) => ps.map(p => getComputedStyle(p).fill).sort()"
    before = markers.evaluate_all(fills)
    # aq-hv (ok) reads 200 µg/m³: above the critical rule, so alarm, on the next refresh.
    tags = {"device": "aq-hv", "province": "48", "commune": HAI_VAN}
    store.write([Point("air", tags, {"pm25": 200.0}, datetime.now(UTC))])
    alarm = rgb(STATE_COLOURS["alarm"])
    page.wait_for_function(
        """(alarm) => [...document.querySelectorAll('#map .scattergeo path.point')]
              .filter(p => getComputedStyle(p).fill === alarm).length === 2""",
        arg=alarm,
        timeout=(REFRESH_S * 4 + 10) * 1000,
    )
    after = markers.evaluate_all(fills)
    assert before.count(alarm) == 1
    assert after.count(alarm) == 2
    assert rgb(STATE_COLOURS["ok"]) not in after
    assert page_log.console_errors == []
