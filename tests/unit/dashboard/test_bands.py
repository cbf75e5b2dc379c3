"""Band placement and the stepwise colour scale, checked against the shipped catalogue."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from core.settings import Band, Label, MetricSettings, Settings
from dashboard.views.bands import (
    NEUTRAL_COLOUR,
    NO_DATA_COLOUR,
    BandScale,
    band_colour,
    band_index,
    band_label,
    band_range_text,
    band_scale,
    colorscale,
    map_z,
    value_text,
)


def colour_at(scale: BandScale, z: float) -> str:
    """The colour plotly.js paints for ``z``: linear interpolation between colour-scale
    stops. Only answers for a segment between two stops of one colour, so an accidental
    gradient (a value painted half-way between two bands) fails the test."""
    stops = colorscale(scale)
    position = (z - scale.zmin) / (scale.zmax - scale.zmin)
    position = min(max(position, 0.0), 1.0)
    for (start, colour), (end, next_colour) in pairwise(stops):
        if start <= position <= end and start < end:
            assert colour == next_colour, f"z={z} falls on a gradient {colour} → {next_colour}"
            return colour
    raise AssertionError(f"z={z} is outside the colour scale")


@pytest.fixture
def pm25(settings: Settings) -> MetricSettings:
    return settings.metrics["pm25"]


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (0.0, "Tốt"),
        (25.0, "Tốt"),  # upto is inclusive
        (25.04, "Tốt"),  # shown as 25,0: coloured as what people read
        (25.06, "Trung bình"),  # shown as 25,1
        (50.0, "Trung bình"),
        (80.0, "Kém"),
        (80.1, "Xấu"),
        (250.0, "Rất xấu"),
        (250.1, "Nguy hại"),
        (5000.0, "Nguy hại"),
        (-3.0, "Tốt"),  # a bad sensor reading below zero is still shown in the first band
    ],
)
def test_band_of_a_value(pm25: MetricSettings, value: float, label: str) -> None:
    assert band_label(band_scale(pm25), value, "vi") == label


def test_boundary_25_is_good_in_green(pm25: MetricSettings) -> None:
    scale = band_scale(pm25)
    assert band_index(scale, 25.0) == 0
    assert band_colour(scale, 25.0) == "#00E400"
    assert colour_at(scale, map_z(scale, 25.0)) == "#00E400"


@pytest.mark.parametrize("metric_id", ["pm25", "pm10", "flood_alarm"])
def test_colour_scale_paints_every_displayed_value_in_its_band_colour(
    settings: Settings, metric_id: str
) -> None:
    metric = settings.metrics[metric_id]
    scale = band_scale(metric)
    step = 10.0**-metric.decimals
    limits = np.array(scale.limits)
    values = np.concatenate(
        [
            np.arange(scale.low - 2, scale.high * 1.5, step * 7),  # a sweep
            limits,  # every limit ...
            limits + step,  # ... and the first value above it
            limits - step,
        ]
    )
    for value in values:
        assert colour_at(scale, map_z(scale, float(value))) == band_colour(scale, float(value)), (
            metric_id,
            float(value),
        )


def test_no_data_is_grey_and_below_every_band(pm25: MetricSettings) -> None:
    scale = band_scale(pm25)
    assert map_z(scale, None) == scale.zmin
    assert map_z(scale, float("nan")) == scale.zmin
    assert colour_at(scale, map_z(scale, None)) == NO_DATA_COLOUR
    assert band_colour(scale, None) == NO_DATA_COLOUR
    stops = [position for position, _ in colorscale(scale)]
    assert stops[0] == 0.0
    assert stops[-1] == 1.0
    assert stops == sorted(stops)


def test_values_beyond_the_drawn_range_are_clipped_not_greyed(pm25: MetricSettings) -> None:
    scale = band_scale(pm25)
    assert map_z(scale, -10.0) == scale.low
    assert map_z(scale, 10_000.0) == scale.high
    assert colour_at(scale, map_z(scale, -10.0)) == "#00E400"


@pytest.mark.parametrize(
    ("metric_id", "lang", "expected"),
    [
        ("pm25", "vi", ["0–25 µg/m³", "25–50 µg/m³", "50–80 µg/m³", "80–150 µg/m³",
                        "150–250 µg/m³", "trên 250 µg/m³"]),
        ("pm25", "en", ["0–25 µg/m³", "25–50 µg/m³", "50–80 µg/m³", "80–150 µg/m³",
                        "150–250 µg/m³", "above 250 µg/m³"]),
        ("flood_alarm", "vi", ["đến 0", "0–1", "1–2", "trên 2"]),
    ],
)  # fmt: skip
def test_band_ranges(settings: Settings, metric_id: str, lang: str, expected: list[str]) -> None:
    scale = band_scale(settings.metrics[metric_id])
    assert [band_range_text(scale, index, lang) for index in range(len(expected))] == expected


def test_first_band_below_zero_reads_up_to() -> None:
    metric = MetricSettings(
        kind="water",
        field="level",
        label=Label(vi="Mực nước", en="Water level"),
        unit="m",
        decimals=2,
        bands=[
            Band(upto=-0.5, color="#2C7BB6", label=Label(vi="Thấp", en="Low")),
            Band(upto=None, color="#FF0000", label=Label(vi="Cao", en="High")),
        ],
    )
    scale = band_scale(metric)
    assert scale.low < -0.5
    assert band_range_text(scale, 0, "vi") == "đến -0,5 m"
    assert colour_at(scale, map_z(scale, -0.7)) == "#2C7BB6"
    assert colour_at(scale, map_z(scale, -0.49)) == "#FF0000"


def test_a_metric_without_bands_gets_one_neutral_colour() -> None:
    metric = MetricSettings(
        kind="gov", field="received", label=Label(vi="Hồ sơ nhận", en="Dossiers"), unit=""
    )
    scale = band_scale(metric)
    assert scale.colours == (NEUTRAL_COLOUR,)
    assert band_label(scale, 12.0, "vi") == "Hồ sơ nhận"
    assert colour_at(scale, map_z(scale, 12.0)) == NEUTRAL_COLOUR
    assert colour_at(scale, map_z(scale, None)) == NO_DATA_COLOUR


def test_value_text(pm25: MetricSettings, settings: Settings) -> None:
    assert value_text(band_scale(pm25), 35.24, "vi") == "35,2 µg/m³"
    assert value_text(band_scale(pm25), 35.24, "en") == "35.2 µg/m³"
    assert value_text(band_scale(settings.metrics["water_level"]), 2.1, "vi") == "2,10 m"
