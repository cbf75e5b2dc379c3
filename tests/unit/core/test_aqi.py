"""VN_AQI (core/aqi.py) against hand-worked examples of Decision 1459/QĐ-TCMT's rules
(../shared/reference/vn-kpis-thresholds.md §1: Bảng 1 bands, Bảng 2 breakpoints, NowCast).

Each expected number is worked out in the comment beside it with
AQIₓ = (Iᵢ₊₁ − Iᵢ)/(BPᵢ₊₁ − BPᵢ) × (Cₓ − BPᵢ) + Iᵢ, rounded half up."""

from __future__ import annotations

import re

import pytest

from core.aqi import BANDS, band, daily_aqi, hourly_aqi, nowcast, round_index, sub_index
from core.settings import load_settings
from tests.conftest import REPO
from tests.fixtures.signin import TEST_SECRET_ENV


@pytest.mark.parametrize(
    ("column", "concentration", "expected"),
    [
        ("pm25", 35.0, 70),  # 50 + 50/25 × (35 − 25) = 70
        ("pm25", 12.5, 25),  # 0 + 50/25 × 12.5
        ("pm10", 200.0, 125),  # 100 + 50/100 × (200 − 150)
        ("pm10", 385.0, 250),  # 200 + 100/70 × (385 − 350)
        ("co", 20_000.0, 75),  # 50 + 50/20 000 × 10 000
        ("o3_1h", 180.0, 75),  # 50 + 50/40 × 20
        ("o3_8h", 110.0, 75),  # 50 + 50/20 × 10
        ("no2", 450.0, 125),  # 100 + 50/500 × 250
        ("so2", 800.0, 200),  # exactly BP₅ of SO₂
        ("so2", 0.0, 0),
        ("pm25", 25.0, 50),  # a breakpoint: both segments give 50
        ("pm25", 25.2, 50),  # 50.4 → 50
        ("pm25", 25.25, 51),  # 50.5 → 51: halves go up
        ("pm25", 500.0, 500),  # level 8
        ("pm25", 900.0, 500),  # above the table
        ("co", 150_000.0, 500),
    ],
)
def test_sub_index_interpolates_on_bang_2(column: str, concentration: float, expected: int) -> None:
    assert sub_index(column, concentration) == expected


def test_sub_index_refuses_what_has_no_index() -> None:
    with pytest.raises(ValueError, match="o3_8h above 400"):
        sub_index("o3_8h", 401.0)
    with pytest.raises(
        ValueError, match=re.escape("pm25 concentration must be a finite number ≥ 0: -1.0")
    ):
        sub_index("pm25", -1.0)
    with pytest.raises(ValueError, match="nan"):
        sub_index("pm10", float("nan"))
    with pytest.raises(ValueError, match="no VN_AQI breakpoint column 'pm1'"):
        sub_index("pm1", 10.0)


def test_round_index_sends_halves_up() -> None:
    assert [round_index(x) for x in (50.5, 100.5, 0.49, 312.5)] == [51, 101, 0, 313]


def test_nowcast_weight_is_at_least_a_half() -> None:
    # c = 40, 30, 20 (newest first): w* = 20/40 = 0.5 → w = 0.5;
    # (40 + 0.5·30 + 0.25·20) / (1 + 0.5 + 0.25) = 60 / 1.75
    assert nowcast([40.0, 30.0, 20.0]) == pytest.approx(60 / 1.75)
    # c = 30, 40, 32: w* = 30/40 = 0.75 → w = 0.75;
    # (30 + 0.75·40 + 0.5625·32) / (1 + 0.75 + 0.5625) = 78 / 2.3125
    assert nowcast([30.0, 40.0, 32.0]) == pytest.approx(78 / 2.3125)
    # Steady air: the NowCast is the concentration.
    assert nowcast([35.0] * 12) == pytest.approx(35.0)
    assert nowcast([0.0, 0.0, 0.0]) == 0.0


def test_nowcast_missing_hours_keep_their_place() -> None:
    # c₂ missing: (40 + 0.5²·20) / (1 + 0.5²) = 45 / 1.25 = 36
    assert nowcast([40.0, None, 20.0]) == pytest.approx(36.0)
    assert nowcast([None, 20.0, 20.0, 99.0]) == pytest.approx((20 + 0.5 * 20 + 0.25 * 99) / 1.75)
    # Fewer than 2 valid values among c₁–c₃: no NowCast, however much data is older.
    assert nowcast([None, None, 50.0, *[50.0] * 9]) is None
    assert nowcast([50.0, None, None, 50.0]) is None
    assert nowcast([]) is None


def test_nowcast_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="at most 12 hours: 13"):
        nowcast([1.0] * 13)
    with pytest.raises(ValueError, match="pm10 concentration"):
        nowcast([1.0, -2.0], "pm10")


def test_hourly_aqi_is_the_largest_sub_index() -> None:
    result = hourly_aqi({"pm25": [35.0] * 12, "pm10": [200.0] * 12})
    assert result is not None
    assert (result.value, result.dominant) == (125, "pm10")  # PM2.5 70, PM10 125
    assert result.sub_indices == {"pm25": 70, "pm10": 125}
    # A rising PM2.5: c = 40, 30, 20 → NowCast 34.286 → 50 + 2 × 9.286 = 68.57 → 69.
    rising = hourly_aqi({"pm25": [40.0, 30.0, 20.0]})
    assert rising is not None
    assert rising.value == 69
    # O₃ uses its 1-hour column: 180 → 75, above PM2.5's 70.
    with_o3 = hourly_aqi({"pm25": [35.0] * 3}, {"o3": 180.0, "no2": None})
    assert with_o3 is not None
    assert (with_o3.value, with_o3.dominant) == (75, "o3")
    assert "no2" not in with_o3.sub_indices


def test_no_index_without_pm() -> None:
    assert hourly_aqi({}, {"o3": 180.0, "co": 20_000.0}) is None
    assert hourly_aqi({"pm25": [None, None, 35.0]}, {"o3": 180.0}) is None  # PM too sparse
    assert daily_aqi({"o3": [100.0] * 24, "pm10": [None] * 24}) is None


def test_hourly_aqi_names_a_bad_pollutant() -> None:
    with pytest.raises(ValueError, match=r"hourly PM input must be one of .*'o3'"):
        hourly_aqi({"o3": [1.0, 1.0]})
    with pytest.raises(ValueError, match=r"hourly gas input must be one of .*'pm25'"):
        hourly_aqi({"pm25": [1.0, 1.0]}, {"pm25": 1.0})
    with pytest.raises(ValueError, match=r"daily input must be one of .*'tsp'"):
        daily_aqi({"tsp": [1.0]})


def test_daily_aqi_uses_24_hour_means_and_the_highest_hours() -> None:
    # PM2.5: 12 hours at 20 and 12 at 50, one hour missing → mean of the 23 present.
    pm25 = [20.0] * 12 + [50.0] * 11 + [None]
    mean = (20 * 12 + 50 * 11) / 23  # 34.348 → 50 + 2 × 9.348 = 68.7 → 69
    result = daily_aqi({"pm25": pm25, "no2": [50.0] * 23 + [450.0]})
    assert result is not None
    assert result.sub_indices["pm25"] == round_index(50 + 2 * (mean - 25)) == 69
    assert result.sub_indices["no2"] == 125  # the day's highest hour, 450
    assert (result.value, result.dominant) == (125, "no2")


def test_daily_o3_takes_the_larger_of_1_hour_and_8_hour() -> None:
    o3 = [110.0] * 24
    o3[10] = 180.0
    # 1-hour max 180 → 75; the 8-hour means holding hour 10: (180 + 7·110)/8 = 118.75
    # → 50 + 50/20 × 18.75 = 96.875 → 97.
    result = daily_aqi({"pm25": [20.0] * 24, "o3": o3})
    assert result is not None
    assert result.sub_indices == {"pm25": 40, "o3": 97}
    assert result.dominant == "o3"
    # 8-hour mean 450 > 400: dropped; the 1-hour 450 → 200 + 100/400 × 50 = 212.5 → 213.
    high = daily_aqi({"pm10": [10.0] * 24, "o3": [450.0] * 24})
    assert high is not None
    assert high.sub_indices["o3"] == 213
    # Too few hours for any 8-hour mean (5 of 8): only the 1-hour sub-index.
    sparse = daily_aqi(
        {"pm25": [10.0], "o3": [110.0, None, None, None, 110.0, 110.0, 110.0, 110.0]}
    )
    assert sparse is not None
    assert sparse.sub_indices["o3"] == 34  # 50/160 × 110 = 34.4


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (0, "Tốt"),
        (50, "Tốt"),
        (50.4, "Tốt"),
        (50.5, "Trung bình"),
        (51, "Trung bình"),
        (100, "Trung bình"),
        (101, "Kém"),
        (150, "Kém"),
        (151, "Xấu"),
        (200, "Xấu"),
        (201, "Rất xấu"),
        (300, "Rất xấu"),
        (301, "Nguy hại"),
        (500, "Nguy hại"),
    ],
)
def test_band_limits_of_bang_1(value: float, label: str) -> None:
    assert band(value).vi == label


def test_bands_carry_the_official_colours() -> None:
    assert [(b.en, b.colour) for b in BANDS] == [
        ("Good", "#00E400"),  # 0,228,0
        ("Moderate", "#FFFF00"),  # 255,255,0
        ("Poor", "#FF7E00"),  # 255,126,0
        ("Bad", "#FF0000"),  # 255,0,0
        ("Very bad", "#8F3F97"),  # 143,63,151
        ("Hazardous", "#7E0023"),  # 126,0,35
    ]
    with pytest.raises(ValueError, match="-1"):
        band(-1)


def test_catalogue_bands_are_the_official_ones() -> None:
    settings = load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)
    for metric_id, field in (("vn_aqi_hourly", "hourly"), ("vn_aqi_daily", "daily")):
        metric = settings.metrics[metric_id]
        assert (metric.kind, metric.field, metric.aggregation) == ("aqi", field, "max")
        assert (metric.unit, metric.decimals, metric.source) == ("", 0, "QĐ 1459/QĐ-TCMT")
        shown = [(b.upto, b.color, b.label.vi, b.label.en) for b in metric.bands]
        assert shown == [(b.upto, b.colour, b.vi, b.en) for b in BANDS]
