"""The weekly review page's callbacks as plain functions: a real SqliteStore, the shipped
catalogue and geography, crafted users (a ward officer of Hải Vân, a city leader)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dash
import pytest
from dash import html

from core.errors import RetryableError
from core.settings import Settings
from core.store.sqlite import SqliteStore
from core.types import Point
from dashboard.access import Access
from dashboard.app import build_context
from dashboard.context import DashboardContext
from dashboard.geo import GeoCache
from dashboard.mapview import MapViews
from dashboard.review_page import (
    default_unit,
    render_review,
    review_frame,
    sync_unit,
    unit_options,
)
from dashboard.views import review as views
from layers.geography import Geography
from reports.model import KpiRow, SparkPoint
from reports.weeks import parse_week
from tests.conftest import FakeClock
from tests.unit.dashboard.test_panel_and_legend import find, texts

ICT = ZoneInfo("Asia/Ho_Chi_Minh")
HAI_VAN, CAM_LE, DA_NANG = "20194", "20260", "48"
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # Monday 30/11 09:00 ICT: W48 is the last complete


def local(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=ICT).astimezone(UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    made = SqliteStore(tmp_path / "store.sqlite")
    tags = {"province": DA_NANG}
    made.write(
        [
            Point("dossiers", {**tags, "device": "g1", "commune": HAI_VAN},
                  {"resolved_on_time": 9, "resolved": 10}, local(24, 9)),
            Point("dossiers", {**tags, "device": "g2", "commune": CAM_LE},
                  {"resolved_on_time": 50, "resolved": 100}, local(25, 9)),
            Point("dossiers", {**tags, "device": "g1", "commune": HAI_VAN},
                  {"resolved_on_time": 7, "resolved": 10}, local(17, 9)),
            Point("dossiers", {**tags, "device": "g2", "commune": CAM_LE},
                  {"resolved_on_time": 80, "resolved": 100}, local(18, 9)),
        ]
    )  # fmt: skip
    yield made
    made.close()


@pytest.fixture
def ctx(settings: Settings, geography: Geography, store: SqliteStore) -> DashboardContext:
    return build_context(
        settings, store, MapViews(geography, GeoCache(geography)), clock=FakeClock(NOW)
    )


@pytest.fixture
def officer(geography: Geography) -> Access:
    return Access(geography.hierarchy, [HAI_VAN], role="viewer", username="hai-van")


@pytest.fixture
def leader(geography: Geography) -> Access:
    return Access(geography.hierarchy, [DA_NANG], role="leader", username="lanh-dao")


def test_leader_sees_city_kpis_league_and_exports(
    ctx: DashboardContext, settings: Settings, leader: Access
) -> None:
    view = render_review(ctx, settings, leader, "", "vi")
    assert view.message is None
    shown = " ".join(texts(view.kpis))
    assert "Tỷ lệ hồ sơ giải quyết đúng hạn" in shown
    assert "53,6 %" in shown  # 59/110, not the mean of 90 % and 50 %
    assert "↓ 25,5 điểm %" in shown  # from 79,1 %
    row = find(
        html.Div(view.kpis),
        lambda c: "review-row-dossiers_on_time" in str(getattr(c, "className", "")),
    )
    change = find(html.Div(row), lambda c: "review-change" in str(getattr(c, "className", "")))[0]
    assert "change-bad" in change.className  # an on-time rate going down is bad news
    assert "Chưa đạt" in texts(html.Div(row))
    league = " ".join(texts(view.league))
    assert "Phường Hải Vân" in league
    assert "▲ 1" in league  # Hải Vân 2nd → 1st
    assert "▼ 1" in league
    assert "Tuần 48/2026 · 23/11–29/11/2026" in texts(view.week)
    links = {
        getattr(c, "id", None): c.href
        for c in find(html.Div(view.exports), lambda c: hasattr(c, "href"))
    }
    assert links[views.REVIEW_XLSX] == "/export/review.xlsx?unit=48&week=2026-W48"
    assert links[views.REVIEW_PDF] == "/export/review.pdf?unit=48&week=2026-W48"
    assert "Tải CSV" in texts(view.exports)


def test_default_is_the_users_top_unit_and_last_complete_week(
    ctx: DashboardContext, settings: Settings, officer: Access
) -> None:
    assert default_unit(ctx, officer) == HAI_VAN
    view = render_review(ctx, settings, officer, None, "en")
    assert "Phường Hải Vân" not in " ".join(texts(view.kpis))  # English names
    assert "90.0 %" in " ".join(texts(view.kpis))
    assert "This unit has no units below it" in texts(view.league)
    nav = find(html.Div(view.week), lambda c: getattr(c, "id", None) == "review-prev")[0]
    assert "week=2026-W47" in nav.href
    # The current week W49 is not over: it may be opened, the one after it not.
    current = render_review(ctx, settings, officer, "?week=2026-W49", "vi")
    assert not find(html.Div(current.week), lambda c: getattr(c, "id", None) == "review-next")


def test_officer_asking_for_another_ward_gets_the_unknown_code_answer(
    ctx: DashboardContext, settings: Settings, officer: Access
) -> None:
    other = render_review(ctx, settings, officer, f"?unit={CAM_LE}&week=2026-W48", "vi")
    unknown = render_review(ctx, settings, officer, "?unit=99999&week=2026-W48", "vi")
    assert texts(other.message) == [f"Không có đơn vị hành chính mã {CAM_LE}"]
    assert texts(unknown.message) == ["Không có đơn vị hành chính mã 99999"]
    assert other.kpis is None
    assert other.league is None
    assert other.exports is None
    # The city above the ward is out of reach too (an officer reaches it on the map only).
    city = render_review(ctx, settings, officer, f"?unit={DA_NANG}", "vi")
    assert texts(city.message) == [f"Không có đơn vị hành chính mã {DA_NANG}"]
    # And the CSV of a crafted link is empty.
    frame = review_frame(ctx, settings, officer, {"unit": CAM_LE, "week": "2026-W48"})
    assert frame.empty


def test_bad_week_is_named(ctx: DashboardContext, settings: Settings, leader: Access) -> None:
    view = render_review(ctx, settings, leader, "?week=2026-W99", "vi")
    assert texts(view.message) == ["Tuần phải có dạng 2026-W47 và phải tồn tại: 2026-W99"]
    assert view.kpis is None


def test_store_failure_says_could_not_load(
    ctx: DashboardContext,
    settings: Settings,
    leader: Access,
    store: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def locked(*args: object, **kwargs: object) -> None:
        raise RetryableError("SQLite store could not read: database is locked")

    monkeypatch.setattr(store, "window_by_unit", locked)
    view = render_review(ctx, settings, leader, "?week=2026-W48", "vi")
    assert "Không tải được dữ liệu" in texts(view.message)[0]


def test_picker_keeps_to_access_and_follows_the_url(
    ctx: DashboardContext, officer: Access, leader: Access
) -> None:
    assert [o["value"] for o in unit_options(ctx, officer, HAI_VAN, "vi")] == [HAI_VAN]
    options = [o["value"] for o in unit_options(ctx, leader, DA_NANG, "vi")]
    assert options[0] == DA_NANG
    assert HAI_VAN in options
    assert CAM_LE in options
    assert "01" not in options  # Hà Nội
    search, value, _ = sync_unit(ctx, leader, None, "?week=2026-W47", None, "vi")
    assert (search, value) == (dash.no_update, DA_NANG)
    search, _, _ = sync_unit(ctx, leader, views.REVIEW_UNIT, "?week=2026-W47", CAM_LE, "vi")
    assert search == f"?week=2026-W47&unit={CAM_LE}"
    _, value, _ = sync_unit(ctx, officer, None, f"?unit={CAM_LE}", None, "vi")
    assert value is None


def test_csv_rows(ctx: DashboardContext, settings: Settings, leader: Access) -> None:
    frame = review_frame(ctx, settings, leader, {"unit": DA_NANG, "week": "2026-W48"})
    row = frame.set_index("metric").loc["dossiers_on_time"]
    assert row["this_week"] == pytest.approx(59 / 110)
    assert row["status"] == "bad"


def _row(values: list[float | None]) -> KpiRow:
    weeks = [parse_week(f"2026-W{n:02d}") for n in range(37, 37 + len(values))]
    spark = tuple(SparkPoint(week, value) for week, value in zip(weeks, values, strict=True))
    return KpiRow("pm25", settings_label(), "µg/m³", 1, "lower", values[-1], values[-2],
                  None, None, "none", spark)  # fmt: skip


def settings_label() -> Any:
    from core.settings_base import Label

    return Label(vi="Bụi mịn PM2.5", en="PM2.5")


def test_sparkline_breaks_at_a_week_without_data() -> None:
    svg = views.sparkline_svg(_row([10.0, 20.0, None, 30.0, 40.0]).spark)
    path = svg.split(' d="')[1].split('"')[0]
    assert path.count("M") == 2  # a new stroke after the gap, no drop to 0
    assert path.count("L") == 2
    assert "<path" not in views.sparkline_svg(_row([None, None]).spark)
