"""The dashboard in headless Chromium: the commune map, the unit panel, the URL preselect,
live recolouring, air-gapped loading and wall-screen screenshots."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from core.settings import MetricSettings
from core.types import Point
from dashboard.views.bands import NO_DATA_COLOUR, band_colour, band_scale
from dashboard.views.map import STALE_OPACITY
from tests.e2e.conftest import (
    CAM_LE,
    DEAD_LETTERS,
    HAI_VAN,
    OFFICER,
    REFRESH_S,
    PageLog,
    Scenario,
    goto_signed_in,
    open_page,
)

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
COMMUNES = 94

_PATHS_JS = """() => [...document.querySelectorAll('#map path.choroplethlocation')].map(p => {
    const box = p.getBoundingClientRect();
    const style = getComputedStyle(p);
    return {code: p.__data__ && p.__data__.loc, fill: style.fill,
            opacity: parseFloat(style.opacity), width: box.width, height: box.height};
})"""

# A point inside the drawn commune (not just its bounding box), in page coordinates.
_INSIDE_JS = """(code) => {
    const path = [...document.querySelectorAll('#map path.choroplethlocation')]
        .find(p => p.__data__ && p.__data__.loc === code);
    if (!path) return null;
    const box = path.getBoundingClientRect();
    const toPath = path.getScreenCTM().inverse();
    for (let i = 1; i < 24; i++) {
        for (let j = 1; j < 24; j++) {
            const x = box.x + box.width * i / 24, y = box.y + box.height * j / 24;
            if (path.isPointInFill(new DOMPoint(x, y).matrixTransform(toPath))) return [x, y];
        }
    }
    return null;
}"""


# Up to 40 points inside the drawn commune.
_INSIDE_ALL_JS = """(code) => {
    const path = [...document.querySelectorAll('#map path.choroplethlocation')]
        .find(p => p.__data__ && p.__data__.loc === code);
    const box = path.getBoundingClientRect();
    const toPath = path.getScreenCTM().inverse();
    const points = [];
    for (let i = 1; i < 12; i++) {
        for (let j = 1; j < 12; j++) {
            const x = box.x + box.width * i / 12, y = box.y + box.height * j / 12;
            if (path.isPointInFill(new DOMPoint(x, y).matrixTransform(toPath))) points.push([x, y]);
        }
    }
    return points.slice(0, 40);
}"""


def rgb(hex_colour: str) -> str:
    value = hex_colour.lstrip("#")
    red, green, blue = (int(value[index : index + 2], 16) for index in (0, 2, 4))
    return f"rgb({red}, {green}, {blue})"


def wait_for_map(page: Page) -> list[dict[str, Any]]:
    page.wait_for_function(
        f"document.querySelectorAll('#map path.choroplethlocation').length >= {COMMUNES}"
    )
    # The first paint may still be the placeholder colours; wait until a data fill is on.
    page.wait_for_function(
        """() => [...document.querySelectorAll('#map path.choroplethlocation')]
              .some(p => getComputedStyle(p).fill !== 'rgb(0, 0, 0)')"""
    )
    paths: list[dict[str, Any]] = page.evaluate(_PATHS_JS)
    return paths


def click_commune(page: Page, code: str) -> None:
    point = page.evaluate(_INSIDE_JS, code)
    assert point is not None, f"commune {code} has no visible area on the map"
    page.mouse.click(point[0], point[1])


def assert_local_only(log: PageLog) -> None:
    hosts = sorted({urlsplit(url).hostname or urlsplit(url).scheme for url in log.requests})
    assert hosts == ["127.0.0.1"], f"requests left the server: {hosts}"


def test_map_draws_every_commune_in_its_band_colour(
    page: Page, page_log: PageLog, dashboard_url: str, scenario: Scenario
) -> None:
    goto_signed_in(page, dashboard_url + "/")
    paths = wait_for_map(page)
    pm25: MetricSettings = scenario.settings.metrics["pm25"]
    scale = band_scale(pm25)

    codes = [str(code) for code in scenario.geography.boundaries("commune")["code"]]
    assert sorted(path["code"] for path in paths) == sorted(codes)
    by_code = {path["code"]: path for path in paths}
    for code, value in scenario.pm25.items():
        if code == scenario.live:
            continue
        assert by_code[code]["fill"] == rgb(band_colour(scale, value)), (code, value)
        expected_opacity = STALE_OPACITY if code in scenario.stale else 1.0
        assert by_code[code]["opacity"] == pytest.approx(expected_opacity, abs=0.01), code
    for code in scenario.no_data:
        assert by_code[code]["fill"] == rgb(NO_DATA_COLOUR), code
    # 25.0 µg/m³ is the top of "Tốt": green, not yellow.
    boundary = [code for code, value in scenario.pm25.items() if value == 25.0]
    assert boundary
    assert {by_code[code]["fill"] for code in boundary} == {rgb("#00E400")}

    # Rings wound for d3-geo: every commune is a small shape, none covers the whole map.
    area = page.locator("#map").bounding_box()
    assert area is not None
    largest = max(path["width"] * path["height"] for path in paths)
    assert largest < 0.25 * area["width"] * area["height"]

    expect(page.locator(".legend-row").first).to_contain_text("Tốt")
    expect(page.locator(".legend-row").first).to_contain_text("0–25 µg/m³")
    expect(page.locator("#updated-at")).to_contain_text("Cập nhật lúc")
    expect(page.locator("#dead-letter-badge")).to_have_text(f"Tin lỗi: {DEAD_LETTERS}")

    assert_local_only(page_log)
    paths_requested = {urlsplit(url).path for url in page_log.requests}
    assert "/geo/commune.json" in paths_requested
    # the page asks for the versioned (immutable) URL, never the bare one
    geometry = [urlsplit(url) for url in page_log.requests if "/geo/" in url]
    assert geometry
    assert all(re.fullmatch(r"v=[0-9a-f]{16}", part.query) for part in geometry), geometry
    assert "/assets/topojson/world_110m.json" in paths_requested  # not cdn.plot.ly
    # plotly.js is the vendored geo bundle; plotly's full bundle is never fetched.
    assert "/_cityops/plotly-geo.min.js" in paths_requested
    assert not [path for path in paths_requested if path.endswith("plotly.min.js")]
    assert page_log.console_errors == []


def test_clicking_a_commune_opens_its_panel(
    page: Page, page_log: PageLog, dashboard_url: str
) -> None:
    goto_signed_in(page, dashboard_url + "/")
    wait_for_map(page)
    # Nothing picked yet: the panel of the city the map shows, rolled up from its devices.
    expect(page.locator(".panel-title")).to_have_text("Thành phố Đà Nẵng")
    expect(page.locator("#breadcrumb")).to_have_text("Thành phố Đà Nẵng")

    point = page.evaluate(_INSIDE_JS, HAI_VAN)
    page.mouse.move(point[0], point[1])
    hover = page.locator("#map .hoverlayer .hovertext")
    expect(hover).to_contain_text("Phường Hải Vân")
    expect(hover).to_contain_text("95,0 µg/m³")
    expect(hover).to_contain_text("Xấu")
    expect(hover).to_contain_text("lúc ")

    click_commune(page, HAI_VAN)

    # The commune's own URL (a link to it opens the same screen), and the way back up.
    expect(page).to_have_url(re.compile(rf"/\?unit={HAI_VAN}&metric=pm25&lang=vi$"))
    expect(page.locator(".panel-title")).to_have_text("Phường Hải Vân, Thành phố Đà Nẵng")
    expect(page.locator("#breadcrumb li")).to_have_text(["Thành phố Đà Nẵng", "Phường Hải Vân"])
    pm25_card = page.locator('.kpi-card[data-metric="pm25"]')
    expect(pm25_card.locator(".kpi-value")).to_have_text("95,0µg/m³")
    expect(pm25_card).to_contain_text("Xấu")
    water_card = page.locator('.kpi-card[data-metric="water_level"]')
    expect(water_card).to_contain_text("Không có dữ liệu")
    # The trend of the last 24 hours, drawn over the band colours.
    expect(page.locator("#unit-trend .scatterlayer path.js-line")).to_have_count(1)
    assert page.locator("#unit-trend .layer-below path").count() >= 2
    # Over the last 7 days: the cards say what they aggregate.
    page.locator("#overview-range label", has_text="7 ngày").click()
    expect(pm25_card).to_contain_text("Trung bình 7 ngày qua")
    expect(page.locator(".unit-panel")).to_contain_text("Bụi mịn PM2.5 (µg/m³), 7 ngày qua")
    # The link to the unit's own page.
    link = page.locator(".unit-page-link")
    expect(link).to_have_attribute("href", f"/area/commune/{HAI_VAN}?metric=pm25&lang=vi")
    # The clicked commune is outlined on the map.
    page.wait_for_function(
        """(code) => [...document.querySelectorAll('#map path.choroplethlocation')].some(
              p => p.__data__.loc === code && parseFloat(getComputedStyle(p).strokeWidth) > 2)""",
        arg=HAI_VAN,
    )
    assert_local_only(page_log)
    assert page_log.console_errors == []


def test_url_preselects_unit_and_metric(
    page: Page, page_log: PageLog, dashboard_url: str, scenario: Scenario
) -> None:
    goto_signed_in(page, f"{dashboard_url}/?unit={CAM_LE}&metric=flood_alarm")
    paths = wait_for_map(page)

    expect(page.locator(".panel-title")).to_have_text("Phường Cẩm Lệ, Thành phố Đà Nẵng")
    water_card = page.locator('.kpi-card[data-metric="water_level"]')
    expect(water_card.locator(".kpi-value")).to_have_text("2,10m")
    expect(water_card.locator(".kpi-band")).to_have_count(0)  # a stage has no shared bands
    alarm_card = page.locator('.kpi-card[data-metric="flood_alarm"]')
    expect(alarm_card).to_contain_text("Báo động II")
    expect(page.locator('#metric-select input[value="flood_alarm"]')).to_be_checked()
    expect(page.locator(".legend-title")).to_have_text("Cấp báo động lũ")
    by_code = {path["code"]: path for path in paths}
    assert by_code[CAM_LE]["fill"] == rgb("#FF7E00")  # alarm 2: báo động II
    assert by_code[HAI_VAN]["fill"] == rgb(NO_DATA_COLOUR)  # no river gauge there
    assert page_log.console_errors == []


def test_unit_link_and_english(page: Page, page_log: PageLog, dashboard_url: str) -> None:
    goto_signed_in(page, f"{dashboard_url}/?unit={HAI_VAN}&lang=en")
    wait_for_map(page)
    expect(page.locator(".panel-title")).to_have_text("Hai Van Ward, Da Nang City")
    expect(page.locator("#site-title")).to_have_text("Da Nang Intelligent Operations Centre")
    expect(page.locator('.kpi-card[data-metric="pm25"] .kpi-number')).to_have_text("95.0")
    expect(page.locator(".legend-row").first).to_contain_text("Good")

    page.locator("#lang-select label", has_text="Tiếng Việt").click()
    expect(page.locator(".panel-title")).to_have_text("Phường Hải Vân, Thành phố Đà Nẵng")
    expect(page.locator(".legend-row").first).to_contain_text("Tốt")
    assert page_log.console_errors == []


def test_units_without_data_say_so_on_hover(
    page: Page, dashboard_url: str, scenario: Scenario
) -> None:
    goto_signed_in(page, dashboard_url + "/")
    wait_for_map(page)
    for code, expected in (
        (scenario.no_data[0], "Không có dữ liệu"),
        (scenario.stale[0], "Dữ liệu cũ"),
    ):
        point = page.evaluate(_INSIDE_JS, code)
        assert point is not None, code
        page.mouse.move(point[0], point[1])
        expect(page.locator("#map .hoverlayer .hovertext")).to_contain_text(expected)


def test_unknown_unit_is_said_in_words(page: Page, page_log: PageLog, dashboard_url: str) -> None:
    goto_signed_in(page, f"{dashboard_url}/?unit=99999")
    wait_for_map(page)
    expect(page.locator(".panel-warning")).to_have_text("Không có đơn vị hành chính mã 99999")
    assert page_log.console_errors == []


def test_new_reading_recolours_the_map_without_reload(
    page: Page, page_log: PageLog, dashboard_url: str, scenario: Scenario
) -> None:
    goto_signed_in(page, dashboard_url + "/")
    paths = wait_for_map(page)
    live = scenario.live
    before = {path["code"]: path["fill"] for path in paths}[live]
    assert before == rgb("#00E400")
    callback_bodies: list[bytes] = []

    def record(route: Route) -> None:
        response = route.fetch()
        callback_bodies.append(response.body())
        route.fulfill(response=response)

    page.route("**/_dash-update-component*", record)

    assert scenario.store is not None
    scenario.store.write(
        [Point("air", scenario.live_tags, {"pm25": 320.0, "pm10": 400.0}, datetime.now(UTC))]
    )

    page.wait_for_function(
        """([code, fill]) => [...document.querySelectorAll('#map path.choroplethlocation')]
              .some(p => p.__data__.loc === code && getComputedStyle(p).fill === fill)""",
        arg=[live, rgb("#7E0023")],
        timeout=(REFRESH_S * 4 + 10) * 1000,
    )
    # The refresh carried the new colours for the browser to apply (assets/map.js), not a
    # new figure with the geometry, and the figure on screen was not replaced.
    recoloured = [body for body in callback_bodies if b'"map-update"' in body and b"320.0" in body]
    assert recoloured
    assert all(b'"figure"' not in body for body in recoloured)
    assert all(b"FeatureCollection" not in body for body in callback_bodies)
    # Hover and the values plotly.js keeps follow the new reading. (plotly.js picks the
    # hovered unit from its own geometry: try points inside the path until it is this one.)
    shown = ""
    for x, y in page.evaluate(_INSIDE_ALL_JS, live):
        page.mouse.move(x, y)
        page.wait_for_timeout(50)
        shown = page.evaluate(
            """() => [...document.querySelectorAll('#map .hoverlayer .hovertext')]
                  .map(label => label.textContent).join(' ')"""
        )
        if "320,0 µg/m³" in shown:
            break
    assert "320,0 µg/m³" in shown, shown
    assert "Nguy hại" in shown, shown
    assert page.evaluate(
        """(code) => [...document.querySelectorAll('#map path.choroplethlocation')]
              .find(p => p.__data__.loc === code).__data__.z""",
        live,
    ) == pytest.approx(320.0)
    # A refresh may be in flight: closing the page must not fail the recorder.
    page.unroute_all(behavior="ignoreErrors")
    assert page_log.console_errors == []


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (3840, 2160)])
def test_wall_screenshots(
    browser: Browser, page_log: PageLog, dashboard_url: str, width: int, height: int
) -> None:
    page = open_page(browser, page_log, width, height)
    try:
        goto_signed_in(page, f"{dashboard_url}/?unit={HAI_VAN}")
        wait_for_map(page)
        expect(page.locator("#unit-trend .scatterlayer path.js-line")).to_have_count(1)
        # The shipped font is loaded (Vietnamese glyphs do not depend on the machine's fonts).
        assert page.evaluate("document.fonts.check('700 20px \"Noto Sans\"', 'Đặc khu Hải Vân')")
        assert page.evaluate(
            "[...document.fonts].some(f => f.family.includes('Noto Sans') && f.status === 'loaded')"
        )
        # Text scales with the screen: the title is about twice as large on 4K.
        title_px = float(
            page.evaluate(
                "parseFloat(getComputedStyle(document.querySelector('#site-title')).fontSize)"
            )
        )
        assert title_px > (50 if width >= 3840 else 25)
        page.wait_for_timeout(300)  # let the last hover/transition settle
        SCREENSHOTS.mkdir(exist_ok=True)
        target = SCREENSHOTS / f"dashboard-{width}x{height}.png"
        page.screenshot(path=str(target))
        assert target.stat().st_size > 50_000
        assert_local_only(page_log)
        assert page_log.console_errors == []
    finally:
        page.context.close()


def test_a_ward_officer_sees_only_their_ward(
    page: Page, page_log: PageLog, dashboard_url: str, scenario: Scenario
) -> None:
    """Signed in as the officer of Hải Vân: the map opens on the city with Hải Vân's panel,
    every other commune drawn without data; other communes' panels, unit pages and alerts
    are out of reach, even by typing their URL."""
    goto_signed_in(page, dashboard_url + "/", username=OFFICER)
    paths = wait_for_map(page)
    expect(page.locator(".panel-title")).to_have_text("Phường Hải Vân, Thành phố Đà Nẵng")
    expect(page.locator(".user-name")).to_have_text("hai-van · trực vận hành")
    by_code = {path["code"]: path for path in paths}
    assert by_code[HAI_VAN]["fill"] == rgb("#FF0000")  # 95 µg/m³: Xấu
    coloured = [code for code, path in by_code.items() if path["fill"] != rgb(NO_DATA_COLOUR)]
    assert coloured == [HAI_VAN]
    # Operators (and admins) see the pipeline's health.
    expect(page.locator('#nav-links a[href="/pipeline/"]')).to_have_count(1)

    page.goto(f"{dashboard_url}/?unit={CAM_LE}")
    wait_for_map(page)
    # A unit out of reach opens the officer's own instead.
    expect(page.locator(".panel-title")).to_have_text("Phường Hải Vân, Thành phố Đà Nẵng")
    page.goto(f"{dashboard_url}/area/commune/{CAM_LE}")
    expect(page.locator(".unit-page")).to_contain_text(f"Không có đơn vị hành chính mã {CAM_LE}")
    page.screenshot(path=str(SCREENSHOTS / "officer-unit-page-refused.png"))
    assert page_log.console_errors == []
