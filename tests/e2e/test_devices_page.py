"""The devices page in headless Chromium: an operator of Hải Vân sees the ward's devices
worst first with the counts, and not Cẩm Lệ's; an admin filters through the URL and the
dropdowns (the URL follows), reads the unregistered devices and how to register them, and
switches to English. Its own server (a real SqliteStore and state database); screenshots
at 1920×1080 in screenshots/."""

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
from dashboard.devices_page import mount_devices_page
from ingest.unassigned import SqlUnassignedDevices
from layers.geography import Geography
from layers.registry import Device
from tests.e2e.conftest import (
    CAM_LE,
    HAI_VAN,
    PageLog,
    e2e_settings,
    goto_signed_in,
    serving,
)
from tests.fixtures.signin import add_user

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture(scope="module")
def devices_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = e2e_settings()
    geography = Geography.from_settings(settings)
    hierarchy = geography.hierarchy
    folder = tmp_path_factory.mktemp("devices")
    store = SqliteStore(folder / "timeseries.sqlite")
    engine = make_engine(f"sqlite:///{folder / 'state.sqlite'}")
    add_user(engine, "admin")
    add_user(engine, "hai-van", "operator", [HAI_VAN])
    hai_van, cam_le = hierarchy.level_tags(HAI_VAN), hierarchy.level_tags(CAM_LE)
    devices = [
        Device("aq-hv-1", "air", "Trạm Hải Vân 1", 108.1, 16.1, HAI_VAN, hai_van),
        Device("aq-hv-2", "air", "Trạm Hải Vân 2", 108.1, 16.1, HAI_VAN, hai_van),
        Device("aq-cl-1", "air", "Trạm Cẩm Lệ 1", 108.2, 16.0, CAM_LE, cam_le),
        Device("wl-cl-1", "water", "Trạm thủy văn Cẩm Lệ", 108.2, 16.0, CAM_LE, cam_le),
    ]
    now = datetime.now(UTC)

    def point(
        kind: str, device_id: str, tags: dict[str, str], ago_s: float, **fields: float
    ) -> Point:
        return Point(kind, {"device": device_id, **tags}, fields, now - timedelta(seconds=ago_s))

    unassigned = {level: "unassigned" for level in hierarchy.levels}
    store.write(
        [
            point("air", "aq-hv-1", hai_van, 20, pm25=35.2, pm10=60.0),
            point("air", "aq-hv-2", hai_van, 7200, pm25=12.0),
            point("air", "aq-cl-1", cam_le, 10, pm25=131.0),
            point("water", "wl-cl-1", cam_le, 1000, level=2.15, alarm=2.0),
            point("air", "aq-moi", hai_van, 30, pm25=9.0),
            point("air", "bus-7", unassigned, 40, pm25=9.0),
        ]
    )
    SqlUnassignedDevices(engine).seen("bus-7", "air", "no_position", now - timedelta(seconds=40))
    seen: list[DashboardContext] = []
    real = app_module.mount_exports
    patch = pytest.MonkeyPatch()
    patch.setattr(
        app_module, "mount_exports", lambda ctx, *args: (seen.append(ctx), real(ctx, *args))
    )
    try:
        app = app_module.create_app(
            settings, store, geography, devices=lambda: devices, state_engine=engine
        )
    finally:
        patch.undo()
    if not any(rule.rule == "/devices/" for rule in app.server.url_map.iter_rules()):
        mount_devices_page(app, seen[0])  # until dashboard/app.py mounts it itself
    with serving(app) as url:
        yield url
    store.close()
    engine.dispose()


def device_rows(page: Page) -> list[str]:
    return page.locator("#dev-table tr[data-device]").evaluate_all(
        "rows => rows.map(row => row.dataset.device)"
    )


def test_an_operator_sees_their_wards_devices(
    page: Page, page_log: PageLog, devices_url: str
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    goto_signed_in(page, devices_url + "/devices/", "hai-van")
    expect(page.locator("#site-title")).to_have_text("Tình trạng thiết bị")
    summary = page.locator("#dev-summary .dev-summary-line").first
    expect(summary).to_contain_text("Tổng 2 thiết bị")
    expect(summary.locator('[data-status="online"]')).to_have_text("Trực tuyến 1")
    expect(summary.locator('[data-status="offline"]')).to_have_text("Mất kết nối 1")
    expect(page.locator("#dev-table tr[data-device]")).to_have_count(2)
    assert device_rows(page) == ["aq-hv-2", "aq-hv-1"]  # worst first
    offline = page.locator('#dev-table tr[data-device="aq-hv-2"]')
    expect(offline).to_contain_text("Mất kết nối")
    expect(offline).to_contain_text("giờ trước")
    expect(page.locator('#dev-table tr[data-device="aq-hv-1"]')).to_contain_text(
        "Bụi mịn PM2.5: 35,2 µg/m³"
    )
    expect(page.locator("#dev-table")).not_to_contain_text("Cẩm Lệ")
    unregistered = page.locator("#dev-unregistered")
    expect(unregistered.locator("tr[data-device]")).to_have_count(1)
    expect(unregistered).to_contain_text("aq-moi")
    expect(unregistered).to_contain_text("Đề nghị quản trị viên")
    expect(page.locator("#dev-csv a")).to_have_attribute("href", "/export/devices.csv?lang=vi")
    page.screenshot(path=str(SCREENSHOTS / "devices-1920x1080-vi.png"), full_page=True)

    # A count is a link to the table filtered by it; the URL carries the filter.
    summary.locator('[data-status="offline"] a').click()
    expect(page).to_have_url(devices_url + "/devices/?status=offline")
    expect(page.locator("#dev-table tr[data-device]")).to_have_count(1)
    # Another commune through the URL: nothing, as for a commune without devices.
    page.goto(devices_url + f"/devices/?unit={CAM_LE}")
    expect(page.locator("#dev-table")).to_have_text("Không có thiết bị nào khớp bộ lọc")
    assert page_log.console_errors == []


def test_an_admin_filters_and_reads_the_unregistered(
    page: Page, page_log: PageLog, devices_url: str
) -> None:
    goto_signed_in(page, devices_url + "/devices/?kind=air&status=offline", "admin")
    expect(page.locator("#dev-table tr[data-device]")).to_have_count(1)
    expect(page.locator("#dev-status")).to_contain_text("Mất kết nối")  # the URL set it
    # A dropdown changes the URL and the table.
    page.locator("#dev-status").click()
    page.get_by_role("option", name="Trực tuyến").click()
    expect(page).to_have_url(devices_url + "/devices/?kind=air&status=online")
    expect(page.locator("#dev-table tr[data-device]")).to_have_count(2)
    expect(page.locator("#dev-csv a")).to_have_attribute(
        "href", "/export/devices.csv?kind=air&status=online&lang=vi"
    )
    unregistered = page.locator("#dev-unregistered")
    expect(unregistered.locator("tr[data-device]")).to_have_count(2)
    expect(unregistered.locator('tr[data-device="bus-7"]')).to_contain_text(
        "Chưa đăng ký và không gửi tọa độ"
    )
    expect(unregistered).to_contain_text("device_id,kind,name,lon,lat")

    page.locator("#lang-select label", has_text="English").click()
    expect(page.locator("#site-title")).to_have_text("Device status")
    expect(page.locator("#dev-table")).to_contain_text("Online")
    expect(page.locator("#dev-unregistered-title")).to_have_text(
        "Devices sending data but not registered"
    )
    page.screenshot(path=str(SCREENSHOTS / "devices-1920x1080-en.png"), full_page=True)
    assert page_log.console_errors == []
