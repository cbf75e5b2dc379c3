"""The store's shared pure logic: millisecond time, bucket widths and the roll-up
of "each device's last value" into one value per administrative unit.

Both adapters fetch the last value per (device, unit) pair and hand the rows to
:func:`roll_up`, so "latest per unit" means exactly the same on SQLite and InfluxDB.
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
