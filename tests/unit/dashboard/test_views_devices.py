"""The device layer's trace, its recolouring arrays and legend, as plain functions on frames
made by device_frame."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest

from core.settings import AlertRule, Settings
from core.types import MetricRef, UnitRef, UnitValue
from dashboard.devices import device_frame
from dashboard.views.bands import NEUTRAL_COLOUR, NO_DATA_COLOUR
from dashboard.views.devices import (
    STATE_COLOURS,
    device_legend,
    device_patch_values,
    device_trace,
)
from layers.registry import Device

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 08:00 in Đà Nẵng
TAGS = {"province": "48", "commune": "20194"}
RULES = [
    AlertRule(id="pm25-bad", metric="pm25", level="commune", op="above", threshold=80,
              severity="critical"),
    AlertRule(id="pm25-high", metric="pm25", level="commune", op="above", threshold=50,
              severity="warning"),
]  # fmt: skip
DEVICES = [
    Device("aq-1", "air", "Trường Tiểu học Hải Vân", 108.13, 16.12, "20194", TAGS),
    Device("aq-2", "air", "Cảng Liên Chiểu", 108.14, 16.11, "20194", TAGS),
    Device("aq-3", "air", "Chợ <Hòa Khánh> & bến xe", 108.15, 16.07, "20194", TAGS),
    Device("aq-4", "air", "Công viên", 108.16, 16.06, "20194", TAGS),
    Device("x-1", "noise", "Ngã tư Điện Biên Phủ", 108.17, 16.05, "20194", TAGS),
]


class CannedStore:
    """Answers latest_by_unit per device from a table {metric field: {device: (value, ts)}}."""

    def __init__(self, table: Mapping[str, Mapping[str, tuple[float, datetime]]]) -> None:
        self.table = table

    def latest_by_unit(
        self,
        metric: MetricRef,
        level: str,
        *,
        since: datetime,
        parent: UnitRef | None = None,
        aggregation: Any = "mean",
        until: datetime | None = None,
    ) -> list[UnitValue]:
        found = self.table.get(metric.field, {})
        return [UnitValue(code, value, ts, 1) for code, (value, ts) in sorted(found.items())]


def frame_of(settings: Settings, pm25: Mapping[str, tuple[float, datetime]]) -> pd.DataFrame:
    return device_frame(
        CannedStore({"pm25": pm25}),
        DEVICES,
        settings.metrics,
        RULES,
        now=NOW,
        stale_after=timedelta(minutes=15),
        lookback=timedelta(hours=24),
    )


@pytest.fixture
def frame(settings: Settings) -> pd.DataFrame:
    return frame_of(
        settings,
        {
            "aq-1": (95.0, NOW - timedelta(minutes=2)),  # alarm
            "aq-2": (60.0, NOW - timedelta(minutes=1)),  # warning
            "aq-3": (20.0, NOW - timedelta(hours=3)),  # offline
            "aq-4": (20.0, NOW - timedelta(minutes=4)),  # ok
        },  # x-1 never reported: offline
    )


def test_the_frame_has_one_device_per_state(frame: pd.DataFrame) -> None:
    assert frame["state"].tolist() == ["alarm", "warning", "offline", "ok", "offline"]


def test_colours_and_symbols_per_state(frame: pd.DataFrame) -> None:
    values = device_patch_values(frame, "vi")
    assert values.color == ["#FF00FF", "#00E5FF", "#4B5563", "#FFFFFF", "#4B5563"]
    assert values.symbol == ["diamond", "triangle-up", "circle-x", "circle", "circle-x"]
    assert values.size == [15.0, 13.0, 11.0, 10.0, 11.0]


def test_state_colours_differ_from_every_map_colour(settings: Settings) -> None:
    map_colours = {NO_DATA_COLOUR.upper(), NEUTRAL_COLOUR.upper()}
    for metric in settings.metrics.values():
        map_colours |= {band.color.upper() for band in metric.bands}
    assert len(set(STATE_COLOURS.values())) == 4
    assert not set(STATE_COLOURS.values()) & map_colours


def test_hover_in_vietnamese(frame: pd.DataFrame, settings: Settings) -> None:
    hover = device_patch_values(frame, "vi", metrics=settings.metrics).hovertext
    assert hover[0] == (
        "<b>Trường Tiểu học Hải Vân</b><br>Cảm biến không khí · aq-1<br>Báo động"
        "<br>Bụi mịn PM2.5: 95,0 µg/m³<br>Lần cuối: 07:58 02/11"
    )
    assert hover[1].split("<br>")[2:] == [
        "Cảnh báo",
        "Bụi mịn PM2.5: 60,0 µg/m³",
        "Lần cuối: 07:59 02/11",
    ]
    # the registry name is escaped; an offline device says when it was last seen
    assert hover[2] == (
        "<b>Chợ &lt;Hòa Khánh&gt; &amp; bến xe</b><br>Cảm biến không khí · aq-3<br>Mất kết nối"
        "<br>Lần cuối: 05:00 02/11"
    )
    assert hover[3].split("<br>")[2:] == ["Bình thường", "Lần cuối: 07:56 02/11"]
    # a kind without a text is shown as written; a device never seen says so
    assert hover[4] == (
        "<b>Ngã tư Điện Biên Phủ</b><br>noise · x-1<br>Mất kết nối<br>Chưa từng gửi dữ liệu"
    )


def test_hover_in_english(frame: pd.DataFrame, settings: Settings) -> None:
    hover = device_patch_values(frame, "en", metrics=settings.metrics).hovertext
    assert hover[0] == (
        "<b>Trường Tiểu học Hải Vân</b><br>Air quality sensor · aq-1<br>Alarm"
        "<br>Fine dust PM2.5: 95.0 µg/m³<br>Last seen: 07:58 02/11"
    )
    assert [line.split("<br>")[2] for line in hover] == [
        "Alarm",
        "Warning",
        "Offline",
        "OK",
        "Offline",
    ]
    assert hover[4].endswith("<br>Never reported")


def test_hover_without_the_catalogue_leaves_out_the_value(frame: pd.DataFrame) -> None:
    hover = device_patch_values(frame, "en").hovertext
    assert hover[0] == (
        "<b>Trường Tiểu học Hải Vân</b><br>Air quality sensor · aq-1<br>Alarm"
        "<br>Last seen: 07:58 02/11"
    )


def test_trace_places_each_device_and_scales_with_the_text(
    frame: pd.DataFrame, settings: Settings
) -> None:
    trace = device_trace(frame, lang="vi", text_px=30.0, metrics=settings.metrics)
    assert isinstance(trace, go.Scattergeo)
    assert trace.mode == "markers"
    assert trace.geo == "geo"
    assert list(trace.ids) == ["aq-1", "aq-2", "aq-3", "aq-4", "x-1"]
    assert list(trace.lon) == [108.13, 108.14, 108.15, 108.16, 108.17]
    assert list(trace.lat) == [16.12, 16.11, 16.07, 16.06, 16.05]
    assert list(trace.marker.size) == [22.5, 19.5, 16.5, 15.0, 16.5]  # x 30/20
    assert trace.marker.line.width == pytest.approx(2.25)
    assert trace.marker.line.color == "#111827"
    assert trace.hovertemplate == "%{hovertext}<extra></extra>"


def test_patch_arrays_line_up_with_the_trace_points(
    frame: pd.DataFrame, settings: Settings
) -> None:
    trace = device_trace(frame, lang="en", metrics=settings.metrics)
    values = device_patch_values(frame, "en", metrics=settings.metrics)
    assert list(trace.marker.color) == values.color
    assert list(trace.marker.symbol) == values.symbol
    assert list(trace.marker.size) == values.size
    assert list(trace.hovertext) == values.hovertext
    by_id = dict(zip(trace.ids, values.color, strict=True))
    assert by_id == {
        "aq-1": STATE_COLOURS["alarm"],
        "aq-2": STATE_COLOURS["warning"],
        "aq-3": STATE_COLOURS["offline"],
        "aq-4": STATE_COLOURS["ok"],
        "x-1": STATE_COLOURS["offline"],
    }


def test_old_trace_patched_with_new_values_is_the_new_trace(
    frame: pd.DataFrame, settings: Settings
) -> None:
    """A refresh sends only the patch values: applied to the old trace they must give what
    a full redraw would, point for point, since the devices kept their order."""
    later = frame_of(
        settings,
        {
            "aq-1": (30.0, NOW - timedelta(minutes=1)),  # alarm -> ok
            "aq-3": (90.0, NOW - timedelta(minutes=1)),  # offline -> alarm
            "x-1": (1.0, NOW - timedelta(minutes=1)),  # noise: no catalogue metric, offline
        },
    )
    old = device_trace(frame, lang="vi").to_plotly_json()
    new = device_trace(later, lang="vi").to_plotly_json()
    values = device_patch_values(later, "vi")
    old["marker"] |= {"color": values.color, "symbol": values.symbol, "size": values.size}
    old["hovertext"] = values.hovertext
    assert old == new
    assert values.color == ["#FFFFFF", "#4B5563", "#FF00FF", "#4B5563", "#4B5563"]


def test_legend_rows_in_both_languages() -> None:
    assert device_legend("vi") == [
        ("ok", "#FFFFFF", "Bình thường"),
        ("warning", "#00E5FF", "Cảnh báo"),
        ("alarm", "#FF00FF", "Báo động"),
        ("offline", "#4B5563", "Mất kết nối"),
    ]
    assert [label for _, _, label in device_legend("en")] == ["OK", "Warning", "Alarm", "Offline"]


def test_an_empty_frame_gives_an_empty_trace(settings: Settings) -> None:
    empty = device_frame(
        CannedStore({}),
        [],
        settings.metrics,
        RULES,
        now=NOW,
        stale_after=timedelta(minutes=15),
        lookback=timedelta(hours=24),
    )
    trace = device_trace(empty, lang="vi")
    assert list(trace.lon) == []
    assert device_patch_values(empty, "vi").color == []
