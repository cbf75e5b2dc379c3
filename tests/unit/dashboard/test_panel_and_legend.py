"""The unit panel, the trend chart and the legend, as plain functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dash import dcc, html

from core.settings import Settings
from core.types import SeriesPoint, UnitValue
from dashboard.data import series_frame, unit_values_frame
from dashboard.views.bands import band_scale
from dashboard.views.legend import legend, legend_rows
from dashboard.views.panel import (
    message_panel,
    metric_rows,
    trend_figure,
    trend_y_range,
    unit_panel,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
STALE_AFTER = timedelta(minutes=15)


def texts(component: Any) -> list[str]:
    """Every string in a Dash component tree, depth first."""
    if isinstance(component, str):
        return [component]
    if isinstance(component, list | tuple):
        return [item for child in component for item in texts(child)]
    children = getattr(component, "children", None)
    return texts(children) if children is not None else []


def find(component: Any, predicate: Any) -> list[Any]:
    found = [component] if predicate(component) else []
    children = getattr(component, "children", None)
    if isinstance(children, list | tuple):
        for child in children:
            found.extend(find(child, predicate))
    elif children is not None and not isinstance(children, str):
        found.extend(find(children, predicate))
    return found


def latest_frame(rows: list[UnitValue], order: list[str]) -> pd.DataFrame:
    frame = unit_values_frame(rows).reindex(order)
    frame.index.name = "metric"
    return frame


@pytest.fixture
def latest(settings: Settings) -> pd.DataFrame:
    return latest_frame(
        [
            UnitValue("pm25", 95.0, NOW - timedelta(minutes=2), 3),
            UnitValue("pm10", 40.0, NOW - timedelta(hours=3), 1),
        ],
        list(settings.metrics),
    )


def test_rows_show_every_metric_with_band_no_data_and_old_data(
    settings: Settings, latest: pd.DataFrame
) -> None:
    rows = metric_rows(
        latest, settings.metrics, lang="vi", now=NOW, stale_after=STALE_AFTER, tz=HCM,
        selected_metric="pm25",
    )  # fmt: skip
    by_metric = {row.to_plotly_json()["props"]["data-metric"]: row for row in rows.children}
    assert list(by_metric) == list(settings.metrics)

    pm25 = by_metric["pm25"]
    assert texts(pm25) == ["Bụi mịn PM2.5", "95,0 µg/m³", "Xấu", "lúc 07:58 02/11"]
    assert pm25.children[0].style == {"backgroundColor": "#FF0000"}
    assert "metric-row-selected" in pm25.className

    pm10 = by_metric["pm10"]
    assert texts(pm10) == ["Bụi PM10", "40,0 µg/m³", "Tốt", "Dữ liệu cũ, từ 05:00 02/11"]
    assert pm10.to_plotly_json()["props"]["data-state"] == "stale"

    water = by_metric["water_level"]
    assert texts(water) == ["Mực nước", "Không có dữ liệu"]
    assert water.to_plotly_json()["props"]["data-state"] == "no-data"


def test_trend_draws_local_time_over_band_backgrounds(settings: Settings) -> None:
    pm25 = settings.metrics["pm25"]
    series = series_frame(
        [SeriesPoint(NOW - timedelta(minutes=15 * step), 20.0 + step) for step in range(40)]
    )  # 20 … 59 µg/m³
    figure = trend_figure(
        series, pm25, lang="vi", now=NOW, window=timedelta(hours=24), tz=HCM, text_px=40
    )
    trace = figure.data[0]
    assert pd.Timestamp(trace.x[-1]) == pd.Timestamp("2026-11-02 08:00")  # local, naive
    shapes = figure.layout.shapes
    # Tốt, Trung bình, Kém are within 0 … 80; the range stops at the band the data reaches.
    assert [shape.fillcolor for shape in shapes] == ["#00E400", "#FFFF00", "#FF7E00"]
    assert [(shape.y0, shape.y1) for shape in shapes] == [(0, 25), (25, 50), (50, 80)]
    assert tuple(figure.layout.yaxis.range) == (0, 80)
    assert figure.layout.separators == ",."  # 12,5 in Vietnamese
    assert figure.layout.font.size == 30  # 0.75 × the page's 40 px text


def test_trend_range_above_the_last_band(settings: Settings) -> None:
    scale = band_scale(settings.metrics["pm25"])
    bottom, top = trend_y_range(scale, pd.Series([100.0, 400.0]))
    assert bottom == 0
    assert top > 400


def test_trend_range_keeps_a_flat_line_off_the_top(settings: Settings) -> None:
    alarm = band_scale(settings.metrics["flood_alarm"])
    assert trend_y_range(alarm, pd.Series([0.0, 0.0])) == (0.0, 1.0)
    assert trend_y_range(alarm, pd.Series([1.0, 2.0])) == (0.0, 2.0 + 0.1 * 2.0)
    pm25 = band_scale(settings.metrics["pm25"])
    assert trend_y_range(pm25, pd.Series([25.0])) == (0.0, 50.0)


def test_panel_with_and_without_trend(settings: Settings, latest: pd.DataFrame) -> None:
    pm25 = settings.metrics["pm25"]
    rows = metric_rows(
        latest, settings.metrics, lang="vi", now=NOW, stale_after=STALE_AFTER, tz=HCM
    )
    title = "Phường Hải Vân, Thành phố Đà Nẵng"
    empty = unit_panel(title, rows, pm25, None, lang="vi")
    assert title in texts(empty)
    assert "Không có dữ liệu trong 24 giờ qua" in texts(empty)
    assert find(empty, lambda node: isinstance(node, dcc.Graph)) == []

    series = series_frame([SeriesPoint(NOW - timedelta(minutes=15), 30.0)])
    figure = trend_figure(series, pm25, lang="vi", now=NOW, window=timedelta(hours=24), tz=HCM)
    drawn = unit_panel(title, rows, pm25, figure, lang="en")
    graphs = find(drawn, lambda node: isinstance(node, dcc.Graph))
    assert len(graphs) == 1
    assert "Fine dust PM2.5 (µg/m³), last 24 hours" in texts(drawn)


def test_message_panel() -> None:
    panel = message_panel("Không tải được dữ liệu", kind="error")
    assert texts(panel) == ["Không tải được dữ liệu"]
    assert find(panel, lambda node: isinstance(node, html.P))[0].className.endswith("panel-error")


def test_legend_lists_bands_then_no_data_and_old_data(settings: Settings) -> None:
    pm25 = settings.metrics["pm25"]
    assert legend_rows(pm25, "vi")[0] == ("#00E400", "Tốt", "0–25 µg/m³")
    assert legend_rows(pm25, "en")[-1] == ("#7E0023", "Hazardous", "above 250 µg/m³")
    shown = texts(legend(pm25, "vi", stale_after=STALE_AFTER))
    assert shown[0] == "Bụi mịn PM2.5 (µg/m³)"
    assert shown[1:4] == ["Tốt", "0–25 µg/m³", "Trung bình"]
    assert "Không có dữ liệu" in shown
    assert "Dữ liệu cũ" in shown
    assert "quá 15 phút chưa cập nhật" in shown
    assert shown[-1] == pm25.source
