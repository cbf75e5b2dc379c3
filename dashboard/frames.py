"""The DataFrame shapes the dashboard's queries return (shared by dashboard.data and
dashboard.history)."""

from __future__ import annotations

import pandas as pd

from core.types import SeriesPoint, UnitValue

TS_DTYPE = "datetime64[us, UTC]"


def unit_values_frame(values: list[UnitValue]) -> pd.DataFrame:
    """code (index) → value, ts (UTC), devices."""
    frame = pd.DataFrame(
        {
            "code": [item.code for item in values],
            "value": [item.value for item in values],
            "ts": [item.ts for item in values],
            "devices": [item.devices for item in values],
        },
        columns=["code", "value", "ts", "devices"],
    )
    typed = frame.astype({"code": "object", "value": "float64", "ts": TS_DTYPE, "devices": "int64"})
    return typed.set_index("code")


def series_frame(points: list[SeriesPoint]) -> pd.DataFrame:
    """ts (UTC bucket start), value; sorted by time."""
    frame = pd.DataFrame(
        {"ts": [point.ts for point in points], "value": [point.value for point in points]},
        columns=["ts", "value"],
    )
    typed = frame.astype({"ts": TS_DTYPE, "value": "float64"})
    return typed.sort_values("ts", ignore_index=True)
