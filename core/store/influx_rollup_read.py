"""The read side of InfluxDB's roll-ups (design 017): a window's statistics and last
readings, and a series' buckets, with the whole hours from ``<db>.rollup``. InfluxDB's
cost grows with the fields read, so the roll-ups give only the count and what the
aggregation needs.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import core.store.influx as influx_module
from core.settings_retention import RetentionSettings
from core.store.downsample import (
    DAY_MS,
    BucketStats,
    add_missing_lasts,
    bucket_values,
    merge_stats,
    pairs_without_last,
    plan_series,
    plan_window,
)
from core.store.lineprotocol import nfc
from core.store.rollup import DeviceLast, DeviceStats, epoch_ms, every_ms, utc_from_ms
from core.types import MetricRef, UnitRef

if TYPE_CHECKING:
    from core.store.influx import InfluxStore

ROLLUP_RP = "rollup"


def _pair(series: dict[str, Any], level_tag: str) -> tuple[str, str]:
    tags = series.get("tags") or {}
    return str(tags.get("device") or ""), str(tags.get(level_tag) or "")


class RollupReads:
    """Mixed into :class:`core.store.influx_rollup.InfluxRollups`."""

    store: InfluxStore
    database: str
    retention: RetentionSettings

    def rolled_until(self, *, fresh: bool = False) -> int | None:
        raise NotImplementedError

    def window_rows(
        self,
        metric: MetricRef,
        level: str,
        start: datetime,
        end: datetime,
        parent: UnitRef | None,
        aggregation: str,
    ) -> tuple[list[DeviceStats], list[DeviceLast]]:
        """Statistics and last readings of a window, its whole hours from the roll-ups
        when :func:`plan_window` says so. InfluxDB's cost grows with the fields read, so
        the roll-ups give only the count and what ``aggregation`` needs; each pair's last
        reading is looked for in the window's last day first (a year of daily shards
        costs 50 ms more)."""
        doing = f"read the window of {metric.measurement}.{metric.field}"
        plan = plan_window(
            epoch_ms(start), epoch_ms(end), self.rolled_until(), self.retention.raw_days
        )
        level_tag = nfc(level)
        parts = [
            self._stats(
                influx_module.window_stats_query(
                    metric, level, utc_from_ms(a), utc_from_ms(b), parent
                ),
                level_tag,
                doing,
            )
            for a, b in plan.raw
        ]
        if plan.rollup is not None:
            parts.append(
                parse_rollup_stats(
                    self.store._query(
                        self._rollup_query(metric, level, plan.rollup, parent, aggregation),
                        doing,
                    ),
                    level_tag,
                )
            )
        stats = merge_stats(parts)
        if not stats:
            return [], []
        recent = max(epoch_ms(start), (plan.rollup[1] if plan.rollup else epoch_ms(end)) - DAY_MS)
        latest = influx_module.latest_query(metric, level, utc_from_ms(recent), parent, end)
        lasts = self._lasts(latest, level_tag, doing)
        if recent > epoch_ms(start) and pairs_without_last(stats, lasts):
            older = influx_module.latest_query(metric, level, start, parent, utc_from_ms(recent))
            lasts = add_missing_lasts(lasts, self._lasts(older, level_tag, doing))
        if plan.rollup is not None and pairs_without_last(stats, lasts):
            fallback = self._rollup_query(metric, level, plan.rollup, parent, "newest")
            lasts = add_missing_lasts(lasts, self._lasts(fallback, level_tag, doing))
        return stats, lasts

    def series_points(
        self,
        metric: MetricRef,
        unit: UnitRef,
        start: datetime,
        end: datetime,
        every: timedelta,
        aggregation: str,
    ) -> list[tuple[int, float]] | None:
        """A long series' (bucket, value) pairs with its whole hours from the roll-ups, or
        None when :func:`plan_series` reads it all raw."""
        if aggregation == "last":
            return None
        width = every_ms(every)
        plan = plan_series(
            epoch_ms(start), epoch_ms(end), width, self.rolled_until(), self.retention.raw_days
        )
        if plan.rollup is None:
            return None
        q, text = influx_module.quote_ident, influx_module.quote_string
        field = q(nfc(metric.field))
        raw_source = q(nfc(metric.measurement))
        rollup_source = f"{q(self.database)}.{q(ROLLUP_RP)}.{raw_source}"
        unit_is = f"{q(nfc(unit.level))} = {text(nfc(unit.code))}"
        statements = [
            (f"count({field}), sum({field}), min({field}), max({field})", raw_source, a, b)
            for a, b in plan.raw
        ]
        names = {kind: q(f"{kind}_{nfc(metric.field)}") for kind in ("count", "sum", "min", "max")}
        statements.append(
            (
                f"sum({names['count']}), sum({names['sum']}), min({names['min']}),"
                f" max({names['max']})",
                rollup_source,
                *plan.rollup,
            )
        )
        parts = []
        for select, source, first, last in statements:
            result = self.store._query(
                f"SELECT {select} FROM {source} WHERE {unit_is}"
                f" AND time >= {first}ms AND time < {last}ms"
                f" GROUP BY time({width}ms) fill(none)",
                f"read the series of {unit.level} {unit.code}",
            )
            parts.append(
                [
                    BucketStats(int(ts), int(count), float(total), float(low), float(high))
                    for series in result.get("series", [])
                    for ts, count, total, low, high in series["values"]
                    if count
                ]
            )
        return bucket_values(parts, aggregation)

    def _rollup_query(
        self,
        metric: MetricRef,
        level: str,
        hours: tuple[int, int],
        parent: UnitRef | None,
        what: str,
    ) -> str:
        """``what``: "newest" (each pair's last value), else the aggregation whose
        statistics to read."""
        q = influx_module.quote_ident
        field = nfc(metric.field)
        if what == "newest":
            select = f"last({q('last_' + field)})"
        else:
            select = f"sum({q('count_' + field)}) AS {q('count')}" + "".join(
                f", {function}({q(kind + '_' + field)}) AS {q(alias)}"
                for kind, function, alias in _ROLLUP_COLUMNS
                if kind in _NEEDED.get(what, ())
            )
        where = f"time >= {hours[0]}ms AND time < {hours[1]}ms"
        if parent is not None:
            where += f" AND {q(nfc(parent.level))} = {influx_module.quote_string(nfc(parent.code))}"
        source = f"{q(self.database)}.{q(ROLLUP_RP)}.{q(nfc(metric.measurement))}"
        group = (
            'GROUP BY "device"' if nfc(level) == "device" else f'GROUP BY "device", {q(nfc(level))}'
        )
        return f"SELECT {select} FROM {source} WHERE {where} {group}"

    def _stats(self, query: str, level_tag: str, doing: str) -> list[DeviceStats]:
        return parse_stats(self.store._query(query, doing), level_tag)

    def _lasts(self, query: str, level_tag: str, doing: str) -> list[DeviceLast]:
        return parse_lasts(self.store._query(query, doing), level_tag)


# The roll-up fields each aggregation reads besides the count.
_NEEDED = {"mean": ("sum",), "sum": ("sum",), "min": ("min",), "max": ("max",)}
# Roll-up field kind, the function combining hours, the column name in the answer.
_ROLLUP_COLUMNS = (("sum", "sum", "total"), ("min", "min", "low"), ("max", "max", "high"))


def parse_rollup_stats(result: dict[str, Any], level_tag: str) -> list[DeviceStats]:
    """Rows of a roll-up statistics answer; a column not asked for is neutral (0 for the
    sum, ±inf for the extremes), the aggregation that did not ask never reads it."""
    rows: list[DeviceStats] = []
    for series in result.get("series", []):
        device, unit = _pair(series, level_tag)
        column = {name: index for index, name in enumerate(series["columns"])}
        for values in series["values"]:
            count = values[column["count"]]
            if not count:
                continue
            total = values[column["total"]] if "total" in column else 0.0
            low = values[column["low"]] if "low" in column else math.inf
            high = values[column["high"]] if "high" in column else -math.inf
            rows.append(
                DeviceStats(device, unit, int(count), float(total), float(low), float(high))
            )
    return rows


def parse_stats(result: dict[str, Any], level_tag: str) -> list[DeviceStats]:
    """Rows of a count/sum/min/max answer grouped by device and unit (raw or roll-ups)."""
    rows: list[DeviceStats] = []
    for series in result.get("series", []):
        device, unit = _pair(series, level_tag)
        rows.extend(
            DeviceStats(device, unit, int(count), float(total), float(low), float(high))
            for _, count, total, low, high in series["values"]
            if count
        )
    return rows


def parse_lasts(result: dict[str, Any], level_tag: str) -> list[DeviceLast]:
    """Rows of a last() answer grouped by device and unit, with the point's time."""
    rows: list[DeviceLast] = []
    for series in result.get("series", []):
        device, unit = _pair(series, level_tag)
        rows.extend(
            DeviceLast(device, unit, ts_ms, float(value))
            for ts_ms, value in series["values"]
            if value is not None
        )
    return rows
