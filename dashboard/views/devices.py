"""The device point layer of the map: pure functions from :func:`dashboard.devices.device_frame`
to a Plotly ``Scattergeo`` trace, to the per-point arrays that recolour it, and to the
legend rows.

Each state has its own colour *and* symbol, so the state reads without colour vision and
over any band of the choropleth beneath. No fill is a VN_AQI band colour (green, yellow,
orange, red, purple, maroon), the flood-alarm blue or the no-data grey, and every marker
has a dark outline that separates it from the unit it sits on:

========  ===========  =============  ===============================================
state     fill         symbol         why
========  ===========  =============  ===============================================
ok        white        circle         calm, and the lightest thing on any band
warning   cyan         triangle-up    the warning-sign shape; no band is cyan
alarm     magenta      diamond        the most saturated mark, and larger
offline   dark grey    circle-x       crossed out; its outline draws the cross
========  ===========  =============  ===============================================
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any, Final
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go

from core.settings import MetricSettings
from dashboard.devices import DEVICE_STATES, DeviceState
from dashboard.i18n import TEXTS, format_when, text
from dashboard.views.bands import band_scale, value_text
from dashboard.views.map import BASE_TEXT_PX

LOCAL_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")
OUTLINE: Final = "#111827"
STATE_COLOURS: Final[dict[DeviceState, str]] = {
    "ok": "#FFFFFF",
    "warning": "#00E5FF",
    "alarm": "#FF00FF",
    "offline": "#4B5563",
}
STATE_SYMBOLS: Final[dict[DeviceState, str]] = {
    "ok": "circle",
    "warning": "triangle-up",
    "alarm": "diamond",
    "offline": "circle-x",
}
# CSS px at the reference text size (BASE_TEXT_PX), scaled with the page's text size.
STATE_SIZES: Final[dict[DeviceState, float]] = {
    "ok": 10.0,
    "warning": 13.0,
    "alarm": 15.0,
    "offline": 11.0,
}
OUTLINE_WIDTH: Final = 1.5
HOVER_TEMPLATE: Final = "%{hovertext}<extra></extra>"


@dataclass(frozen=True, slots=True)
class DevicePatchValues:
    """What changes on a refresh, one entry per row of the frame (= point of the trace)."""

    color: list[str]
    symbol: list[str]
    size: list[float]
    hovertext: list[str]


def state_label(state: DeviceState, lang: str) -> str:
    return text(f"device_state_{state}", lang)


def kind_label(kind: str, lang: str) -> str:
    """ "Cảm biến không khí" for air; a kind without a text is shown as it is written."""
    key = f"device_kind_{kind}"
    return text(key, lang) if key in TEXTS else kind


def device_legend(lang: str) -> list[tuple[DeviceState, str, str]]:
    """(state, fill colour, label) per state, from fine to worst."""
    return [(state, STATE_COLOURS[state], state_label(state, lang)) for state in DEVICE_STATES]


def _timestamp(value: Any) -> datetime | None:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value if isinstance(value, datetime) else None


def _reading(
    metric_id: Any, value: Any, metrics: Mapping[str, MetricSettings] | None, lang: str
) -> str | None:
    """ "Bụi mịn PM2.5: 95,0 µg/m³" for the value that decided the state, when known."""
    if metrics is None or not isinstance(metric_id, str) or metric_id not in metrics:
        return None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    metric = metrics[metric_id]
    shown = value_text(band_scale(metric), float(value), lang)
    return text("device_reading", lang, metric=metric.label.get(lang), value=shown)


def hover_text(
    row: Mapping[Hashable, Any],
    *,
    lang: str,
    tz: ZoneInfo = LOCAL_TZ,
    metrics: Mapping[str, MetricSettings] | None = None,
) -> str:
    """Name (bold), kind and id, state, the deciding value (with ``metrics``), last seen.

    The name comes from the registry CSV, so it is escaped: plotly.js reads hover text as
    a subset of HTML."""
    state: DeviceState = row["state"]
    lines = [
        f"<b>{escape(str(row['name']) or str(row['device_id']), quote=False)}</b>",
        f"{escape(kind_label(str(row['kind']), lang), quote=False)} · "
        f"{escape(str(row['device_id']), quote=False)}",
        state_label(state, lang),
    ]
    reading = _reading(row.get("metric"), row.get("value"), metrics, lang)
    if reading is not None:
        lines.append(escape(reading, quote=False))
    seen = _timestamp(row["last_seen"])
    if seen is None:
        lines.append(text("device_never_seen", lang))
    else:
        lines.append(text("device_last_seen", lang, time=format_when(seen, tz)))
    return "<br>".join(lines)


def device_patch_values(
    frame: pd.DataFrame,
    lang: str,
    *,
    text_px: float = BASE_TEXT_PX,
    tz: ZoneInfo = LOCAL_TZ,
    metrics: Mapping[str, MetricSettings] | None = None,
) -> DevicePatchValues:
    """Marker colours, symbols, sizes and hover texts in frame order. A caller with the
    same devices in the same order (the registry did not change) sends only these:
    ``patch["data"][n]["marker"]["color"] = values.color`` and so on, and
    ``patch["data"][n]["hovertext"] = values.hovertext``."""
    zoom = text_px / BASE_TEXT_PX
    values = DevicePatchValues([], [], [], [])
    for row in frame.to_dict("records"):
        state: DeviceState = row["state"]
        values.color.append(STATE_COLOURS[state])
        values.symbol.append(STATE_SYMBOLS[state])
        values.size.append(STATE_SIZES[state] * zoom)
        values.hovertext.append(hover_text(row, lang=lang, tz=tz, metrics=metrics))
    return values


def device_trace(
    frame: pd.DataFrame,
    *,
    lang: str,
    text_px: float = BASE_TEXT_PX,
    tz: ZoneInfo = LOCAL_TZ,
    metrics: Mapping[str, MetricSettings] | None = None,
    subplot: str = "geo",
) -> go.Scattergeo:
    """One marker per row of :func:`dashboard.devices.device_frame`, at its lon/lat, on the
    map's ``subplot``. ``ids`` are the device ids, so plotly.js keeps each point's identity
    across updates; ``customdata`` holds them too, for a click callback."""
    values = device_patch_values(frame, lang, text_px=text_px, tz=tz, metrics=metrics)
    device_ids = [str(device_id) for device_id in frame["device_id"]]
    return go.Scattergeo(
        lon=[float(lon) for lon in frame["lon"]],
        lat=[float(lat) for lat in frame["lat"]],
        ids=device_ids,
        customdata=device_ids,
        mode="markers",
        marker={
            "color": values.color,
            "symbol": values.symbol,
            "size": values.size,
            "line": {"color": OUTLINE, "width": OUTLINE_WIDTH * text_px / BASE_TEXT_PX},
            "opacity": 1.0,
        },
        hovertext=values.hovertext,
        hovertemplate=HOVER_TEMPLATE,
        name=text("device_legend_title", lang),
        showlegend=False,  # the legend is HTML next to the map (device_legend)
        geo=subplot,
    )
