"""The choropleth of the map level: pure functions from the latest values to a Plotly
figure, and to the small update that recolours it on every refresh (``map_update``, applied
in the browser by ``assets/map.js``).

The geometry is not in the figure: ``geojson`` is the URL of ``/geo/<level>.json`` so the
browser fetches (and caches) it once; a refresh sends only ``z``, the fill colours, the
hover texts and the old-data marks and outlines. Every unit of the map is a location of a
trace (the main map, or the inset for far islands), so a unit without data is still drawn
(grey, ``z`` in the grey step) and still answers hover and click.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go

from core.settings import Label, MetricSettings
from dashboard.i18n import format_when, text
from dashboard.views.bands import (
    NO_DATA_COLOUR,
    BandScale,
    band_colour,
    band_label,
    band_scale,
    colorscale,
    map_z,
    value_text,
)
from layers.geometry import FAR_FACTOR, far_codes

STALE_OPACITY = 0.35  # old data is drawn faded over the white background
OUTLINE = "#FFFFFF"
# Sizes in CSS px at the reference text size; the page reports its own (``text_px``: the
# root font size, which follows the screen width) and everything is scaled with it.
BASE_TEXT_PX = 20.0
OUTLINE_WIDTH = 0.8
SELECTED_OUTLINE = "#111111"
SELECTED_WIDTH = 3.5
HOVER_TEMPLATE = (
    "<b>%{customdata[0]}</b><br>%{customdata[1]}<br>%{customdata[2]}<br>%{customdata[3]}"
    "<extra></extra>"
)


@dataclass(frozen=True, slots=True)
class MapUnit:
    """A unit drawn on the map, with the short name shown on hover."""

    code: str
    name: Label  # "Phường Hải Vân" / "Hai Van Ward"


@dataclass(frozen=True, slots=True)
class MapArrays:
    """Everything that changes on a refresh, one entry per unit in map order."""

    z: list[float]
    fill: list[str]  # the colour plotly.js draws for ``z`` (its band's, or no data's grey)
    customdata: list[list[str]]
    stale: list[bool]
    outline: list[str]
    outline_width: list[float]


def is_stale(ts: datetime | None, now: datetime, stale_after: timedelta) -> bool:
    return ts is not None and now - ts > stale_after


def _timestamp(value: Any) -> datetime | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value if isinstance(value, datetime) else None


def map_arrays(
    units: list[MapUnit],
    values: pd.DataFrame,
    metric: MetricSettings,
    *,
    lang: str,
    now: datetime,
    stale_after: timedelta,
    tz: ZoneInfo,
    selected: str | None = None,
    text_px: float = BASE_TEXT_PX,
) -> MapArrays:
    """Colour value, hover text [name, value, band, time], old-data mark and outline per unit.

    ``values`` is indexed by unit code with columns value and ts (``DashboardData.map_values``);
    units missing from it, or with NaN, have no data."""
    scale = band_scale(metric)
    zoom = text_px / BASE_TEXT_PX
    latest = values.reindex([unit.code for unit in units])
    arrays = MapArrays([], [], [], [], [], [])
    for unit, value, raw_ts in zip(units, latest["value"], latest["ts"], strict=True):
        name = unit.name.get(lang)
        ts = _timestamp(raw_ts)
        if value is None or math.isnan(value) or ts is None:
            arrays.z.append(map_z(scale, None))
            arrays.fill.append(NO_DATA_COLOUR)
            arrays.customdata.append([name, text("no_data", lang), "", ""])
            arrays.stale.append(False)
        else:
            stale = is_stale(ts, now, metric.stale_after(stale_after))
            band = band_label(scale, value, lang)
            when = text("measured_at", lang, time=format_when(ts, tz))
            if stale:
                band = f"{band} · {text('stale', lang)}"
            arrays.z.append(map_z(scale, float(value)))
            arrays.fill.append(band_colour(scale, float(value)))
            arrays.customdata.append([name, value_text(scale, float(value), lang), band, when])
            arrays.stale.append(stale)
        chosen = unit.code == selected
        arrays.outline.append(SELECTED_OUTLINE if chosen else OUTLINE)
        arrays.outline_width.append((SELECTED_WIDTH if chosen else OUTLINE_WIDTH) * zoom)
    return arrays


def inset_codes(bounds: pd.DataFrame, *, factor: float = FAR_FACTOR) -> frozenset[str]:
    """Units far away from the others (islands such as Đặc khu Hoàng Sa, 350 km off Đà
    Nẵng), which get their own inset so the rest of the map is not shrunk to a corner.
    The rule is :func:`layers.geometry.far_codes`, which also sets the geometry's
    simplification tolerance from the same view."""
    return far_codes(bounds, factor=factor)


def trace_rows(units: list[MapUnit], inset: frozenset[str]) -> list[list[int]]:
    """Positions in ``units`` of each trace: the main map, then (if any) the inset."""
    main = [index for index, unit in enumerate(units) if unit.code not in inset]
    far = [index for index, unit in enumerate(units) if unit.code in inset]
    return [main, far] if far else [main]


def _pick(values: list[Any], rows: list[int]) -> list[Any]:
    return [values[index] for index in rows]


def _style(values: list[Any], rows: list[int]) -> Any:
    """One value when every unit has it (nothing selected), else one per unit: plotly.js
    styles 3,321 paths from a scalar faster than from an array (docs/design/008)."""
    picked = _pick(values, rows)
    return picked[0] if picked and all(value == picked[0] for value in picked) else picked


def fresh_points(arrays: MapArrays, rows: list[int]) -> list[int] | None:
    """Positions in the trace of the units that are not stale, or None when none is.

    plotly.js ignores a per-location ``marker.opacity`` on choropleths (it sets one style
    for the whole trace), but it fades unselected points: old data is "unselected"."""
    stale = _pick(arrays.stale, rows)
    if not any(stale):
        return None
    return [position for position, old in enumerate(stale) if not old]


def _trace(
    geo_url: str,
    units: list[MapUnit],
    arrays: MapArrays,
    scale: BandScale,
    rows: list[int],
    subplot: str,
) -> go.Choropleth:
    return go.Choropleth(
        geojson=geo_url,
        featureidkey="id",
        locations=_pick([unit.code for unit in units], rows),
        z=_pick(arrays.z, rows),
        zmin=scale.zmin,
        zmax=scale.zmax,
        zauto=False,
        colorscale=colorscale(scale),
        showscale=False,  # the legend is HTML next to the map, with the band labels
        customdata=_pick(arrays.customdata, rows),
        hovertemplate=HOVER_TEMPLATE,
        selectedpoints=fresh_points(arrays, rows),
        selected={"marker": {"opacity": 1.0}},
        unselected={"marker": {"opacity": STALE_OPACITY}},
        marker={
            "line": {
                "color": _style(arrays.outline, rows),
                "width": _style(arrays.outline_width, rows),
            },
        },
        geo=subplot,
    )


_GEO = {
    "visible": False,  # no base map, no tiles: only the shipped boundaries are drawn
    "fitbounds": "locations",
    "projection": {"type": "mercator"},
    "scope": "world",
    "resolution": 110,  # with scope: plotly.js asks topojsonURL for world_110m.json
    "bgcolor": "rgba(0,0,0,0)",
}
INSET_DOMAIN = {"x": [0.78, 1.0], "y": [0.55, 0.97]}


def map_figure(
    geo_url: str,
    units: list[MapUnit],
    arrays: MapArrays,
    scale: BandScale,
    *,
    lang: str,
    inset: frozenset[str] = frozenset(),
    text_px: float = BASE_TEXT_PX,
) -> go.Figure:
    """The full figure, built when the page loads or the metric or language changes.
    Units in ``inset`` are drawn in a framed box at the top right."""
    rows = trace_rows(units, inset)
    figure = go.Figure(data=[_trace(geo_url, units, arrays, scale, rows[0], "geo")])
    figure.update_layout(
        geo={**_GEO, "domain": {"x": [0.0, 0.76] if len(rows) > 1 else [0.0, 1.0], "y": [0, 1]}},
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        paper_bgcolor="rgba(0,0,0,0)",
        dragmode=False,
        uirevision="map",  # keep the view when the figure is replaced for a new metric
        hoverlabel={"font": {"size": text_px, "family": "Noto Sans, sans-serif"}},
        font={"family": "Noto Sans, sans-serif", "size": 0.8 * text_px},
    )
    if len(rows) > 1:
        figure.add_trace(_trace(geo_url, units, arrays, scale, rows[1], "geo2"))
        figure.update_layout(geo2={**_GEO, "domain": INSET_DOMAIN})
        x0, x1 = INSET_DOMAIN["x"]
        y0, y1 = INSET_DOMAIN["y"]
        figure.add_shape(
            type="rect",
            xref="paper",
            yref="paper",
            x0=x0,
            x1=x1,
            y0=y0 - 0.06,
            y1=y1,
            line={"color": "#9CA3AF", "width": 1.5 * text_px / BASE_TEXT_PX},
        )
        figure.add_annotation(
            text=" · ".join(units[index].name.get(lang) for index in rows[1]),
            xref="paper",
            yref="paper",
            x=(x0 + x1) / 2,
            y=y0 - 0.03,
            showarrow=False,
            xanchor="center",
            yanchor="middle",
            font={"size": 0.8 * text_px, "color": "#374151"},
        )
    return figure


def map_update(
    arrays: MapArrays, units: list[MapUnit], key: str, inset: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The refresh, for ``assets/map.js`` (``cityops.recolour``): per unit trace, the arrays
    that change; geometry, colour scale and layout stay in the browser. ``key`` is the drawn
    key of the figure it applies to.

    When only colours and hover texts changed (the usual refresh) the browser sets the
    ``fill`` of each path and the values plotly.js keeps for hover, instead of letting
    plotly.js recompute every path (Plotly.react with a new ``z`` re-projects the whole
    geometry: 300 ms for 3,321 communes, docs/design/008). Old-data marks or outlines that
    changed go through ``Plotly.restyle``."""
    traces = [
        {
            "z": _pick(arrays.z, rows),
            "fill": _pick(arrays.fill, rows),
            "customdata": _pick(arrays.customdata, rows),
            "selectedpoints": fresh_points(arrays, rows),
            "line_color": _style(arrays.outline, rows),
            "line_width": _style(arrays.outline_width, rows),
        }
        for rows in trace_rows(units, inset)
    ]
    return {"key": key, "traces": traces}
