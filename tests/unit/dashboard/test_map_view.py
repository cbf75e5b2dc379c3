"""The map figure and its refresh update, as plain functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
import pytest

from core.settings import Label, MetricSettings, Settings
from core.types import UnitValue
from dashboard.data import unit_values_frame
from dashboard.views.bands import NO_DATA_COLOUR, band_scale, map_z
from dashboard.views.map import (
    OUTLINE_WIDTH,
    SELECTED_WIDTH,
    MapUnit,
    fresh_points,
    inset_codes,
    map_arrays,
    map_figure,
    map_update,
    trace_rows,
)
from layers.geography import Geography

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 08:00 in Đà Nẵng
STALE_AFTER = timedelta(minutes=15)
GEO_URL = "/geo/commune.json"

UNITS = [
    MapUnit("20194", Label(vi="Phường Hải Vân", en="Hai Van Ward")),
    MapUnit("20197", Label(vi="Phường Liên Chiểu", en="Lien Chieu Ward")),
    MapUnit("20200", Label(vi="Phường Hòa Khánh", en="Hoa Khanh Ward")),
    MapUnit("20333", Label(vi="Đặc khu Hoàng Sa", en="Hoang Sa Special Zone")),
]


@pytest.fixture
def pm25(settings: Settings) -> MetricSettings:
    return settings.metrics["pm25"]


@pytest.fixture
def values() -> pd.DataFrame:
    return unit_values_frame(
        [
            UnitValue("20194", 95.0, NOW - timedelta(minutes=2), 3),  # Xấu, fresh
            UnitValue("20197", 25.0, NOW - timedelta(hours=2), 1),  # Tốt, stale
            UnitValue("20333", 12.0, NOW - timedelta(minutes=1), 1),  # Tốt, fresh
            UnitValue("99999", 12.0, NOW, 1),  # not on the map: ignored
        ]
    )  # 20200 has no data


def arrays_for(values: pd.DataFrame, metric: MetricSettings, **options: Any) -> Any:
    return map_arrays(
        UNITS, values, metric, lang="vi", now=NOW, stale_after=STALE_AFTER, tz=HCM, **options
    )


def test_hover_texts_values_and_states(values: pd.DataFrame, pm25: MetricSettings) -> None:
    arrays = arrays_for(values, pm25)
    assert arrays.customdata[0] == ["Phường Hải Vân", "95,0 µg/m³", "Xấu", "lúc 07:58 02/11"]
    assert arrays.customdata[1] == [
        "Phường Liên Chiểu",
        "25,0 µg/m³",
        "Tốt · Dữ liệu cũ",
        "lúc 06:00 02/11",
    ]
    assert arrays.customdata[2] == ["Phường Hòa Khánh", "Không có dữ liệu", "", ""]
    assert arrays.stale == [False, True, False, False]
    scale = band_scale(pm25)
    assert arrays.z == [95.0, 25.0, scale.no_data_z, 12.0]


def test_hover_in_english(values: pd.DataFrame, pm25: MetricSettings) -> None:
    arrays = map_arrays(UNITS, values, pm25, lang="en", now=NOW, stale_after=STALE_AFTER, tz=HCM)
    assert arrays.customdata[0] == ["Hai Van Ward", "95.0 µg/m³", "Bad", "at 07:58 02/11"]
    assert arrays.customdata[1][2] == "Good · Old data"
    assert arrays.customdata[2][1] == "No data"


def test_selected_unit_is_outlined_and_outlines_follow_the_text_size(
    values: pd.DataFrame, pm25: MetricSettings
) -> None:
    arrays = arrays_for(values, pm25, selected="20200", text_px=40.0)
    assert arrays.outline_width == [
        OUTLINE_WIDTH * 2,
        OUTLINE_WIDTH * 2,
        SELECTED_WIDTH * 2,
        OUTLINE_WIDTH * 2,
    ]
    assert arrays.outline[2] != arrays.outline[0]


def test_figure_references_geometry_by_url_on_a_blank_background(
    values: pd.DataFrame, pm25: MetricSettings
) -> None:
    arrays = arrays_for(values, pm25)
    figure = map_figure(GEO_URL, UNITS, arrays, band_scale(pm25), lang="vi")
    assert len(figure.data) == 1
    trace = figure.data[0]
    assert isinstance(trace, go.Choropleth)
    assert trace.geojson == GEO_URL  # a URL, not the FeatureCollection
    assert trace.featureidkey == "id"
    assert list(trace.locations) == [unit.code for unit in UNITS]
    assert trace.showscale is False
    assert trace.zmin == band_scale(pm25).zmin
    assert list(trace.selectedpoints) == [0, 2, 3]  # the stale unit is faded
    geo = figure.layout.geo
    assert geo.visible is False
    assert geo.fitbounds == "locations"
    assert "FeatureCollection" not in figure.to_json()


def test_far_units_go_to_an_inset(values: pd.DataFrame, pm25: MetricSettings) -> None:
    arrays = arrays_for(values, pm25)
    inset = frozenset({"20333"})
    figure = map_figure(GEO_URL, UNITS, arrays, band_scale(pm25), lang="vi", inset=inset)
    assert [list(trace.locations) for trace in figure.data] == [
        ["20194", "20197", "20200"],
        ["20333"],
    ]
    assert figure.data[1].geo == "geo2"
    assert figure.layout.geo2.fitbounds == "locations"
    assert figure.layout.annotations[0].text == "Đặc khu Hoàng Sa"
    # All locations are still drawn exactly once.
    assert sum(len(trace.locations) for trace in figure.data) == len(UNITS)


def test_update_carries_only_the_changing_arrays(
    values: pd.DataFrame, pm25: MetricSettings
) -> None:
    inset = frozenset({"20333"})
    arrays = arrays_for(values, pm25, selected="20194")
    update = map_update(arrays, UNITS, "pm25|vi|20", inset)
    assert update["key"] == "pm25|vi|20"
    traces = update["traces"]
    assert [set(trace) for trace in traces] == [
        {"z", "fill", "customdata", "selectedpoints", "line_color", "line_width"}
    ] * 2
    rows = trace_rows(UNITS, inset)
    assert traces[0]["z"] == [arrays.z[index] for index in rows[0]]
    assert traces[1]["z"] == [map_z(band_scale(pm25), 12.0)]
    # The colour plotly.js draws for each z: its band's, grey without data.
    assert traces[0]["fill"] == ["#FF0000", "#00E400", NO_DATA_COLOUR]  # Xấu, Tốt, none
    assert traces[1]["fill"] == ["#00E400"]
    assert traces[0]["selectedpoints"] == [0, 2]
    assert traces[1]["selectedpoints"] is None  # nothing stale: nothing faded
    assert traces[1]["line_color"] == "#FFFFFF"  # one value when the trace has no selection
    # What the update carries is what a full figure would hold.
    figure = map_figure(GEO_URL, UNITS, arrays, band_scale(pm25), lang="vi", inset=inset)
    assert list(figure.data[0].customdata[0]) == traces[0]["customdata"][0]
    assert list(figure.data[0].marker.line.color) == traces[0]["line_color"]
    assert "FeatureCollection" not in json.dumps(update)


def test_fresh_points() -> None:
    arrays = map_arrays(
        UNITS[:2],
        unit_values_frame([]),
        MetricSettings(kind="air", field="pm25", label=Label(vi="a", en="a"), unit=""),
        lang="vi",
        now=NOW,
        stale_after=STALE_AFTER,
        tz=HCM,
    )
    assert fresh_points(arrays, [0, 1]) is None
    arrays.stale[1] = True
    assert fresh_points(arrays, [0, 1]) == [0]


def test_inset_holds_hoang_sa_only(geography: Geography) -> None:
    frame = geography.boundaries("commune")
    bounds = frame.bounds
    bounds["code"] = frame["code"].astype(str)
    far = inset_codes(bounds)
    assert len(far) == 1
    (code,) = far
    assert geography.hierarchy.unit(code).full_name == "Đặc khu Hoàng Sa"


def test_no_inset_for_a_compact_area() -> None:
    grid = pd.DataFrame(
        [
            {"code": f"{x}{y}", "minx": x, "miny": y, "maxx": x + 1, "maxy": y + 1}
            for x in range(5)
            for y in range(5)
        ]
    )
    assert inset_codes(grid) == frozenset()
