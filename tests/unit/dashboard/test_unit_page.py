"""The unit page (dashboard/unit_page.py) rendered by its plain functions on a real
SqliteStore and the shipped geography; its CSV exports; its URL state."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dash
import pytest

from core.errors import RetryableError
from core.settings import Settings
from core.store import SqliteStore
from core.types import Point
from dashboard.access import Access
from dashboard.app import build_context
from dashboard.context import DashboardContext
from dashboard.geo import GeoCache
from dashboard.kpi import RangeError
from dashboard.mapview import MapViews
from dashboard.unit_controls import controls_from_url, refresh_due, url_from_controls
from dashboard.unit_exports import children_export, kpis_export, trend_export
from dashboard.unit_page import UnitPage, render_unit_page
from layers.geography import Geography
from layers.registry import Device
from tests.conftest import FakeClock
from tests.unit.dashboard.test_panel_and_legend import find, texts

NOW = datetime(2026, 11, 4, 1, 0, tzinfo=UTC)
HAI_VAN = {"province": "48", "commune": "20194"}
CAM_LE = {"province": "48", "commune": "20260"}
DEVICES = [
    Device("aq-1", "air", "Trường Hải Vân", 108.13, 16.12, "20194", HAI_VAN),
    Device("aq-3", "air", "Chợ Cẩm Lệ", 108.20, 16.01, "20260", CAM_LE),
]


def air(device: str, tags: dict[str, str], pm25: float, at: datetime) -> Point:
    return Point("air", {"device": device, **tags}, {"pm25": pm25, "pm10": 2 * pm25}, at)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "timeseries.sqlite")
    opened.write(
        [air("aq-1", HAI_VAN, 30.0 + h, NOW - timedelta(hours=h, minutes=2)) for h in range(48)]
        + [air("aq-3", CAM_LE, 123.4, NOW - timedelta(minutes=1))]
    )
    yield opened
    opened.close()


def context(settings: Settings, store: Any, geography: Geography) -> DashboardContext:
    views = MapViews(geography, GeoCache(geography))
    return build_context(
        settings, store, views, clock=FakeClock(NOW), devices=lambda: DEVICES, url_prefix="/"
    )


@pytest.fixture
def ctx(settings: Settings, store: SqliteStore, geography: Geography) -> DashboardContext:
    return context(settings, store, geography)


def officer(geography: Geography, unit: str) -> Access:
    return Access(geography.hierarchy, [unit], role="leader", username="lanh-dao")


def as_json(page: UnitPage) -> str:
    def encode(value: Any) -> Any:
        return value.to_plotly_json() if hasattr(value, "to_plotly_json") else str(value)

    return json.dumps(list(page), default=encode, ensure_ascii=False)


def ranked_rows(page: UnitPage) -> list[dict[str, Any]]:
    """The ranking table's rows: code, mark and the texts of the cells."""
    rows = find(
        page.ranking, lambda c: "data-code" in getattr(c, "to_plotly_json", dict)().get("props", {})
    )
    return [
        {
            "code": row.to_plotly_json()["props"]["data-code"],
            "mark": row.to_plotly_json()["props"]["data-mark"],
            "cells": texts(row),
        }
        for row in rows
    ]


def links(component: Any) -> list[str]:
    return [str(a.href) for a in find(component, lambda c: getattr(c, "href", None) is not None)]


def test_a_commune_page(ctx: DashboardContext, geography: Geography) -> None:
    page = render_unit_page(
        ctx, officer(geography, "20194"), "/area/commune/20194", "?metric=pm25", "vi"
    )
    assert texts(page.head)[:2] == ["Thành phố Đà Nẵng", "Phường Hải Vân"]
    # The officer may not open the province: its crumb is plain text, not a link.
    assert "/area/province/48?metric=pm25&range=live" not in links(page.head)
    assert "/?unit=20194&metric=pm25" in links(page.head)  # "Xem trên bản đồ"
    assert page.status == "Hiện tại · cập nhật lúc 08:00:00"
    cards = texts(page.kpis)
    assert "30,0" in cards
    assert "▼ 24,0 µg/m³ (−44,4 %)" in cards
    assert "/export/unit_kpis.csv?unit=20194&range=live" in links(page.kpis)
    # The lowest level ranks its devices; the other commune's device is not there.
    assert "Thiết bị theo Bụi mịn PM2.5" in texts(page.ranking)
    assert [row["code"] for row in ranked_rows(page)] == ["aq-1"]
    graph = find(page.map, lambda c: getattr(c, "id", None) == "unit-map-graph")[0]
    shape, markers = graph.figure.data
    assert list(shape.locations) == ["20194"]  # its own shape, from the province's view
    assert shape.geojson == ctx.views.of_place("48").geo_url
    assert list(markers.ids) == ["aq-1"]
    assert graph.figure.layout.geo.visible is False  # no base map
    assert len(find(page.trends, lambda c: getattr(c, "className", "") == "unit-trend")) == len(
        ctx.metrics
    )


def test_a_province_ranks_its_communes(ctx: DashboardContext, geography: Geography) -> None:
    page = render_unit_page(
        ctx, Access.admin(geography.hierarchy), "/area/province/48", "?range=7d", "en"
    )
    assert texts(page.head)[:2] == ["Da Nang", "Da Nang"]
    assert page.status.startswith("last 7 days · updated at")
    rows = ranked_rows(page)
    first, second = rows[:2]
    assert (first["code"], first["mark"]) == ("20194", "best")
    assert first["cells"][:3] == ["1", "Hai Van Ward", "53.5"]  # the week's mean, in English
    assert first["cells"][-1] == "Best"
    assert (second["code"], second["mark"], second["cells"][2]) == ("20260", "worst", "123.4")
    assert second["cells"][3] == "Bad"  # its band, coloured
    assert "/area/commune/20194?metric=pm25&range=7d" in links(page.ranking)
    assert len(rows) == len(geography.hierarchy.children("48"))
    assert rows[2]["cells"][2] == "No data"
    # Sorting is a link: by value, descending on a second click; no data stays last.
    assert "/area/province/48?metric=pm25&range=7d&sort=value" in links(page.ranking)
    worst_first = render_unit_page(
        ctx, Access.admin(geography.hierarchy), "/area/province/48", "?range=7d&sort=-value", "en"
    )
    ordered = ranked_rows(worst_first)
    assert [row["code"] for row in ordered[:2]] == ["20260", "20194"]
    assert ordered[-1]["cells"][2] == "No data"
    assert "/area/province/48?metric=pm25&range=7d&sort=value" in links(worst_first.ranking)
    shape = find(page.map, lambda c: getattr(c, "id", None) == "unit-map-graph")[0].figure.data[0]
    # The communes' outlines, but not the far island of the map's inset (Đặc khu Hoàng Sa):
    # it would shrink the rest to a dot.
    island = ctx.views.of_place("48").inset
    assert island
    assert set(shape.locations) == {u.code for u in geography.hierarchy.children("48")} - island
    assert "/export/unit_children.csv?unit=48&metric=pm25&range=7d" in links(page.ranking)


def test_a_unit_out_of_reach_answers_like_an_unknown_one(
    settings: Settings, store: SqliteStore, geography: Geography
) -> None:
    calls: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(store, name)

    ctx = context(settings, Counting(), geography)
    hai_van = officer(geography, "20194")
    theirs = render_unit_page(ctx, hai_van, "/area/commune/20260", "?range=7d", "vi")
    unknown = render_unit_page(ctx, hai_van, "/area/commune/20261", "?range=7d", "vi")
    assert calls == []  # not even a query
    assert texts(theirs.head) == ["Không có đơn vị hành chính mã 20260"]
    assert as_json(theirs).replace("20260", "X") == as_json(unknown).replace("20261", "X")
    admin = render_unit_page(
        ctx, Access.admin(geography.hierarchy), "/area/commune/20260", "", "vi"
    )
    assert "123,4" in texts(admin.kpis)
    # The province is out of reach too: no roll-up of the other communes.
    assert texts(render_unit_page(ctx, hai_van, "/area/province/48", "", "vi").head) == [
        "Không có đơn vị hành chính mã 48"
    ]


def test_bad_range_and_unreachable_store_are_messages(
    settings: Settings,
    ctx: DashboardContext,
    geography: Geography,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = Access.admin(geography.hierarchy)
    bad = "?range=custom&start=2026-11-03&end=2026-11-01"
    page = render_unit_page(ctx, admin, "/area/commune/20194", bad, "vi")
    assert texts(page.status) == ["Ngày kết thúc 2026-11-01 trước ngày bắt đầu 2026-11-03"]
    assert texts(page.head)[1] == "Phường Hải Vân"
    assert page.kpis is None

    class Down(SqliteStore):
        def latest_by_unit(self, *args: Any, **kwargs: Any) -> Any:
            raise RetryableError("InfluxDB is down")

    down = Down(tmp_path / "down.sqlite")
    try:
        with caplog.at_level(logging.WARNING, "cityops.dashboard"):
            page = render_unit_page(
                context(settings, down, geography), admin, "/area/commune/20194", "", "vi"
            )
    finally:
        down.close()
    assert texts(page.status)[0].startswith("Không tải được dữ liệu")
    assert page.kpis is dash.no_update
    assert page.trends is dash.no_update
    assert "InfluxDB is down" in caplog.text


def test_exports_give_the_rows_shown_and_nothing_out_of_reach(
    ctx: DashboardContext, geography: Geography
) -> None:
    hai_van = officer(geography, "20194")
    kpis = kpis_export(ctx, hai_van, {"unit": "20194", "range": "live"})
    assert kpis.loc["pm25", "value"] == 30.0
    assert kpis.loc["pm25", "label"] == "Bụi mịn PM2.5"
    assert kpis.loc["pm25", "band"] == "Trung bình"
    theirs = kpis_export(ctx, hai_van, {"unit": "20260"})
    assert theirs["value"].isna().all()
    assert theirs.equals(kpis_export(ctx, hai_van, {"unit": "nope"}))
    children = children_export(ctx, Access.admin(geography.hierarchy), {"unit": "48"})
    assert list(children.index[:2]) == ["20194", "20260"]
    assert children.loc["20260", "band"] == "Xấu"
    assert children_export(ctx, hai_van, {"unit": "48", "metric": "pm25"}).empty
    assert list(children_export(ctx, hai_van, {"unit": "20194"}).index) == ["aq-1"]
    trend = trend_export(ctx, hai_van, {"unit": "20194", "metric": "pm25", "range": "7d"})
    assert set(trend["metric"]) == {"pm25"}
    assert len(trend) == 48
    every = trend_export(ctx, hai_van, {"unit": "20194", "range": "7d"})
    assert set(every["metric"]) == {"pm25", "pm10"}
    assert trend_export(ctx, hai_van, {"unit": "20260", "range": "7d"}).empty
    with pytest.raises(RangeError):  # the export route answers it as a 400
        trend_export(ctx, hai_van, {"unit": "20194", "range": "custom", "start": "x"})


def test_url_state() -> None:
    metrics = {"pm25": None, "pm10": None}
    chosen = controls_from_url(
        "?metric=pm10&range=custom&start=2026-11-02&end=2026-11-08", metrics, "pm25"
    )
    assert chosen == ("pm10", "custom", "2026-11-02", "2026-11-08", False, None)
    assert controls_from_url("?metric=no2&range=1y", metrics, "pm25")[:2] == ("pm25", "live")
    today = date(2026, 11, 4)
    picked = url_from_controls("?lang=en&metric=pm25", "pm10", "custom", None, None, today)
    assert picked.search == "?lang=en&metric=pm10&range=custom&start=2026-10-29&end=2026-11-04"
    assert picked.days_hidden is False
    back = url_from_controls(picked.search, "pm10", "7d", "2026-10-29", "2026-11-04", today)
    assert back.search == "?lang=en&metric=pm10&range=7d"
    assert back.days_hidden is True
    assert url_from_controls(back.search, "pm10", "7d", None, None, today).search is None


def test_refresh_beats() -> None:
    assert refresh_due("live", 3, NOW, NOW)
    assert refresh_due("7d", 12, NOW + timedelta(hours=1), NOW)
    assert not refresh_due("7d", 13, NOW + timedelta(hours=1), NOW)
    assert not refresh_due("custom", 12, NOW - timedelta(days=1), NOW)  # a past week is complete
    assert refresh_due("custom", 12, NOW + timedelta(hours=5), NOW)


def test_a_url_without_a_unit_offers_the_users_own(
    ctx: DashboardContext, geography: Geography
) -> None:
    admin = render_unit_page(ctx, Access.admin(geography.hierarchy), "/area/", "", "vi")
    assert texts(admin.head) == ["Chọn một đơn vị hành chính:", "Thành phố Đà Nẵng"]
    assert links(admin.head) == ["/area/province/48"]
    mine = render_unit_page(ctx, officer(geography, "20194"), "/area/commune/x!", "", "en")
    assert links(mine.head) == ["/area/commune/20194"]
    assert mine.kpis is None
    nobody = render_unit_page(ctx, Access.nobody(geography.hierarchy), "/area/", "", "vi")
    assert links(nobody.head) == []
