"""The store's shared pure logic: millisecond time, bucket widths and the roll-ups into
one value per administrative unit.

Both adapters fetch the last value per (device, unit) pair and hand the rows to
:func:`roll_up`, so "latest per unit" means exactly the same on SQLite and InfluxDB. For
a window (:func:`roll_up_window`) they add each pair's count, sum, min and max of every
reading, so a unit's mean is the exact mean of all its readings, whatever the adapter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.types import AGGREGATIONS, Aggregation, UnitValue

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


def epoch_ms(ts: datetime) -> int:
    """Milliseconds since the Unix epoch, truncated towards the past (exact, no float)."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp must be timezone-aware (UTC): {ts.isoformat()}")
    return (ts - EPOCH) // ONE_MS


def utc_from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def every_ms(every: timedelta) -> int:
    """A bucket width as whole milliseconds (the store's precision)."""
    if every <= timedelta(0) or every % ONE_MS:
        raise ValueError(f"every must be a positive whole number of milliseconds: {every!r}")
    return every // ONE_MS


def check_aggregation(aggregation: str) -> Aggregation:
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}: {aggregation!r}")
    return aggregation


@dataclass(frozen=True, slots=True)
class DeviceLast:
    """The last value of one device while it carried one unit tag.

    ``device`` is "" for points without a device tag (e.g. a public-service metric
    published per unit); ``unit`` is "" when the point has no tag for the level."""

    device: str
    unit: str
    ts_ms: int
    value: float


def newest_per_device(rows: Iterable[DeviceLast]) -> list[DeviceLast]:
    """Keep one row per device: the newest. A device that moved is counted where it was
    last seen, never in two units. Points without a device tag count as one source per
    unit. Equal timestamps in two units resolve to the larger code, so the answer is
    the same whatever order the rows came in."""
    newest: dict[tuple[str, str], DeviceLast] = {}
    for row in rows:
        key = (row.device, "") if row.device else ("", row.unit)
        kept = newest.get(key)
        if kept is None or (row.ts_ms, row.unit) > (kept.ts_ms, kept.unit):
            newest[key] = row
    return list(newest.values())


def combine(rows: list[DeviceLast], aggregation: Aggregation) -> float:
    """One unit's value from its devices' last values (``rows`` not empty)."""
    values = [row.value for row in rows]
    if aggregation == "mean":
        return math.fsum(values) / len(values)
    if aggregation == "sum":
        return math.fsum(values)
    if aggregation == "max":
        return max(values)
    if aggregation == "min":
        return min(values)
    # last: the device that reported most recently; ties go to the larger device id so
    # the result does not depend on row order.
    return max(rows, key=lambda row: (row.ts_ms, row.device)).value


def roll_up(rows: Iterable[DeviceLast], aggregation: Aggregation) -> list[UnitValue]:
    """Per unit: ``aggregation`` over its devices' last values, the newest device
    timestamp and the device count. Units without data are absent; sorted by code."""
    aggregation = check_aggregation(aggregation)
    by_unit: dict[str, list[DeviceLast]] = {}
    for row in newest_per_device(rows):
        if row.unit:
            by_unit.setdefault(row.unit, []).append(row)
    return [
        UnitValue(
            code=code,
            value=combine(unit_rows, aggregation),
            ts=utc_from_ms(max(row.ts_ms for row in unit_rows)),
            devices=len(unit_rows),
        )
        for code, unit_rows in sorted(by_unit.items())
    ]


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """Every reading of one device in a window while it carried one unit tag
    (``device``/``unit`` as in :class:`DeviceLast`)."""

    device: str
    unit: str
    count: int
    total: float
    low: float
    high: float


def roll_up_window(
    lasts: Iterable[DeviceLast], stats: Iterable[DeviceStats], aggregation: Aggregation
) -> list[UnitValue]:
    """Per unit: ``aggregation`` over every reading of its devices in the window, from each
    (device, unit) pair's statistics (``stats``) and last reading (``lasts``: for ``last``
    and the newest time). Each reading counts for the unit it was tagged with, so a device
    that moved counts in both units. Units without readings are absent; sorted by code."""
    aggregation = check_aggregation(aggregation)
    stats_by_unit: dict[str, list[DeviceStats]] = {}
    for row in stats:
        if row.unit and row.count > 0:
            stats_by_unit.setdefault(row.unit, []).append(row)
    lasts_by_unit: dict[str, list[DeviceLast]] = {}
    for last in lasts:
        if last.unit in stats_by_unit:
            lasts_by_unit.setdefault(last.unit, []).append(last)
    result = []
    for code, unit_stats in sorted(stats_by_unit.items()):
        unit_lasts = lasts_by_unit.get(code)
        if not unit_lasts:  # a reading written between the two queries: next round
            continue
        newest = max(unit_lasts, key=lambda row: (row.ts_ms, row.device, row.value))
        result.append(
            UnitValue(
                code=code,
                value=_window_value(unit_stats, newest, aggregation),
                ts=utc_from_ms(newest.ts_ms),
                devices=len({row.device for row in unit_stats}),  # "" = one untagged source
            )
        )
    return result


def _window_value(rows: list[DeviceStats], newest: DeviceLast, aggregation: Aggregation) -> float:
    if aggregation == "mean":
        return math.fsum(row.total for row in rows) / sum(row.count for row in rows)
    if aggregation == "sum":
        return math.fsum(row.total for row in rows)
    if aggregation == "max":
        return max(row.high for row in rows)
    if aggregation == "min":
        return min(row.low for row in rows)
    return newest.value
