"""The ingest pipeline page in headless Chromium: snapshots written through the store show
as numbers per worker, a silent worker as "Mất tín hiệu", in Vietnamese and English;
screenshots at 1920×1080 in screenshots/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ingest.metrics import IngestMetrics, snapshot_point
from tests.e2e.conftest import PageLog, Scenario, goto_signed_in

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


def _write_snapshots(scenario: Scenario) -> None:
    assert scenario.store is not None
    now = datetime.now(UTC)
    live = IngestMetrics()
    live.received = 48213
    live.spooled = 1200
    live.pending = 37
    live.spool_bytes = 5 << 20
    live.spool_batches = 3
    live.mqtt_connected = 1
    live.dead_letter("not_json", 12)
    live.dead_letter("store_refused", 2)
    for latency in (0.004, 0.008, 0.02, 0.9):
        live.batch_stored(11750, latency, [now - timedelta(seconds=1.5)], now)
    silent = IngestMetrics()
    silent.received = silent.stored = 900
    silent.mqtt_connected = 1
    scenario.store.write(
        [
            snapshot_point(live.snapshot(now), None, worker="ingest-hai-chau", interval_s=15),
            snapshot_point(
                silent.snapshot(now - timedelta(minutes=10)),
                None,
                worker="ingest-lien-chieu",
                interval_s=15,
            ),
        ]
    )


def test_pipeline_page_shows_each_worker(
    page: Page, page_log: PageLog, dashboard_url: str, scenario: Scenario
) -> None:
    _write_snapshots(scenario)
    SCREENSHOTS.mkdir(exist_ok=True)

    # From the map page, through its link.
    goto_signed_in(page, dashboard_url + "/")
    link = page.locator('#nav-links a[href="/pipeline/"]')
    expect(link).to_have_text("Thu nhận dữ liệu")
    link.click()
    page.wait_for_url("**/pipeline/")
    expect(page.locator("#site-title")).to_have_text("Tình trạng thu nhận dữ liệu")

    live = page.locator('tr[data-worker="ingest-hai-chau"]')
    expect(live).to_have_attribute("data-state", "ok")
    expect(live.locator('[data-col="received"]')).to_have_text("48.213")
    expect(live.locator('[data-col="stored"]')).to_have_text("47.000")
    expect(live.locator('[data-col="dead_lettered"]')).to_contain_text("14")
    expect(live.locator('[data-reason="not_json"]')).to_have_text("không phải JSON: 12")
    expect(live.locator('[data-col="pending"]')).to_have_text("37")
    expect(live.locator('[data-col="spool"]')).to_have_text("5,0 MiB, 3 lô")
    # 4, 8, 20, 900 ms: p50 at the top of (5, 10] ms, p99 at 96 % of (0.5, 1] s
    expect(live.locator('[data-col="latency"]')).to_have_text("10,0 ms / 980,0 ms")
    expect(live.locator('[data-col="lag"]')).to_have_text("1,5 giây")
    silent = page.locator('tr[data-worker="ingest-lien-chieu"]')
    expect(silent).to_have_attribute("data-state", "stale")
    expect(silent.locator('[data-col="status"]')).to_have_text("Mất tín hiệu")
    expect(page.locator("#updated-at")).to_contain_text("Cập nhật lúc")
    page.screenshot(path=str(SCREENSHOTS / "pipeline-1920x1080-vi.png"))

    page.locator("label", has_text="English").click()
    expect(live.locator('[data-col="received"]')).to_have_text("48,213")
    expect(silent.locator('[data-col="status"]')).to_have_text("Stale")
    expect(page.locator("#site-title")).to_have_text("Ingest pipeline health")
    expect(page.locator("#nav-links a[aria-current=page]")).to_have_text("Pipeline")
    page.screenshot(path=str(SCREENSHOTS / "pipeline-1920x1080-en.png"))
    # The choice is remembered: the map page opens in English.
    page.locator('#nav-links a[href="/"]').click()
    expect(page.locator("#site-title")).to_have_text("Da Nang Intelligent Operations Centre")
    assert page_log.console_errors == []
