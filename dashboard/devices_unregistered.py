"""Devices that send data but are not in the registry (the devices page, issue #5).

Two sources, merged by device id:

* the ingest's table of unassigned devices (:mod:`ingest.unassigned`, in the SQL state
  database): not registered and no position, or placed outside every unit; stored under
  the ``unassigned`` pseudo-unit, with why, first and last seen and a message count;
* ids with readings in the store that the registry does not know (:func:`latest_readings`'
  scan): a device not registered but sending its position is placed by the ingest and
  stored under its unit. Which unit is asked of the store per such device
  (``latest_by_unit`` at the lowest level with the device as parent), newest first and at
  most :data:`MAX_PLACEMENTS` of them: a flood of made-up ids must not cost a query each.

The units' own sources of the government contract (device ``unit-<code>``) are not
devices and are left out. A device not placed in a unit is an admin's only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Final

import pandas as pd
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from core.errors import RetryableError
from core.ports import Store
from core.settings import MetricSettings
from core.types import UNASSIGNED, UnitRef
from dashboard.access import Access
from dashboard.devices import DEVICE_LEVEL
from dashboard.devices_status import LOOKBACK, UnitScope, latest_readings, scoped, typed_frame
from dashboard.frames import TS_DTYPE
from ingest.contracts.gov import SOURCE_PREFIX
from ingest.unassigned import NO_POSITION, OUTSIDE_MAP, unassigned_devices
from layers.levels import Hierarchy
from layers.registry import Device

MAX_PLACEMENTS: Final = 200
UNASSIGNED_LIMIT: Final = 1000  # rows of the ingest's table read, most recently seen first
NOT_REGISTERED: Final = "not_registered"  # placed in a unit by its position, not registered
UNPLACED: Final = "unplaced"  # in the store under no known unit, and no ingest record
WHY: Final = (NO_POSITION, OUTSIDE_MAP, NOT_REGISTERED, UNPLACED)
UNASSIGNED_COLUMNS: Final = ("device_id", "kind", "why", "first_seen", "last_seen", "count")
UNREGISTERED_COLUMNS: Final = (
    "device_id",
    "kind",
    "unit_code",
    "unit_name",
    "why",
    "first_seen",
    "last_seen",
    "count",
)


_UNASSIGNED_DTYPES: Final = {
    "device_id": "object",
    "kind": "object",
    "why": "object",
    "first_seen": TS_DTYPE,
    "last_seen": TS_DTYPE,
    "count": "int64",
}
_UNREGISTERED_DTYPES: Final = {
    **dict.fromkeys(("device_id", "kind", "unit_code", "unit_name", "why"), "object"),
    "first_seen": TS_DTYPE,
    "last_seen": TS_DTYPE,
    "count": "Int64",  # <NA> for a device seen in the store only
}


def _unassigned(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    return typed_frame(
        [dict(zip(UNASSIGNED_COLUMNS, row, strict=True)) for row in rows], _UNASSIGNED_DTYPES
    )


def read_unassigned(engine: Engine | None, limit: int = UNASSIGNED_LIMIT) -> pd.DataFrame:
    """The ingest's unassigned devices (:data:`UNASSIGNED_COLUMNS`), most recently seen
    first; none when there is no state database or the ingest never made the table.
    RetryableError when the database does not answer."""
    if engine is None:
        return _unassigned([])
    table = unassigned_devices
    query = (
        select(table.c.device_id, table.c.kind, table.c.why)
        .add_columns(table.c.first_seen, table.c.last_seen, table.c["count"])
        .order_by(table.c.last_seen.desc(), table.c.device_id)
        .limit(max(limit, 0))
    )
    try:
        if not inspect(engine).has_table(table.name):
            return _unassigned([])
        with engine.connect() as connection:
            rows = [tuple(row) for row in connection.execute(query).all()]
    except SQLAlchemyError as exc:
        raise RetryableError(f"unassigned devices could not be read: {exc}") from exc
    return _unassigned(rows)


def _newest_unknown(
    readings: pd.DataFrame, metrics: Mapping[str, MetricSettings], registered: Collection[str]
) -> dict[str, tuple[datetime, str]]:
    """id -> (newest reading's time, its metric id) of every unregistered device."""
    newest: dict[str, tuple[datetime, str]] = {}
    for device_id, metric_id, _value, ts in readings.itertuples(index=False, name=None):
        if device_id in registered or device_id.startswith(SOURCE_PREFIX):
            continue
        if metric_id not in metrics:
            continue
        when = ts.to_pydatetime()
        if device_id not in newest or when > newest[device_id][0]:
            newest[device_id] = (when, metric_id)
    return newest


def unknown_ids(
    readings: pd.DataFrame, metrics: Mapping[str, MetricSettings], registered: Collection[str]
) -> set[str]:
    """The ids in ``readings`` that are neither registered nor a unit's own source."""
    return set(_newest_unknown(readings, metrics, registered))


def place_devices(
    store: Store,
    metrics: Mapping[str, MetricSettings],
    readings: pd.DataFrame,
    registered: Collection[str],
    level: str,
    since: datetime,
    limit: int = MAX_PLACEMENTS,
) -> dict[str, str | None]:
    """id -> the unit of ``level`` its newest data are stored under (None: the
    ``unassigned`` pseudo-unit or none), for the ``limit`` most recently seen unregistered
    devices of ``readings``. One small query per device."""
    newest = _newest_unknown(readings, metrics, registered)
    order = sorted(newest, key=lambda device_id: (newest[device_id][0], device_id), reverse=True)
    placed: dict[str, str | None] = {}
    for device_id in order[: max(limit, 0)]:
        metric = metrics[newest[device_id][1]]
        found = store.latest_by_unit(
            metric.ref,
            level,
            since=since,
            parent=UnitRef(DEVICE_LEVEL, device_id),
            aggregation="last",
        )
        best = max(found, key=lambda item: item.ts, default=None)
        unplaced = best is None or best.code in ("", UNASSIGNED)
        placed[device_id] = None if unplaced or best is None else best.code
    return placed


def _latest(*stamps: datetime | None) -> datetime | None:
    present = [stamp for stamp in stamps if stamp is not None]
    return max(present, default=None)


def _stamp(value: object) -> datetime | None:
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    return value if isinstance(value, datetime) else None


def merge_unregistered(
    readings: pd.DataFrame,
    metrics: Mapping[str, MetricSettings],
    registered: Collection[str],
    unassigned: pd.DataFrame | None,
    placed: Mapping[str, str | None],
) -> pd.DataFrame:
    """Every unregistered device of both sources (unit_name empty), before access."""
    newest = _newest_unknown(readings, metrics, registered)
    records: dict[str, dict[str, object]] = {}
    for device_id, (ts, metric_id) in newest.items():
        unit = placed.get(device_id)
        records[device_id] = {
            "device_id": device_id,
            "kind": metrics[metric_id].kind,
            "unit_code": unit,
            "unit_name": "",
            "why": NOT_REGISTERED if unit is not None else UNPLACED,
            "first_seen": None,
            "last_seen": ts,
            "count": None,
        }
    rows = unassigned if unassigned is not None else _unassigned([])
    for device_id, kind, why, first_seen, last_seen, count in rows.itertuples(
        index=False, name=None
    ):
        if device_id in registered:  # registered since the ingest recorded it
            continue
        record = records.setdefault(
            device_id,
            {"device_id": device_id, "kind": kind, "unit_code": None, "unit_name": ""},
        )
        if record["unit_code"] is None:  # placed since: the store's unit is the news
            record["why"] = why
        record["first_seen"] = _stamp(first_seen)
        record["last_seen"] = _latest(_stamp(record.get("last_seen")), _stamp(last_seen))
        record["count"] = int(count)
    frame = typed_frame(list(records.values()), _UNREGISTERED_DTYPES)
    return frame.sort_values(
        ["last_seen", "device_id"], ascending=[False, True], na_position="last"
    ).reset_index(drop=True)


def unregistered_frame(
    store: Store,
    devices: Iterable[Device],
    metrics: Mapping[str, MetricSettings],
    now: datetime,
    access: Access,
    *,
    hierarchy: Hierarchy,
    unassigned: pd.DataFrame | None = None,
    placed: Mapping[str, str | None] | None = None,
    unit: str | None = None,
    kind: str | None = None,
    lang: str = "vi",
    readings: pd.DataFrame | None = None,
    lookback: timedelta = LOOKBACK,
) -> pd.DataFrame:
    """The unregistered devices the user may see (inside ``unit``, of ``kind``), most
    recently seen first: :data:`UNREGISTERED_COLUMNS`. ``unassigned`` is the ingest's
    table (:func:`read_unassigned`; None: none), ``placed`` the units of
    :func:`place_devices` and ``readings`` the scan of :func:`latest_readings` when the
    caller has them (its cache); else the store is read."""
    since = now - lookback
    if readings is None:
        readings = latest_readings(store, metrics, since)
    registered = {device.device_id for device in devices}
    if placed is None:
        placed = place_devices(store, metrics, readings, registered, hierarchy.levels[-1], since)
    table = merge_unregistered(readings, metrics, registered, unassigned, placed)
    out = scoped(table, UnitScope(access, hierarchy, unit), kind=kind, lang=lang)
    return out.reset_index(drop=True)[list(UNREGISTERED_COLUMNS)]
