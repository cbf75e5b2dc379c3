"""The weekly review page in headless Debian Chromium: a city leader opens /review/ and sees
the KPI table, the league of communes and the week's alerts in Vietnamese; a ward officer
asking for another ward gets the unknown-code answer. Screenshot: screenshots/review-1080.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from alerts.actions import AlertActions
from alerts.facts import AlertFacts
from alerts.repository import AlertRepository
from core.db import make_engine
from core.settings_base import Label
from core.store import SqliteStore
from core.types import Point
from dashboard.app import create_app
from layers.geography import Geography
from reports.weeks import last_complete_week, previous, week_bounds
from tests.e2e.conftest import PageLog, e2e_settings, goto_signed_in, serving
from tests.fixtures.signin import add_user
from tests.unit.dashboard.alerts_seed import add_log

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
ICT = ZoneInfo("Asia/Ho_Chi_Minh")
HAI_VAN, CAM_LE, DA_NANG = "20194", "20260", "48"


def _points(now: datetime) -> list[Point]:
    """12 weeks of public-service counters for two communes and PM2.5 in Hải Vân; the last
    complete week: Hải Vân 47/50 on time (94 %), Cẩm Lệ 160/200 (80 %) → the city 207/250."""
    week = last_complete_week(now, ICT)
    points = []
    for back in range(12):
        start, _ = week_bounds(previous(week, back), ICT)
        at = start + timedelta(days=2, hours=3)
        hai_van = (47, 50) if back == 0 else (40 + back % 4, 50)
        cam_le = (160, 200) if back == 0 else (170 + back, 200)
        for code, (on_time, resolved) in ((HAI_VAN, hai_van), (CAM_LE, cam_le)):
            tags = {"device": f"gov-{code}", "province": DA_NANG, "commune": code}
            fields = {"resolved_on_time": float(on_time), "resolved": float(resolved)}
            points.append(Point("dossiers", tags, fields, at))
        if back != 3:  # a week without PM2.5 readings: a gap in the sparkline
            tags = {"device": "aq-hv", "province": DA_NANG, "commune": HAI_VAN}
            points.append(Point("air", tags, {"pm25": 30.0 + 5 * (back % 3)}, at))
    return points


@pytest.fixture(scope="module")
def review_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = e2e_settings()
    geography = Geography.from_settings(settings)
    folder = tmp_path_factory.mktemp("review")
    store = SqliteStore(folder / "timeseries.sqlite")
    now = datetime.now(UTC)
    store.write(_points(now))
    engine = make_engine(f"sqlite:///{folder / 'state.sqlite'}")
    add_user(engine, "hai-van", "operator", [HAI_VAN])
    add_user(engine, "lanh-dao", "leader", [DA_NANG])
    AlertRepository(engine).create_schema()
    AlertActions(engine).migrate()
    start, _ = week_bounds(last_complete_week(now, ICT), ICT)
    fired = start + timedelta(days=1, hours=2)
    facts = AlertFacts(
        rule_id="pm25-bad", unit_code=HAI_VAN, level="commune", episode=1, kind="firing", step=0,
        severity="critical", rule_type="threshold", metric_id="pm25",
        title=Label(vi="Bụi mịn PM2.5 ở mức Xấu", en="PM2.5 at Bad"),
        metric_label=Label(vi="Bụi mịn PM2.5", en="PM2.5"), value=92.4,
        value_text=Label(vi="92,4 µg/m³", en="92.4 µg/m³"), condition=Label(vi="c", en="c"),
        rule_text=Label(vi="r", en="r"), unit_name=Label(vi="Phường Hải Vân", en="Hai Van"),
        unit_page=f"/area/commune/{HAI_VAN}", since=fired, fired_at=fired, resolved_at=None,
        evaluated_at=fired,
    )  # fmt: skip
    add_log(engine, "pm25-bad", HAI_VAN, 1, "firing", fired, "routed", facts.to_json())
    add_log(engine, "pm25-bad", HAI_VAN, 1, "resolved", fired + timedelta(hours=5), "routed")
    app = create_app(settings, store, geography, devices=list, state_engine=engine)
    with serving(app) as url:
        yield url
    store.close()
    engine.dispose()


def test_a_leader_reads_the_weekly_review(page: Page, page_log: PageLog, review_url: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    goto_signed_in(page, review_url + "/review/", "lanh-dao")
    expect(page.locator("#site-title")).to_have_text("Báo cáo tuần")
    expect(page.locator("#nav-links a[aria-current=page]")).to_have_text("Báo cáo tuần")
    table = page.locator("#review-kpis table")
    expect(table).to_contain_text("Tỷ lệ hồ sơ giải quyết đúng hạn")
    row = page.locator("#review-kpis tr.review-row-dossiers_on_time")
    expect(row).to_contain_text("82,8 %")  # 207/250
    expect(row).to_contain_text("Chưa đạt")
    expect(row.locator("img.review-spark")).to_be_visible()
    league = page.locator("#review-league")
    expect(league).to_contain_text("Xếp hạng đơn vị")
    first = league.locator("tr.review-league-row").first
    expect(first).to_contain_text("Phường Hải Vân")
    expect(first).to_contain_text("94,0 %")
    alerts = page.locator("#review-alerts")
    expect(alerts).to_contain_text("1 đợt cảnh báo")
    expect(alerts).to_contain_text("Nghiêm trọng: 1")
    expect(alerts).to_contain_text("Bụi mịn PM2.5 ở mức Xấu")
    expect(page.locator("#review-xlsx")).to_have_attribute(
        "href",
        f"/export/review.xlsx?unit={DA_NANG}&week={last_complete_week(datetime.now(UTC), ICT)}",
    )
    expect(page.locator("#review-pdf")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "review-1080.png"), full_page=True)
    # The previous week, by its button: the URL and the week's text follow.
    earlier = previous(last_complete_week(datetime.now(UTC), ICT))
    page.locator("#review-prev").click()
    expect(page).to_have_url(re.compile(f"week={earlier}"))
    expect(page.locator(".review-week-text")).to_contain_text(f"Tuần {earlier.week}/")
    assert page_log.console_errors == []


def test_an_officer_cannot_open_another_ward(page: Page, review_url: str) -> None:
    goto_signed_in(page, f"{review_url}/review/?unit={CAM_LE}", "hai-van")
    expect(page.locator("#review-message")).to_have_text(f"Không có đơn vị hành chính mã {CAM_LE}")
    expect(page.locator("#review-kpis table")).to_have_count(0)


def test_picking_a_commune_opens_its_review(page: Page, review_url: str) -> None:
    goto_signed_in(page, review_url + "/review/", "lanh-dao")
    expect(page.locator("#review-kpis table")).to_be_visible()
    page.locator("#review-unit").click()
    page.get_by_text(f"Phường Hải Vân ({HAI_VAN})").click()
    expect(page).to_have_url(re.compile(f"unit={HAI_VAN}"))
    expect(page.locator("#review-kpis h2")).to_contain_text("Phường Hải Vân")
    expect(page.locator("#review-kpis tr.review-row-dossiers_on_time")).to_contain_text("94,0 %")
    expect(page.locator("#review-league")).to_contain_text("không có đơn vị trực thuộc")
    # In English, the same unit.
    page.get_by_text("English").click()
    expect(page.locator("#review-kpis")).to_contain_text("On-time dossier rate")
    expect(page.locator("#review-league")).to_contain_text("no units below it")
