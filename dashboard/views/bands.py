"""Display bands of a catalogue metric: which band a value is in, and the stepwise
colour scale that makes Plotly paint exactly that band's colour.

A value is rounded to the metric's ``decimals`` before it is placed, so the colour always
agrees with the number people read ("25,0 µg/m³" is Tốt, since ``upto`` is inclusive).
The map's ``z`` is that rounded value; the colour scale steps half a display unit above
each limit, so no displayed value ever sits on a step (where Plotly's interpolation is
ambiguous).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.settings import Band, Label, MetricSettings
from core.text import format_number
from core.text import format_shortest as format_limit
from dashboard.i18n import text

NO_DATA_COLOUR = "#D0D0D0"
# A metric declared without bands is drawn in one neutral colour.
NEUTRAL_COLOUR = "#4A7FB5"


@dataclass(frozen=True, slots=True)
class BandScale:
    """The bands of one metric, ready for placing values and drawing them."""

    colours: tuple[str, ...]
    labels: tuple[Label, ...]
    limits: tuple[float, ...]  # the finite ``upto`` values, one fewer than bands
    decimals: int
    unit: str
    low: float  # lower edge of the first band as drawn (values below are clipped to it)
    high: float  # upper edge of the last, open band as drawn (values above are clipped)

    @property
    def resolution(self) -> float:
        return float(10.0**-self.decimals)

    @property
    def no_data_z(self) -> float:
        """The ``z`` given to units without data: below ``low``, in the grey step."""
        return self.low - 0.1 * (self.high - self.low)

    @property
    def zmin(self) -> float:
        return self.no_data_z

    @property
    def zmax(self) -> float:
        return self.high


def band_scale(metric: MetricSettings) -> BandScale:
    bands = metric.bands or [Band(upto=None, color=NEUTRAL_COLOUR, label=metric.label)]
    limits = tuple(band.upto for band in bands if band.upto is not None)
    resolution = float(10.0**-metric.decimals)
    if not limits:
        low, high = 0.0, 1.0
    else:
        width = (limits[-1] - limits[0]) / max(len(limits) - 1, 1) or max(abs(limits[0]), 1.0)
        low = 0.0 if limits[0] > 0 else limits[0] - width
        # The open last band is drawn as wide as the one before it (or a typical band).
        last_width = limits[-1] - limits[-2] if len(limits) > 1 else width
        high = limits[-1] + max(last_width, resolution)
    return BandScale(
        colours=tuple(band.color.upper() for band in bands),
        labels=tuple(band.label for band in bands),
        limits=limits,
        decimals=metric.decimals,
        unit=metric.unit,
        low=low,
        high=high,
    )


def rounded(scale: BandScale, value: float) -> float:
    return round(value, scale.decimals)


def band_index(scale: BandScale, value: float) -> int:
    """The band of ``value``: the first whose ``upto`` is at or above the displayed value."""
    shown = rounded(scale, value)
    for index, limit in enumerate(scale.limits):
        if shown <= limit:
            return index
    return len(scale.limits)


def band_colour(scale: BandScale, value: float | None) -> str:
    if value is None or math.isnan(value):
        return NO_DATA_COLOUR
    return scale.colours[band_index(scale, value)]


def band_label(scale: BandScale, value: float, lang: str) -> str:
    return scale.labels[band_index(scale, value)].get(lang)


def map_z(scale: BandScale, value: float | None) -> float:
    """The ``z`` of a unit on the map: its displayed value kept inside the drawn range
    (Plotly would clamp too, but then a value below ``low`` would turn grey)."""
    if value is None or math.isnan(value):
        return scale.no_data_z
    return min(max(rounded(scale, value), scale.low), scale.high)


def colorscale(scale: BandScale) -> list[tuple[float, str]]:
    """A continuous colour scale over [zmin, zmax] with hard steps: grey for no data, then
    each band's colour between its limits (stepping half a display unit above each)."""
    span = scale.zmax - scale.zmin

    def position(z: float) -> float:
        return min(max((z - scale.zmin) / span, 0.0), 1.0)

    grey_top = position((scale.no_data_z + scale.low) / 2)
    steps: list[tuple[float, str]] = [(0.0, NO_DATA_COLOUR), (grey_top, NO_DATA_COLOUR)]
    edges = [grey_top] + [position(limit + scale.resolution / 2) for limit in scale.limits] + [1.0]
    for colour, start, end in zip(scale.colours, edges[:-1], edges[1:], strict=True):
        steps.append((start, colour))
        steps.append((end, colour))
    return steps


def band_range_text(scale: BandScale, index: int, lang: str) -> str:
    """The range of a band: "0–25 µg/m³", "25–50 µg/m³" … "trên 250 µg/m³" (upto inclusive)."""
    return _band_range_text(scale, index, lang).strip()


def _band_range_text(scale: BandScale, index: int, lang: str) -> str:
    unit = scale.unit
    if not scale.limits:
        return unit
    if index >= len(scale.limits):
        return text("band_above", lang, low=format_limit(scale.limits[-1], lang), unit=unit)
    high = format_limit(scale.limits[index], lang)
    if index == 0:
        if scale.low == 0.0:
            return text("band_range", lang, low=format_limit(0.0, lang), high=high, unit=unit)
        return text("band_up_to", lang, high=high, unit=unit)
    low = format_limit(scale.limits[index - 1], lang)
    return text("band_range", lang, low=low, high=high, unit=unit)


def value_text(scale: BandScale, value: float, lang: str) -> str:
    """A value as shown: "35,2 µg/m³" (vi), "35.2 µg/m³" (en), rounded as its band was chosen."""
    return f"{format_number(rounded(scale, value), scale.decimals, lang)} {scale.unit}".strip()
