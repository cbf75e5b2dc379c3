"""The map at a moment in the past, on today's units, across the 2025 reform.

Readings taken before ``history.reform_start`` carry pre-2025 unit codes: for such a
moment the old units are queried and mapped onto the 2025 units by ``layers.history``
(docs/design/009-history-mapping.md); the frame says which values were mapped and from
which old units, so the page can say so. From the reform on, the current codes are queried
as they are.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from core.ports import Store
from core.settings import MetricSettings
from core.types import UnitRef, UnitValue
from dashboard.frames import unit_values_frame
from layers.history import OLD_PROVINCE_LEVEL, PARTIAL_MARK, HistoryMap, MappedValue
from layers.levels import Hierarchy

HISTORY_COLUMNS = ("mapped", "partial", "sources")


def historical_unit_values(
    store: Store,
    history: HistoryMap | None,
    hierarchy: Hierarchy,
    metric: MetricSettings,
    level: str,
    parent: UnitRef | None,
    at: datetime,
    lookback: timedelta,
) -> pd.DataFrame:
    """The value of ``metric`` per unit of ``level`` (2025 structure) inside ``parent``, as
    it was at ``at``: each device's last value in [at - lookback, at), combined per unit.

    Indexed by unit code (sorted): value, ts (UTC), devices, mapped (bool), partial (bool),
    sources (str: the old codes, partial ones marked with ``*``; "" when not mapped). Units
    without data are absent. ``history`` None (mapping off) queries every moment with the
    codes as stored."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at must be timezone-aware (UTC): {at.isoformat()}")
    inside = None if parent is None else parent.code
    wanted = {unit.code for unit in hierarchy.units_at(level, inside)}
    since = at - lookback
    if history is not None and history.is_historical(at):
        mapped = _mapped_values(store, history, hierarchy, metric, level, parent, since, at)
        return history_frame([value for value in mapped if value.code in wanted])
    if history is not None:
        # A pre-reform reading tagged 20194 is not today's 20194: never read one as current.
        since = max(since, history.reform_start)
    found = store.latest_by_unit(
        metric.ref, level, since=since, until=at, parent=parent, aggregation=metric.aggregation
    )
    current = [
        MappedValue(value.code, value.value, value.ts, value.devices, False, (), mapped=False)
        for value in found
        if value.code in wanted
    ]
    return history_frame(current)


def history_frame(values: list[MappedValue]) -> pd.DataFrame:
    """code (index) → value, ts (UTC), devices (the map's frame, dashboard.data), then
    mapped, partial and sources."""
    frame = unit_values_frame([UnitValue(v.code, v.value, v.ts, v.devices) for v in values])
    frame["mapped"] = pd.Series([v.mapped for v in values], index=frame.index, dtype="bool")
    frame["partial"] = pd.Series([v.partial for v in values], index=frame.index, dtype="bool")
    frame["sources"] = pd.Series([v.sources_text() for v in values], index=frame.index, dtype="str")
    return frame


def source_codes(sources: str) -> list[tuple[str, bool]]:
    """ "20194, 20296*" → [("20194", False), ("20296", True)]: for a note in the page's
    language, e.g. "từ 2 đơn vị cũ: 20194, 20296 (một phần)"."""
    return [
        (code.removesuffix(PARTIAL_MARK), code.endswith(PARTIAL_MARK))
        for code in (part.strip() for part in sources.split(","))
        if code
    ]


def _mapped_values(
    store: Store,
    history: HistoryMap,
    hierarchy: Hierarchy,
    metric: MetricSettings,
    level: str,
    parent: UnitRef | None,
    since: datetime,
    until: datetime,
) -> list[MappedValue]:
    """Old units' values in [since, until), at every old level of the map, combined onto
    the 2025 units of ``level``."""
    old_parent = None
    if parent is not None:
        communes = [
            code
            for code in history.new_communes
            if hierarchy.get(code) is not None and hierarchy.is_within(code, parent.code)
        ]
        provinces = history.old_provinces(communes)
        # Narrowed only when one old province holds them all: a device seen in two old
        # provinces within the window must count once, where it was last (one query).
        if len(provinces) == 1 and "" not in provinces:
            old_parent = UnitRef(OLD_PROVINCE_LEVEL, next(iter(provinces)))
    old_values = {
        old_level: store.latest_by_unit(
            metric.ref,
            old_level,
            since=since,
            until=until,
            parent=old_parent,
            aggregation=metric.aggregation,
        )
        for old_level in history.old_levels
    }
    return history.combine(old_values, metric.aggregation, hierarchy=hierarchy, level=level)
