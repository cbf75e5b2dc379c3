"""The drill-down through the callbacks, on real stores: the country's 34 provinces →
a province's communes → a commune (2 levels, the national 2025 layers), and province →
district → commune on the 3-level fixture, with values rolled up by each metric's
aggregation at every level."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest
from dash import no_update

from core.settings import Settings, load_settings, parse_settings
from core.store import SqliteStore
from core.types import Point, UnitRef
from dashboard.access import Access
from dashboard.app import build_context
from dashboard.callbacks import refresh_map
from dashboard.context import DashboardContext
from dashboard.geo import GeoCache
from dashboard.mapview import MapViews
from dashboard.navigation import apply_location, find_units, navigate, render_breadcrumb
from dashboard.views.devices import STATE_COLOURS
from layers.geography import Geography
from layers.history import load_history
from layers.registry import place_device
from tests.conftest import FakeClock
from tests.fixtures.geodata import three_level_raw
from tests.unit.dashboard.test_panel_and_legend import texts

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
HAI_VAN = "20194"
NATIONAL = {
    "CITYOPS_LAYERS__SCOPE": "",
    "CITYOPS_LAYERS__MAP_LEVEL": "province",
    "CITYOPS_LAYERS__BOUNDARIES__COMMUNE": "layers/data/vn_communes_2025.geojson",
}

ADMIN = Access.admin()


def values_of(figure: Any) -> dict[str, float]:
    """code → z of every unit drawn (main map and inset)."""
    return {
        code: z for trace in figure.data for code, z in zip(trace.locations, trace.z, strict=True)
    }


def hover_values(figure: Any) -> dict[str, str]:
    return {
        code: data[1]
        for trace in figure.data
        for code, data in zip(trace.locations, trace.customdata, strict=True)
    }


@pytest.fixture(scope="module")
def national_settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ=NATIONAL)


@pytest.fixture(scope="module")
def national_geography(national_settings: Settings) -> Geography:
    return Geography.from_settings(national_settings)


@pytest.fixture
def national(
    tmp_path: Path, national_settings: Settings, national_geography: Geography
) -> Iterator[DashboardContext]:
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    at = NOW - timedelta(minutes=5)
    readings = {  # device: (commune, pm25)
        "aq-1": ("20194", 10.0),  # Đà Nẵng, Hải Vân
        "aq-2": ("20194", 30.0),
        "aq-3": ("20260", 110.0),  # Đà Nẵng, Cẩm Lệ
        "aq-4": ("00004", 60.0),  # Hà Nội, Ba Đình
    }
    hierarchy = national_geography.hierarchy
    store.write(
        [
            Point("air", {"device": device} | hierarchy.level_tags(code), {"pm25": pm25}, at)
            for device, (code, pm25) in readings.items()
        ]
    )
    views = MapViews(national_geography, GeoCache(national_geography))
    yield build_context(national_settings, store, views, clock=FakeClock(NOW))
    store.close()


def test_country_province_commune_and_back(national: DashboardContext) -> None:
    # Home: the country's 34 provinces; Đà Nẵng's value is the mean of its 3 devices.
    metric, unit, _, place, *_ = apply_location(national, ADMIN, "/", "")
    assert (unit, place) == (None, "")
    figure, drawn, *_ = refresh_map(national, ADMIN, metric, "vi", unit, None, 20, place)
    assert isinstance(figure, go.Figure)
    drawn_values = hover_values(figure)
    assert len(drawn_values) == 34
    assert drawn_values["48"] == "50,0 µg/m³"  # (10 + 30 + 110) / 3
    assert drawn_values["01"] == "60,0 µg/m³"
    assert drawn_values["79"] == "Không có dữ liệu"
    assert [
        item.children.children for item in render_breadcrumb(national, ADMIN, place, None, "vi")
    ] == ["Việt Nam"]

    # Click Đà Nẵng: its URL, then its map of 94 communes (the same geometry as the
    # province's own file would give), values per commune.
    click = {"points": [{"location": "48"}]}
    href = navigate(national, ADMIN, click, "pm25", "vi")
    assert href == "/?place=48&metric=pm25&lang=vi"
    metric, unit, _, place, *_ = apply_location(national, ADMIN, "/", href[1:])
    assert place == "48"
    figure, drawn_province, *_ = refresh_map(national, ADMIN, metric, "vi", unit, drawn, 20, place)
    assert isinstance(figure, go.Figure)  # new geometry: a full figure, never an update
    communes = hover_values(figure)
    assert len(communes) == 94
    assert communes["20194"] == "20,0 µg/m³"
    assert communes["20260"] == "110,0 µg/m³"
    assert "00004" not in communes
    assert "/geo/commune/48.json?v=" in figure.data[0].geojson
    # The next refresh of the same view is an update the browser applies.
    again = refresh_map(national, ADMIN, metric, "vi", unit, drawn_province, 20, place)
    assert again[0] is no_update
    assert again[6]["key"] == drawn_province

    # Click Hải Vân: the lowest level opens the unit's own URL, on its province's map.
    href = navigate(national, ADMIN, {"points": [{"location": "20194"}]}, "pm25", "vi")
    assert href == "/?unit=20194&metric=pm25&lang=vi"
    path, query = href.split("?")
    metric, unit, _, place, *_ = apply_location(national, ADMIN, path, "?" + query)
    assert (unit, place) == ("20194", "48")
    crumbs = render_breadcrumb(national, ADMIN, place, unit, "vi")
    assert [texts(item)[0] for item in crumbs] == [
        "Việt Nam",
        "Thành phố Đà Nẵng",
        "Phường Hải Vân",
    ]
    # Back up by the first crumb: the country.
    country_href = crumbs[0].children.href
    assert country_href == "/?place="
    assert apply_location(national, ADMIN, "/", country_href[1:])[3] == ""


def test_a_link_opens_the_place_directly_and_a_bad_one_opens_home(
    national: DashboardContext,
) -> None:
    assert apply_location(national, ADMIN, "/", "?place=01&lang=en")[2:4] == ("en", "01")
    assert apply_location(national, ADMIN, "/", "?place=99")[3] == ""  # no such province: home
    assert apply_location(national, ADMIN, "/area/commune/00004", "")[3] == "01"


def test_search_is_accent_insensitive_and_finds_codes(national: DashboardContext) -> None:
    hits = [
        (texts(item)[0], item.children.href)
        for item in find_units(national, ADMIN, "hoa khanh", "vi")
    ]
    assert ("Phường Hoà Khánh, Thành phố Đà Nẵng", "/?unit=20200") in hits
    assert any("Tây Ninh" in label for label, _ in hits)
    by_code = find_units(national, ADMIN, "48", "vi")
    assert texts(by_code[0]) == ["Thành phố Đà Nẵng"]
    assert by_code[0].children.href == "/?place=48"  # a province opens its map
    assert texts(find_units(national, ADMIN, "zzzz", "en")) == ["No unit found"]
    assert find_units(national, ADMIN, "  ", "vi") == []


def test_a_scoped_city_does_not_find_or_open_other_provinces(
    settings: Settings, geography: Geography, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    ctx = build_context(
        settings, store, MapViews(geography, GeoCache(geography)), clock=FakeClock(NOW)
    )
    labels = [texts(item)[0] for item in find_units(ctx, ADMIN, "hoa khanh", "vi")]
    assert labels == ["Phường Hoà Khánh, Thành phố Đà Nẵng"]  # not Tây Ninh's
    assert navigate(ctx, ADMIN, {"points": [{"location": "01"}]}, "pm25", "vi") is no_update
    store.close()


@pytest.fixture
def three_levels(tmp_path: Path) -> Iterator[DashboardContext]:
    raw = three_level_raw(map_level="district")
    raw["metrics"] = {
        "pm25": {
            "kind": "air",
            "field": "pm25",
            "label": {"vi": "Bụi mịn PM2.5", "en": "PM2.5"},
            "unit": "µg/m³",
            "aggregation": "mean",
        },
        "dossiers": {
            "kind": "gov",
            "field": "received",
            "label": {"vi": "Hồ sơ tiếp nhận", "en": "Dossiers received"},
            "unit": "",
            "aggregation": "sum",
        },
        "level": {
            "kind": "water",
            "field": "level",
            "label": {"vi": "Mực nước", "en": "Water level"},
            "unit": "m",
            "aggregation": "max",
        },
    }
    raw["dashboard"] = {"default_metric": "pm25"}
    settings = parse_settings(raw, base_dir=REPO)
    geography = Geography.from_settings(settings)
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    at = NOW - timedelta(minutes=5)
    rows = [  # device, commune, measurement, field, value
        ("aq-1", "20194", "air", "pm25", 10.0),
        ("aq-2", "20194", "air", "pm25", 20.0),
        ("aq-3", "20197", "air", "pm25", 60.0),
        ("aq-4", "20236", "air", "pm25", 40.0),
        ("gov-1", "20194", "gov", "received", 7.0),
        ("gov-2", "20197", "gov", "received", 5.0),
        ("gov-3", "20242", "gov", "received", 11.0),
        ("wl-1", "20197", "water", "level", 1.2),
        ("wl-2", "20236", "water", "level", 3.4),
    ]
    store.write(
        [
            Point(kind, {"device": device} | geography.hierarchy.level_tags(code), {field: v}, at)
            for device, code, kind, field, v in rows
        ]
    )
    yield build_context(
        settings, store, MapViews(geography, GeoCache(geography)), clock=FakeClock(NOW)
    )
    store.close()


@pytest.mark.parametrize(
    ("metric", "districts", "communes_of_490"),
    [
        # mean over the devices inside: 490 = (10 + 20 + 60) / 3, its communes 15 and 60
        ("pm25", {"490": 30.0, "492": 40.0}, {"20194": 15.0, "20197": 60.0}),
        # sums of counters: 490 = 7 + 5
        ("dossiers", {"490": 12.0, "492": 11.0}, {"20194": 7.0, "20197": 5.0}),
        # max of gauges
        ("level", {"490": 1.2, "492": 3.4}, {"20197": 1.2}),
    ],
)
def test_three_levels_roll_up_by_the_metric_aggregation(
    three_levels: DashboardContext,
    metric: str,
    districts: dict[str, float],
    communes_of_490: dict[str, float],
) -> None:
    ctx = three_levels
    # Home (no scope, map_level district): the districts.
    figure = refresh_map(ctx, ADMIN, metric, "vi", None, None, 20, "")[0]
    assert {k: v for k, v in raw_values(ctx, metric, figure).items() if v is not None} == (
        districts
    )
    # Province 48 → its districts; district 490 → its communes.
    assert apply_location(ctx, ADMIN, "/", "?place=48")[3] == "48"
    assert navigate(ctx, ADMIN, {"points": [{"location": "490"}]}, metric, "vi") == (
        f"/?place=490&metric={metric}&lang=vi"
    )
    figure = refresh_map(ctx, ADMIN, metric, "vi", None, None, 20, "490")[0]
    shown = raw_values(ctx, metric, figure)
    assert set(shown) == {"20194", "20197"}
    assert {k: v for k, v in shown.items() if v is not None} == communes_of_490
    # The province's own value (its panel) rolls up the same devices.
    province = ctx.data.unit_latest(UnitRef("province", "48"))
    expected = {"pm25": 32.5, "dossiers": 23.0, "level": 3.4}[metric]
    assert province.loc[metric, "value"] == pytest.approx(expected)
    crumbs = render_breadcrumb(ctx, ADMIN, "490", None, "vi")
    labels = [texts(item)[0] for item in crumbs]
    assert labels == ["Việt Nam", "Thành phố Đà Nẵng", "Quận Liên Chiểu"]


def raw_values(ctx: DashboardContext, metric: str, figure: Any) -> dict[str, float | None]:
    """code → the value behind each drawn unit (from the store's frame, not the colour)."""
    drawn = {code for trace in figure.data for code in trace.locations}
    candidates = (ctx.views.of_place(place) for place in (None, "48", "490"))
    view = next(v for v in candidates if {unit.code for unit in v.units} == drawn)
    frame = ctx.data.map_values(metric, view.level, view.parent)
    return {
        code: float(frame.loc[code, "value"]) if code in frame.index else None for code in drawn
    }


def test_devices_are_drawn_over_the_units_by_state_then_patched(
    national: DashboardContext, national_geography: Geography
) -> None:
    registry = [
        place_device(device, "air", f"Trạm {device}", lon, lat, national_geography)
        for device, lon, lat in (
            ("aq-1", 108.1503, 16.1629),  # Hải Vân: 10 µg/m³, fine
            ("aq-3", 108.2073, 16.0143),  # 110 µg/m³: above the critical rule (80)
            ("aq-9", 108.2200, 16.0600),  # registered, never heard from
        )
    ]
    ctx = replace(national, data=replace_registry(national.data, registry))
    figure, drawn, *_ = refresh_map(ctx, ADMIN, "pm25", "vi", None, None, 20, "48")
    devices = [trace for trace in figure.data if trace.type == "scattergeo"]
    assert len(devices) == 1
    assert list(devices[0].ids) == ["aq-1", "aq-3", "aq-9"]
    assert list(devices[0].marker.color) == [
        STATE_COLOURS["ok"],
        STATE_COLOURS["alarm"],
        STATE_COLOURS["offline"],
    ]
    assert drawn.endswith("|devices=3")
    # The country's view draws them too (3 devices), on the provinces.
    country = refresh_map(ctx, ADMIN, "pm25", "vi", None, None, 20, "")[0]
    assert [t.type for t in country.data].count("scattergeo") == 1
    # A refresh sends the states, not the positions; the device trace is the last one.
    update = refresh_map(ctx, ADMIN, "pm25", "vi", None, drawn, 20, "48")[6]
    at = next(n for n, trace in enumerate(figure.data) if trace.type == "scattergeo")
    assert at == 2 == len(update["traces"])  # after the main map and Hoàng Sa's inset
    assert set(update["devices"]) == {"color", "symbol", "size", "hovertext"}
    assert update["devices"]["color"] == list(devices[0].marker.color)


def replace_registry(data: Any, registry: list[Any]) -> Any:
    """The same named queries with a device registry."""
    from dashboard.data import DashboardData

    return DashboardData(
        data.store,
        data.metrics,
        clock=data.clock,
        level=data.level,
        scope=data.scope,
        devices=lambda: registry,
        rules=data_rules(),
        stale_after=timedelta(minutes=15),
    )


def data_rules() -> Any:
    return load_settings(REPO / "config.yaml", environ=NATIONAL).alerts.rules


def test_a_day_before_the_reform_is_mapped_from_the_old_units_and_says_so(
    settings: Settings, geography: Geography, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    evening = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)  # 19:00 in Đà Nẵng
    old = {"province": "48", "district": "490"}  # pre-2025 Liên Chiểu
    # Old Hòa Hiệp Bắc (20194) and Hòa Hiệp Nam (20195) both became new Hải Vân.
    store.write(
        [
            Point("air", {"device": "aq-1", "commune": "20194", **old}, {"pm25": 10.0}, evening),
            Point("air", {"device": "aq-2", "commune": "20195", **old}, {"pm25": 30.0}, evening),
        ]
    )
    ctx = build_context(
        settings,
        store,
        MapViews(geography, GeoCache(geography)),
        clock=FakeClock(NOW),
        history=load_history(settings, geography.hierarchy),
    )
    figure, _, _, _, status, note, _ = refresh_map(
        ctx, ADMIN, "pm25", "vi", None, None, 20, "48", "2025-03-15"
    )
    assert status == ""
    hai_van = next(
        (data, z)
        for trace in figure.data
        if trace.type == "choropleth"
        for code, data, z in zip(trace.locations, trace.customdata, trace.z, strict=True)
        if code == HAI_VAN
    )
    assert hai_van[0][1] == "20,0 µg/m³"  # mean of the two old communes' devices
    assert "từ 2 đơn vị cũ: 20194, 20195" in hai_van[0][3]
    assert note == (
        "Giá trị cuối ngày 15/03/2025 · 1 đơn vị quy đổi từ đơn vị hành chính trước 01/07/2025"
    )
    # The same day in English, and live: no note; and no devices drawn on a past day.
    assert refresh_map(ctx, ADMIN, "pm25", "en", None, None, 20, "48", "2025-03-15")[5].startswith(
        "Values at the end of 15/03/2025 · 1 units mapped"
    )
    live = refresh_map(ctx, ADMIN, "pm25", "vi", None, None, 20, "48", None)
    assert live[5] == ""
    assert HAI_VAN not in [
        code
        for trace in live[0].data
        for code, z in zip(trace.locations, trace.customdata, strict=True)
        if z[1] != "Không có dữ liệu"
    ]
    store.close()
