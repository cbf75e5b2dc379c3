"""A unit's children ranked by one metric over a time range, best first; a unit of the
lowest level (no children) ranks its devices instead. No Dash here.

"Best" is the low end of the scale for every catalogue metric (dust, water level, flood
alarm: the first band is the good one), see :func:`dashboard.kpi.lower_is_better`. Values
are ranked as displayed (rounded to the metric's decimals), so two units that read the
same share a rank.
"""

from __future__ import annotations

import math
from typing import Final

import pandas as pd

from core.settings import MetricSettings
from core.types import UnitRef
from dashboard.access import Access
from dashboard.data import DashboardData
from dashboard.devices import DEVICE_LEVEL
from dashboard.frames import TS_DTYPE
from dashboard.kpi import (
    TimeRange,
    aggregate_buckets,
    lower_is_better,
    range_series,
    window_values,
)
from dashboard.scoped import ScopedData
from layers.levels import Hierarchy, Unit

RANKING_COLUMNS: Final = (
    "kind",  # "unit" or "device"
    "name_vi",
    "name_en",
    "value",
    "ts",
    "devices",  # devices that reported (a device row: 1 or 0)
    "state",  # a device row: ok, warning, alarm, offline (dashboard/devices.py); else None
    "rank",  # 1 = best; NaN without data
    "best",
    "worst",
)


def empty_ranking() -> pd.DataFrame:
    frame = pd.DataFrame({column: [] for column in RANKING_COLUMNS}, columns=list(RANKING_COLUMNS))
    frame = frame.astype(
        {
            "kind": "object",
            "name_vi": "object",
            "name_en": "object",
            "value": "float64",
            "ts": TS_DTYPE,
            "devices": "int64",
            "state": "object",
            "rank": "float64",
            "best": "bool",
            "worst": "bool",
        }
    )
    frame.index = pd.Index([], name="code", dtype="object")
    return frame


def rank_values(values: pd.Series, metric: MetricSettings) -> pd.DataFrame:
    """rank (1 = best, ties share the lowest rank, NaN without a value), best and worst
    (only when at least two different values are ranked)."""
    shown = values.round(metric.decimals)
    rank = shown.rank(method="min", ascending=lower_is_better(metric), na_option="keep")
    ranked = rank.dropna()
    spread = len(ranked) >= 2 and ranked.max() > 1
    return pd.DataFrame(
        {
            "rank": rank.astype("float64"),
            "best": (rank == 1) & spread,
            "worst": (rank == ranked.max()) & spread if spread else False,
        },
        index=values.index,
    )


def _english(hierarchy: Hierarchy, unit: Unit) -> str:
    return hierarchy.full_name(unit.code, "en").split(", ")[0]


def _range_values(
    data: DashboardData,
    metric_id: str,
    level: str,
    parent: UnitRef,
    period: TimeRange,
) -> pd.DataFrame:
    """value, ts, devices per member of ``level`` in ``parent`` with data in the range."""
    metric = data.metric(metric_id)
    if period.live:
        if level == DEVICE_LEVEL:
            since = data.clock.now() - max(data.lookback, data.stale_after)
            return window_values(data, metric_id, level, parent, since, None)
        return data.map_values(metric_id, level, parent)
    window = window_values(data, metric_id, level, parent, period.start, period.end).copy()
    window["value"] = [
        aggregate_buckets(
            range_series(
                data, metric_id, UnitRef(level, str(code)), period.start, period.end, period.every
            )["value"],
            metric.aggregation,
        )
        for code in window.index
    ]
    return window


def _finish(frame: pd.DataFrame, metric: MetricSettings) -> pd.DataFrame:
    ranks = rank_values(frame["value"], metric)
    frame["rank"] = ranks["rank"]
    frame["best"] = ranks["best"].astype("bool")
    frame["worst"] = ranks["worst"].astype("bool")
    order = frame.assign(_missing=frame["rank"].isna()).sort_values(
        ["_missing", "rank", "name_vi"], kind="stable"
    )
    return order.drop(columns="_missing")[list(RANKING_COLUMNS)]


def children_ranking(
    data: DashboardData, access: Access, unit: str, metric_id: str, period: TimeRange
) -> pd.DataFrame:
    """The children of ``unit`` that ``access`` may see (code index, columns
    :data:`RANKING_COLUMNS`), best first, those without data last; its devices when it has
    no children. Empty for a unit out of reach or unknown."""
    metric = data.metric(metric_id)
    hierarchy = data.hierarchy
    if hierarchy is None:
        raise ValueError("children_ranking needs the hierarchy in DashboardData")
    found = hierarchy.get(unit)
    if found is None or not access.can_see(unit):
        return empty_ranking()
    children = [child for child in hierarchy.children(unit) if access.can_see(child.code)]
    if not hierarchy.children(unit):
        return device_ranking(data, access, unit, metric_id, period)
    if not children:
        return empty_ranking()
    parent = UnitRef(found.level, found.code)
    values = _range_values(data, metric_id, children[0].level, parent, period)
    frame = empty_ranking().reindex([child.code for child in children])
    frame.index.name = "code"
    frame["kind"] = "unit"
    frame["name_vi"] = [child.full_name for child in children]
    frame["name_en"] = [_english(hierarchy, child) for child in children]
    frame["value"] = values["value"].reindex(frame.index).astype("float64")
    frame["ts"] = values["ts"].reindex(frame.index)
    frame["devices"] = values["devices"].reindex(frame.index).fillna(0).astype("int64")
    frame["state"] = None
    return _finish(frame, metric)


def device_ranking(
    data: DashboardData, access: Access, unit: str, metric_id: str, period: TimeRange
) -> pd.DataFrame:
    """The registered devices in ``unit`` that measure ``metric_id``, ranked like units;
    ``state`` is each device's state now, whatever the range."""
    metric = data.metric(metric_id)
    hierarchy = data.hierarchy
    found = None if hierarchy is None else hierarchy.get(unit)
    if found is None or not access.can_see(unit):
        return empty_ranking()
    devices = ScopedData(data, access).devices(within=unit)
    devices = devices[devices["kind"] == metric.kind]
    if devices.empty:
        return empty_ranking()
    values = _range_values(data, metric_id, DEVICE_LEVEL, UnitRef(found.level, found.code), period)
    codes = [str(code) for code in devices["device_id"]]
    names = [
        str(name) if name else str(code) for name, code in zip(devices["name"], codes, strict=True)
    ]
    frame = empty_ranking().reindex(codes)
    frame.index.name = "code"
    frame["kind"] = "device"
    frame["name_vi"] = names
    frame["name_en"] = names
    frame["value"] = values["value"].reindex(frame.index).astype("float64")
    frame["ts"] = values["ts"].reindex(frame.index)
    frame["devices"] = [0 if math.isnan(v) else 1 for v in frame["value"]]
    frame["state"] = list(devices["state"])
    return _finish(frame, metric)
