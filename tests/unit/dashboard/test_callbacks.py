"""The callbacks called directly, on a real SqliteStore and the shipped geography."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest
from dash import no_update

from core.errors import RetryableError
from core.settings import Settings
from core.store import SqliteStore
from core.types import MetricRef, Point, SeriesPoint, UnitRef, UnitValue
from dashboard.access import Access
from dashboard.app import build_context
from dashboard.callbacks import drawn_key, refresh_map, render_chrome, render_panel, text_px
from dashboard.context import DashboardContext
from dashboard.data import DashboardData
from dashboard.geo import GeoCache
from dashboard.mapview import MapViews
from dashboard.navigation import apply_location, clicked_code, navigate
from layers.geography import Geography
from tests.conftest import FakeClock
from tests.unit.dashboard.alerts_seed import CAM_LE, add_state, source, state_db
from tests.unit.dashboard.test_panel_and_legend import find, texts

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
HAI_VAN = "20194"

ADMIN = Access.admin()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "timeseries.sqlite")
    tags = {"device": "aq-1", "province": "48", "commune": HAI_VAN}
    opened.write(
        [Point("air", tags, {"pm25": 20.0 + step, "pm10": 50.0}, NOW - timedelta(minutes=10 * step))
         for step in range(12)]
    )  # fmt: skip
    yield opened
    opened.close()


@pytest.fixture
def ctx(settings: Settings, store: SqliteStore, geography: Geography) -> DashboardContext:
    views = MapViews(geography, GeoCache(geography))
    return build_context(settings, store, views, clock=FakeClock(NOW))


def geo_url(ctx: DashboardContext) -> str:
    return ctx.views.home().geo_url


class BrokenStore:
    """A store whose server is down (the real adapters raise RetryableError)."""

    def latest_by_unit(self, metric: MetricRef, level: str, **_: Any) -> list[UnitValue]:
        raise RetryableError("InfluxDB at 127.0.0.1:8086 is unreachable")

    def series(self, metric: MetricRef, unit: UnitRef, **_: Any) -> list[SeriesPoint]:
        raise RetryableError("InfluxDB at 127.0.0.1:8086 is unreachable")


class CountedLetters:
    def __init__(self, count: int | Exception) -> None:
        self._count = count

    def count(self) -> int:
        if isinstance(self._count, Exception):
            raise self._count
        return self._count


def broken(ctx: DashboardContext, settings: Settings) -> DashboardContext:
    data = DashboardData(
        BrokenStore(),  # type: ignore[arg-type]
        settings.metrics,
        clock=FakeClock(NOW),
        level="commune",
    )
    return replace(ctx, data=data)


def test_location_sets_metric_unit_language_and_place(ctx: DashboardContext) -> None:
    # Đà Nẵng's deployment: home is the city (scope 48), a commune opens its parent's map.
    assert apply_location(ctx, ADMIN, "/", "?unit=20194&metric=pm10&lang=en") == (
        "pm10",
        "20194",
        "en",
        "48",
        "",
        no_update,
    )
    assert apply_location(ctx, ADMIN, "/area/commune/20260", "") == (
        no_update,
        "20260",
        no_update,
        "48",
        "",
        no_update,
    )
    # Unknown metric → the default one; no unit → None (the place's own panel is shown).
    assert apply_location(ctx, ADMIN, "/", "?metric=no2") == (
        "pm25",
        None,
        no_update,
        "48",
        "",
        no_update,
    )
    # The country and Hà Nội are out of this deployment's reach: home instead.
    assert apply_location(ctx, ADMIN, "/", "?place=")[3] == "48"
    assert apply_location(ctx, ADMIN, "/", "?place=01")[3] == "48"


def test_click_on_a_lowest_unit_opens_its_own_url(ctx: DashboardContext) -> None:
    click = {"points": [{"location": "20197", "curveNumber": 0, "z": 12.0}]}
    assert navigate(ctx, ADMIN, click, "pm10", "en") == "/?unit=20197&metric=pm10&lang=en"
    assert navigate(ctx, ADMIN, {"points": []}, "pm10", "vi") is no_update
    assert (
        navigate(ctx, ADMIN, {"points": [{"location": "00004"}]}, "pm10", "vi") is no_update
    )  # Hà Nội
    assert clicked_code(None) is None
    assert clicked_code({"points": [{"location": 5}]}) is None


def test_map_is_drawn_once_then_patched(ctx: DashboardContext) -> None:
    figure, drawn, updated, badge, status, note, update = refresh_map(
        ctx, ADMIN, "pm25", "vi", None, None, 20
    )
    assert update is no_update  # a full figure
    assert note == ""  # live
    assert isinstance(figure, go.Figure)
    assert drawn == drawn_key("pm25", "vi", 20, geo_url(ctx)) + "|devices=0"
    assert updated == "Cập nhật lúc 08:00:00"
    assert badge is no_update  # no dead-letter store given
    assert status == ""
    hai_van = [
        list(trace.customdata[index])
        for trace in figure.data
        for index, code in enumerate(trace.locations)
        if code == HAI_VAN
    ]
    assert hai_van == [["Phường Hải Vân", "20,0 µg/m³", "Tốt", "lúc 08:00 02/11"]]

    # The same view again: no figure, the new colours for the browser (assets/map.js).
    again = refresh_map(ctx, ADMIN, "pm25", "vi", HAI_VAN, drawn, 20)
    assert again[0] is no_update
    assert again[1] == drawn
    assert again[6]["key"] == drawn
    assert [len(trace["z"]) for trace in again[6]["traces"]] == [
        len(trace.locations) for trace in figure.data
    ]
    assert "devices" not in again[6]

    # Another metric, language or screen size needs a new colour scale or fonts: full figure.
    assert isinstance(refresh_map(ctx, ADMIN, "pm10", "vi", None, drawn, 20)[0], go.Figure)
    assert isinstance(refresh_map(ctx, ADMIN, "pm25", "en", None, drawn, 20)[0], go.Figure)
    assert isinstance(refresh_map(ctx, ADMIN, "pm25", "vi", None, drawn, 38)[0], go.Figure)


def test_dead_letter_badge(ctx: DashboardContext, caplog: pytest.LogCaptureFixture) -> None:
    with_letters = replace(ctx, dead_letters=CountedLetters(3))
    assert refresh_map(with_letters, ADMIN, "pm25", "vi", None, None)[3] == "Tin lỗi: 3"
    assert refresh_map(with_letters, ADMIN, "pm25", "en", None, None)[3] == "Rejected messages: 3"
    # The count failing does not stop the map.
    failing = replace(ctx, dead_letters=CountedLetters(RetryableError("database is locked")))
    figure, _, _, badge, *_ = refresh_map(failing, ADMIN, "pm25", "vi", None, None)
    assert badge is no_update
    assert isinstance(figure, go.Figure)
    assert "database is locked" in caplog.text


def test_store_down_keeps_the_map_and_says_so(
    ctx: DashboardContext, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cityops.dashboard")
    figure, drawn, updated, _, status, _, _ = refresh_map(
        broken(ctx, settings), ADMIN, "pm25", "vi", None, "x"
    )
    assert (figure, drawn, updated) == (no_update, no_update, no_update)
    assert status == "Không tải được dữ liệu, sẽ thử lại sau 10 giây"
    record = next(r for r in caplog.records if r.name == "cityops.dashboard")
    assert record.levelno == logging.WARNING
    assert "unreachable" in record.getMessage()
    assert record.exc_info is None  # an outage, not a bug: no traceback


@pytest.mark.allow_logged_exceptions
def test_a_bug_is_logged_with_traceback_and_the_screen_stays(
    ctx: DashboardContext, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = ctx.views.home()
    strange = replace(home, units=[*home.units, "not a MapUnit"])  # type: ignore[list-item]
    monkeypatch.setattr(ctx.views, "of_place", lambda place: strange)
    figure, _, _, _, status, *_ = refresh_map(ctx, ADMIN, "pm25", "vi", None, None)
    assert figure is no_update
    assert status.startswith("Không tải được dữ liệu")
    assert any(r.exc_info for r in caplog.records if r.name == "cityops.dashboard")


def test_panel_of_a_unit(ctx: DashboardContext) -> None:
    panel = render_panel(ctx, ADMIN, HAI_VAN, "pm25", "vi", 20)
    shown = texts(panel)
    assert shown[:2] == ["Phường Hải Vân, Thành phố Đà Nẵng", "Trang đơn vị"]
    pm25 = find(panel, lambda c: getattr(c, "className", "") == "kpi-card" and
                c.to_plotly_json()["props"].get("data-metric") == "pm25")  # fmt: skip
    assert texts(pm25)[:3] == ["Bụi mịn PM2.5", "20,0", "µg/m³"]  # the newest reading
    assert "Mực nước" in shown
    assert "Không có dữ liệu" in shown  # no water gauge in Hải Vân
    assert "Bụi mịn PM2.5 (µg/m³), 24 giờ qua" in shown
    link = find(panel, lambda c: getattr(c, "className", "") == "nav-link unit-page-link")[0]
    assert link.href == "/area/commune/20194?metric=pm25&lang=vi"
    assert texts(render_panel(ctx, ADMIN, HAI_VAN, "pm25", "en"))[0] == "Hai Van Ward, Da Nang City"


def test_panel_over_a_range_and_its_alerts(
    ctx: DashboardContext, settings: Settings, tmp_path: Path
) -> None:
    # Over 24 h [00:00 … 01:00 UTC): the mean of the 15-minute bucket means. Readings 21 …
    # 31 every 10 min before 01:00 (20 at 01:00 is the next range's) fall as 21 | 22, 23 |
    # 24 | 25, 26 | 27 | 28, 29 | 30 | 31 → (21 + 22.5 + 24 + 25.5 + 27 + 28.5 + 30 + 31) / 8.
    day = texts(render_panel(ctx, ADMIN, HAI_VAN, "pm25", "vi", 20, None, "24h"))
    assert "Trung bình 24 giờ qua" in day
    assert "26,2" in day
    assert "Bụi mịn PM2.5 (µg/m³), 24 giờ qua" in day
    bad = texts(render_panel(ctx, ADMIN, HAI_VAN, "pm25", "vi", 20, None, "custom", "x", None))
    assert bad == ["Ngày không hợp lệ: x (cần dạng 2025-11-02 hoặc tuần 2025-W45)"]
    # Active alerts of the unit and inside it, from the state database.
    engine = state_db(tmp_path)
    source(engine, settings, ctx.hierarchy, FakeClock(NOW))
    add_state(engine, "pm25-bad", HAI_VAN, "firing", fired_at=NOW - timedelta(minutes=5))
    add_state(engine, "pm25-bad", CAM_LE, "firing", fired_at=NOW - timedelta(minutes=5))
    with_state = dataclasses.replace(ctx, state_engine=engine)
    city = texts(render_panel(with_state, ADMIN, "48", "pm25", "vi"))
    assert "Cảnh báo đang diễn ra (2)" in city
    ward = render_panel(with_state, ADMIN, HAI_VAN, "pm25", "vi")
    assert "Cảnh báo đang diễn ra (1)" in texts(ward)
    assert "Bụi mịn PM2.5 ở mức Xấu" in texts(ward)
    # The officer of Hải Vân sees Hải Vân's alert in the city's panel, not Cẩm Lệ's.
    officer = Access(ctx.hierarchy, [HAI_VAN], role="operator", username="hai-van")
    assert "Cảnh báo đang diễn ra (1)" in texts(
        render_panel(with_state, officer, HAI_VAN, "pm25", "vi")
    )
    assert texts(render_panel(with_state, officer, CAM_LE, "pm25", "vi")) == [
        "Không có đơn vị hành chính mã 20260"
    ]
    engine.dispose()


def test_panel_hint_unknown_unit_and_outage(ctx: DashboardContext, settings: Settings) -> None:
    assert texts(render_panel(ctx, ADMIN, None, "pm25", "vi")) == [
        "Bấm vào một đơn vị trên bản đồ để xem chi tiết"
    ]
    # No unit selected: the panel of the place on the map, rolled up from its devices.
    assert texts(render_panel(ctx, ADMIN, None, "pm25", "vi", 20, "48"))[0] == "Thành phố Đà Nẵng"
    assert texts(render_panel(ctx, ADMIN, "99999", "pm25", "vi")) == [
        "Không có đơn vị hành chính mã 99999"
    ]
    assert texts(render_panel(broken(ctx, settings), ADMIN, HAI_VAN, "pm25", "en")) == [
        "Could not load data, retrying in 10 s"
    ]


def test_panel_without_trend_data_says_so(ctx: DashboardContext) -> None:
    shown = texts(render_panel(ctx, ADMIN, HAI_VAN, "water_level", "vi"))
    assert "Không có dữ liệu trong khoảng thời gian này" in shown


def test_chrome_follows_the_language(ctx: DashboardContext) -> None:
    chrome = render_chrome(ctx, "en", "pm10")
    title, metric_label, options, lang_label, legend, hint, placeholder, search_label = chrome[:8]
    assert chrome[8:] == ("Day", "Live")
    assert title == "Da Nang Intelligent Operations Centre"
    assert metric_label == "Metric"
    assert {"label": "Dust PM10", "value": "pm10"} in options
    assert lang_label == "Language"
    assert texts(legend)[0] == "Dust PM10 (µg/m³)"
    assert hint.startswith("Messages from devices")
    assert placeholder == "Find a commune, province… or code"
    assert search_label == "Find an administrative unit"
    assert render_chrome(ctx, "vi", "pm10")[0] == "Trung tâm Điều hành Thông minh Đà Nẵng"


def test_text_px_is_bounded() -> None:
    assert text_px(38.4) == 38.4
    assert text_px(None) == 20.0
    assert text_px("big") == 20.0
    assert text_px(10_000) == 96.0
    assert text_px(True) == 20.0
