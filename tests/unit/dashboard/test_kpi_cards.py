"""The KPI cards (dashboard/views/kpi.py): numbers, bands, change, time and old data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from core.settings import Settings
from dashboard.kpi import empty_kpis, parse_range
from dashboard.views.kpi import change_text, kpi_cards, period_label, versus_label
from tests.unit.dashboard.test_panel_and_legend import texts

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 4, 1, 0, tzinfo=UTC)
STALE_AFTER = timedelta(minutes=15)


def frame(settings: Settings, **rows: dict[str, Any]) -> pd.DataFrame:
    out = empty_kpis(settings.metrics)
    for metric_id, values in rows.items():
        for column, value in values.items():
            out.loc[metric_id, column] = value
    return out


def card(cards: Any, metric_id: str) -> Any:
    found = [c for c in cards.children if c.to_plotly_json()["props"]["data-metric"] == metric_id]
    assert len(found) == 1
    return found[0]


def trend_of(component: Any) -> str:
    """The data-trend of the card's change line."""
    found = [
        child.to_plotly_json()["props"]["data-trend"]
        for child in component.children
        if child is not None and "data-trend" in child.to_plotly_json()["props"]
    ]
    assert len(found) == 1
    return str(found[0])


def state(component: Any) -> str:
    return str(component.to_plotly_json()["props"]["data-state"])


def test_a_card_shows_value_band_change_and_time(settings: Settings) -> None:
    kpis = frame(
        settings,
        pm25={
            "value": 60.04,
            "previous": 47.74,
            "change": 12.3,
            "change_pct": 25.77,
            "ts": NOW - timedelta(minutes=3),
            "devices": 1234,
        },
    )
    cards = kpi_cards(kpis, settings.metrics, "vi", NOW, STALE_AFTER, TZ)
    assert len(cards.children) == len(settings.metrics)
    pm25 = card(cards, "pm25")
    words = texts(pm25)
    assert words[:3] == ["Bụi mịn PM2.5", "60,0", "µg/m³"]
    assert "Kém" in words  # 60 µg/m³ is in the band 50–80
    assert "▲ 12,3 µg/m³ (+25,8 %)" in words
    assert "so với 24 giờ trước: 47,7 µg/m³" in words
    assert "lúc 07:57 04/11" in words  # local time
    assert "1.234 thiết bị" in words
    assert state(pm25) == "fresh"
    assert pm25.style == {"borderTopColor": "#FF7E00"}
    assert trend_of(pm25) == "worse"  # more dust is bad news
    english = texts(card(kpi_cards(kpis, settings.metrics, "en", NOW, STALE_AFTER, TZ), "pm25"))
    assert "60.0" in english
    assert "Poor" in english
    assert "vs 24 hours earlier: 47.7 µg/m³" in english


def test_no_data_old_data_and_nothing_to_compare(settings: Settings) -> None:
    kpis = frame(
        settings,
        pm10={"value": 20.0, "ts": NOW - timedelta(hours=2), "devices": 1},
    )
    cards = kpi_cards(kpis, settings.metrics, "vi", NOW, STALE_AFTER, TZ)
    pm10 = card(cards, "pm10")
    assert state(pm10) == "stale"
    assert "Dữ liệu cũ, 2,0 giờ trước" in texts(pm10)
    assert "Không có số liệu để so sánh" in texts(pm10)
    water = card(cards, "water_level")
    assert state(water) == "no-data"
    assert texts(water) == ["Mực nước", "Không có dữ liệu"]
    # A metric without bands has no band line (water level).
    wet = frame(settings, water_level={"value": 1.256, "ts": NOW, "devices": 1})
    words = texts(card(kpi_cards(wet, settings.metrics, "vi", NOW, STALE_AFTER, TZ), "water_level"))
    assert words[1:3] == ["1,26", "m"]
    assert "Dưới báo động I" not in words


def test_a_past_range_is_never_old_data(settings: Settings) -> None:
    week = parse_range("custom", "2026-10-19", "2026-10-25", NOW, TZ)
    kpis = frame(
        settings,
        pm25={"value": 20.0, "previous": 25.0, "change": -5.0, "change_pct": -20.0,
              "ts": datetime(2026, 10, 25, 16, 0, tzinfo=UTC), "devices": 2},
    )  # fmt: skip
    pm25 = card(kpi_cards(kpis, settings.metrics, "vi", NOW, STALE_AFTER, TZ, period=week), "pm25")
    words = texts(pm25)
    assert state(pm25) == "fresh"
    assert "Trung bình 19/10/2026–25/10/2026" in words
    assert "▼ 5,0 µg/m³ (−20,0 %)" in words
    assert "so với 12/10/2026–18/10/2026: 25,0 µg/m³" in words
    assert "Lần đo cuối: 23:00 25/10" in words
    assert trend_of(pm25) == "better"


def test_the_overview_panel_frame_has_no_change_line(settings: Settings) -> None:
    latest = pd.DataFrame(
        {"value": [30.0], "ts": [NOW], "devices": [2]}, index=pd.Index(["pm25"], name="metric")
    )
    pm25 = card(kpi_cards(latest, settings.metrics, "vi", NOW, STALE_AFTER, TZ), "pm25")
    words = texts(pm25)
    assert "30,0" in words
    assert "Trung bình" in words
    assert not any("so với" in word or "so sánh" in word for word in words)
    assert state(card(kpi_cards(latest, settings.metrics, "vi", NOW, STALE_AFTER, TZ), "pm10")) == (
        "no-data"
    )


@pytest.mark.parametrize(
    ("change", "pct", "expected", "trend"),
    [
        (0.04, 0.1, "= 0,0 µg/m³ (+0,1 %)", "same"),
        (-12.26, None, "▼ 12,3 µg/m³", "better"),
        (1234.5, 300.0, "▲ 1.234,5 µg/m³ (+300,0 %)", "worse"),
    ],
)
def test_change_text(
    settings: Settings, change: float, pct: float | None, expected: str, trend: str
) -> None:
    assert change_text(settings.metrics["pm25"], change, pct, "vi") == (expected, trend)


def test_period_labels() -> None:
    assert period_label(None, "vi") == "Hiện tại"
    assert period_label(parse_range("7d", None, None, NOW, TZ), "en") == "last 7 days"
    assert versus_label(parse_range("30d", None, None, NOW, TZ), "vi", TZ) == (
        "so với 30 ngày trước đó"
    )
