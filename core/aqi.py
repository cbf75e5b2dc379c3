"""VN_AQI by Decision 1459/QĐ-TCMT (12/11/2019): pure computation, no store, no clock.

The rules (../shared/reference/vn-kpis-thresholds.md §1):

* a pollutant's sub-index interpolates linearly on the breakpoint table (Bảng 2, all in
  µg/m³, CO included); a concentration at or above the last breakpoint gives 500;
* the hourly index uses the 12-hour NowCast for PM2.5 and PM10 (w* = c_min/c_max, w = 0.5
  when w* ≤ 0.5, else w*; at least 2 valid values among the current hour and the two
  before it) and the hour's mean for O₃ (1-hour column), CO, SO₂ and NO₂;
* the daily index uses the 24-hour mean for PM, the day's highest hourly mean for CO, SO₂
  and NO₂, and for O₃ the larger of the 1-hour and 8-hour sub-indices (the 8-hour one
  dropped when its mean is above 400 µg/m³);
* VN_AQI is the largest sub-index, published only when PM2.5 or PM10 has one;
* indices are whole numbers: rounded to the nearest integer, halves up.

Choices the reference leaves open, taken here and stated so they can be checked against
the PDF: a NowCast skips missing hours but keeps each value's weight by its position; the
daily PM mean is the mean of the hours that have data; an 8-hour O₃ mean needs 6 of its 8
hours and lies inside the day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PM = ("pm25", "pm10")
GASES = ("o3", "co", "so2", "no2")
POLLUTANTS = PM + GASES

# Iᵢ of Bảng 2 and the breakpoints BPᵢ per column, µg/m³.
INDEX_STEPS: tuple[int, ...] = (0, 50, 100, 150, 200, 300, 400, 500)
BREAKPOINTS: Mapping[str, tuple[float, ...]] = {
    "o3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "o3_8h": (0, 100, 120, 170, 210, 400),  # no levels 7 and 8
    "co": (0, 10_000, 30_000, 45_000, 60_000, 90_000, 120_000, 150_000),
    "so2": (0, 125, 350, 550, 800, 1600, 2100, 2630),
    "no2": (0, 100, 200, 700, 1200, 2350, 3100, 3850),
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
    "pm25": (0, 25, 50, 80, 150, 250, 350, 500),
}
NOWCAST_HOURS = 12
O3_8H_MAX = 400.0  # above this 8-hour mean the 8-hour sub-index is dropped
O3_8H_MIN_HOURS = 6  # valid hourly means an 8-hour O₃ mean needs (a choice, see above)


@dataclass(frozen=True, slots=True)
class AqiBand:
    """A category of Bảng 1: values up to and including ``upto`` (None: the open last one)."""

    upto: int | None
    vi: str
    en: str
    colour: str  # hex, from the RGB of Bảng 1


BANDS: tuple[AqiBand, ...] = (
    AqiBand(50, "Tốt", "Good", "#00E400"),
    AqiBand(100, "Trung bình", "Moderate", "#FFFF00"),
    AqiBand(150, "Kém", "Poor", "#FF7E00"),
    AqiBand(200, "Xấu", "Bad", "#FF0000"),
    AqiBand(300, "Rất xấu", "Very bad", "#8F3F97"),
    AqiBand(None, "Nguy hại", "Hazardous", "#7E0023"),
)


@dataclass(frozen=True, slots=True)
class AqiResult:
    """An index with the sub-index of each pollutant that had one; ``dominant`` gave the max."""

    value: int
    dominant: str
    sub_indices: Mapping[str, int]


def round_index(value: float) -> int:
    """Nearest whole number, halves up (Python's round() would send 50.5 to 50)."""
    return math.floor(value + 0.5)


def _checked(name: str, concentration: float) -> float:
    if not math.isfinite(concentration) or concentration < 0:
        raise ValueError(f"{name} concentration must be a finite number ≥ 0: {concentration!r}")
    return float(concentration)


def sub_index(column: str, concentration: float) -> int:
    """AQIₓ = (Iᵢ₊₁ − Iᵢ)/(BPᵢ₊₁ − BPᵢ) × (Cₓ − BPᵢ) + Iᵢ on the column's breakpoints
    (``pm25``, ``pm10``, ``o3_1h``, ``o3_8h``, ``co``, ``so2``, ``no2``), rounded."""
    if column not in BREAKPOINTS:
        raise ValueError(f"no VN_AQI breakpoint column {column!r}: one of {sorted(BREAKPOINTS)}")
    value = _checked(column, concentration)
    points = BREAKPOINTS[column]
    if value >= points[-1]:
        if column == "o3_8h":
            raise ValueError(f"o3_8h above {points[-1]:g} µg/m³ has no sub-index: {value!r}")
        return INDEX_STEPS[-1]
    for low, high, low_index, high_index in zip(
        points, points[1:], INDEX_STEPS, INDEX_STEPS[1:], strict=False
    ):
        if value <= high:
            return round_index((high_index - low_index) / (high - low) * (value - low) + low_index)
    raise AssertionError("unreachable: the last breakpoint is handled above")


def nowcast(hourly: Sequence[float | None], name: str = "pm") -> float | None:
    """The 12-hour NowCast of hourly means given newest first (c₁ = the hour indexed, None
    for an hour without data). None when c₁–c₃ hold fewer than 2 values."""
    if len(hourly) > NOWCAST_HOURS:
        raise ValueError(f"{name}: a NowCast takes at most {NOWCAST_HOURS} hours: {len(hourly)}")
    values = [None if value is None else _checked(name, value) for value in hourly]
    if sum(value is not None for value in values[:3]) < 2:
        return None
    present = [value for value in values if value is not None]
    c_max = max(present)
    if c_max == 0:
        return 0.0
    weight = max(min(present) / c_max, 0.5)
    pairs = [(weight**age, value) for age, value in enumerate(values) if value is not None]
    return sum(w * value for w, value in pairs) / sum(w for w, _ in pairs)


def combine(sub_indices: Mapping[str, int]) -> AqiResult | None:
    """The largest sub-index, or None when neither PM2.5 nor PM10 has one (the decision
    publishes no index without PM). Ties go to the first in POLLUTANTS order."""
    if not any(pollutant in sub_indices for pollutant in PM):
        return None
    ordered = [pollutant for pollutant in POLLUTANTS if pollutant in sub_indices]
    dominant = max(ordered, key=lambda pollutant: sub_indices[pollutant])
    return AqiResult(sub_indices[dominant], dominant, dict(sub_indices))


def hourly_aqi(
    pm: Mapping[str, Sequence[float | None]],
    gases: Mapping[str, float | None] | None = None,
) -> AqiResult | None:
    """The hourly VN_AQI. ``pm``: pm25/pm10 → up to 12 hourly means, newest (the hour
    indexed) first; ``gases``: o3/co/so2/no2 → that hour's mean. Pollutants absent or
    without enough data have no sub-index."""
    found: dict[str, int] = {}
    for pollutant, hours in pm.items():
        if pollutant not in PM:
            raise ValueError(f"hourly PM input must be one of {PM}: {pollutant!r}")
        concentration = nowcast(hours, pollutant)
        if concentration is not None:
            found[pollutant] = sub_index(pollutant, concentration)
    for pollutant, mean in (gases or {}).items():
        if pollutant not in GASES:
            raise ValueError(f"hourly gas input must be one of {GASES}: {pollutant!r}")
        if mean is not None:
            found[pollutant] = sub_index("o3_1h" if pollutant == "o3" else pollutant, mean)
    return combine(found)


def daily_aqi(hours: Mapping[str, Sequence[float | None]]) -> AqiResult | None:
    """The daily VN_AQI from each pollutant's hourly means of the day, oldest first (None
    for an hour without data): the 24-hour mean for PM, the highest hour for CO, SO₂ and
    NO₂, the larger of the 1-hour and 8-hour sub-indices for O₃."""
    found: dict[str, int] = {}
    for pollutant, series in hours.items():
        if pollutant not in POLLUTANTS:
            raise ValueError(f"daily input must be one of {POLLUTANTS}: {pollutant!r}")
        values = [_checked(pollutant, value) for value in series if value is not None]
        if not values:
            continue
        if pollutant in PM:
            found[pollutant] = sub_index(pollutant, sum(values) / len(values))
        elif pollutant == "o3":
            candidates = [sub_index("o3_1h", max(values))]
            highest_8h = _max_8h_mean(series)
            if highest_8h is not None and highest_8h <= O3_8H_MAX:
                candidates.append(sub_index("o3_8h", highest_8h))
            found[pollutant] = max(candidates)
        else:
            found[pollutant] = sub_index(pollutant, max(values))
    return combine(found)


def _max_8h_mean(series: Sequence[float | None]) -> float | None:
    means = []
    for start in range(len(series) - 7):
        window = [value for value in series[start : start + 8] if value is not None]
        if len(window) >= O3_8H_MIN_HOURS:
            means.append(sum(window) / len(window))
    return max(means, default=None)


def band(value: float) -> AqiBand:
    """The Bảng 1 category of an index (rounded first, so 50.4 is Tốt and 50.5 Trung bình)."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"a VN_AQI value must be a finite number ≥ 0: {value!r}")
    shown = round_index(value)
    for each in BANDS:
        if each.upto is not None and shown <= each.upto:
            return each
    return BANDS[-1]
