"""Is every registered device reporting, and who sends data without being registered (the
devices page, issue #5).

A device's *status* is about its connection, not its values (the map's device layer,
:mod:`dashboard.devices`, judges values). From its last message of any catalogue metric of
its kind and the interval its kind is expected to report at (``devices.expected_interval_s``,
else ``devices.default_interval_s``):

``online``  the last message is at most 2 intervals old (exactly 2 is still online);
``late``    at most 5 intervals old;
``offline`` older, or nothing within the lookback (7 days): "never seen".

The store is read with one ``latest_by_unit`` per catalogue metric at level ``device``
(:func:`latest_readings`): every device's last value of it, whatever the number of
devices. The unregistered devices (:mod:`dashboard.devices_unregistered`) come from the
same scan, so the page caches it once.

Every frame goes through an :class:`~dashboard.access.Access`: a device counts for the
user only when its unit is one they may see; a device outside every unit, or not placed,
is an admin's only. A unit filter includes the unit's descendants.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Final, Literal

import pandas as pd

from core.ports import Store
from core.settings import DevicesSettings, MetricSettings
from dashboard.access import Access
from dashboard.devices import DEVICE_LEVEL
from dashboard.frames import TS_DTYPE
from layers.levels import Hierarchy
from layers.registry import Device

Status = Literal["online", "late", "offline"]
STATUSES: Final[tuple[Status, ...]] = ("offline", "late", "online")  # worst first
ONLINE_INTERVALS: Final = 2
LATE_INTERVALS: Final = 5
LOOKBACK: Final = timedelta(days=7)  # how far back a device's last message is looked for
STATUS_COLUMNS: Final = (
    "device_id",
    "name",
    "kind",
    "unit_code",
    "unit_name",
    "status",
    "last_seen",
    "age_s",
    "interval_s",
)  # then one column per catalogue metric id: its last value (NaN for other kinds)
READING_COLUMNS: Final = ("device_id", "metric", "value", "ts")


class FilterError(ValueError):
    """A filter value that is not one of the allowed ones; the message in both languages."""

    def __init__(self, vi: str, en: str) -> None:
        super().__init__(f"{vi} / {en}")
        self.vi, self.en = vi, en

    def in_lang(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi


def check_status(value: str | None) -> Status | None:
    """``value`` as a status filter (None or "" = any); FilterError for anything else."""
    if not value:
        return None
    for status in STATUSES:
        if value == status:
            return status
    allowed = ", ".join(STATUSES)
    raise FilterError(
        f"Trạng thái phải là một trong {allowed}: {value}",
        f"status must be one of {allowed}: {value}",
    )


def expected_interval(kind: str, settings: DevicesSettings) -> float:
    """Seconds between two messages of a device of ``kind``."""
    return settings.expected_interval_s.get(kind, settings.default_interval_s)


def connection_status(last_seen: datetime | None, now: datetime, interval_s: float) -> Status:
    """online / late / offline from the last message's time (None: never seen). A message
    from the future (a device clock ahead) is online."""
    if last_seen is None:
        return "offline"
    age = (now - last_seen).total_seconds()
    if age <= ONLINE_INTERVALS * interval_s:
        return "online"
    if age <= LATE_INTERVALS * interval_s:
        return "late"
    return "offline"


def latest_readings(
    store: Store, metrics: Mapping[str, MetricSettings], since: datetime
) -> pd.DataFrame:
    """Every device's last value of every catalogue metric since ``since``: device_id,
    metric (catalogue id), value, ts (UTC). One ``latest_by_unit`` per metric, grouped by
    the ``device`` tag. Store errors (``RetryableError``) are the caller's to handle."""
    rows: list[tuple[str, str, float, datetime]] = []
    for metric_id, metric in metrics.items():
        found = store.latest_by_unit(metric.ref, DEVICE_LEVEL, since=since, aggregation="last")
        rows.extend((item.code, metric_id, item.value, item.ts) for item in found if item.code)
    frame = pd.DataFrame(rows, columns=list(READING_COLUMNS))
    return frame.astype(
        {"device_id": "object", "metric": "object", "value": "float64", "ts": TS_DTYPE}
    )


def readings_by_device(
    readings: pd.DataFrame, metrics: Mapping[str, MetricSettings]
) -> dict[str, dict[str, tuple[float, datetime]]]:
    """device_id -> metric id -> (value, ts)."""
    found: dict[str, dict[str, tuple[float, datetime]]] = {}
    for device_id, metric_id, value, ts in readings.itertuples(index=False, name=None):
        if metric_id in metrics:
            found.setdefault(device_id, {})[metric_id] = (float(value), ts.to_pydatetime())
    return found


def status_table(
    readings: pd.DataFrame,
    devices: Iterable[Device],
    metrics: Mapping[str, MetricSettings],
    settings: DevicesSettings,
    now: datetime,
) -> pd.DataFrame:
    """Every registered device with its status, before access and filters (unit_name
    empty): the columns of :data:`STATUS_COLUMNS` and one per catalogue metric."""
    clash = set(metrics) & set(STATUS_COLUMNS)
    if clash:
        raise ValueError(f"metric ids must differ from the devices table's columns: {clash}")
    found = readings_by_device(readings, metrics)
    records: list[dict[str, object]] = []
    for device in devices:
        mine = {
            metric_id: reading
            for metric_id, reading in found.get(device.device_id, {}).items()
            if metrics[metric_id].kind == device.kind  # a stray value of another kind
        }
        last_seen = max((ts for _, ts in mine.values()), default=None)
        interval = expected_interval(device.kind, settings)
        record: dict[str, object] = {
            "device_id": device.device_id,
            "name": device.name,
            "kind": device.kind,
            "unit_code": device.unit_code,
            "unit_name": "",
            "status": connection_status(last_seen, now, interval),
            "last_seen": last_seen,
            "age_s": math.nan if last_seen is None else (now - last_seen).total_seconds(),
            "interval_s": interval,
        }
        for metric_id in metrics:
            record[metric_id] = mine[metric_id][0] if metric_id in mine else math.nan
        records.append(record)
    return typed_frame(records, status_dtypes(metrics))


def typed_frame(records: list[dict[str, object]], dtypes: Mapping[str, str]) -> pd.DataFrame:
    """A frame of ``records`` with the column order and dtypes of ``dtypes``, built column
    by column: pandas would otherwise read a text column as "str" and a None as NaN."""
    columns = {
        name: pd.Series([record.get(name) for record in records], dtype=dtype)
        for name, dtype in dtypes.items()
    }
    return pd.DataFrame(columns, columns=list(dtypes))


def status_dtypes(metrics: Iterable[str]) -> dict[str, str]:
    """The dtypes of :func:`status_table`'s columns."""
    texts = ("device_id", "name", "kind", "unit_code", "unit_name", "status")
    return {
        **dict.fromkeys(texts, "object"),
        "last_seen": TS_DTYPE,
        "age_s": "float64",
        "interval_s": "float64",
        **dict.fromkeys(metrics, "float64"),
    }


class UnitScope:
    """Which unit codes one user may see and which lie inside the unit filter, each code
    answered once (1,000 devices share a few hundred units)."""

    def __init__(self, access: Access, hierarchy: Hierarchy, unit: str | None) -> None:
        self.access, self.hierarchy, self.unit = access, hierarchy, unit
        self._answers: dict[str | None, bool] = {}

    def keeps(self, code: object) -> bool:
        key = code if isinstance(code, str) else None
        if key not in self._answers:
            self._answers[key] = self._keeps(key)
        return self._answers[key]

    def _keeps(self, code: str | None) -> bool:
        if code is None:  # outside every unit, or not placed: an admin's, and in no unit
            return self.access.everything and self.unit is None
        if not self.access.can_see(code):
            return False
        if self.unit is None:
            return True
        known = self.hierarchy.get(code) is not None and self.hierarchy.get(self.unit) is not None
        return known and self.hierarchy.is_within(code, self.unit)

    def name(self, code: object, lang: str) -> str:
        """The unit's full name ("Phường Hải Vân, Thành phố Đà Nẵng"); its code when the
        hierarchy does not know it; "" for none."""
        if not isinstance(code, str):
            return ""
        return self.hierarchy.full_name(code, lang) if self.hierarchy.get(code) else code


def scoped(
    frame: pd.DataFrame,
    scope: UnitScope,
    *,
    kind: str | None,
    lang: str,
) -> pd.DataFrame:
    """The rows ``scope`` keeps, of ``kind`` (None: any), with their unit names."""
    keep = pd.Series([scope.keeps(code) for code in frame["unit_code"]], index=frame.index)
    out = frame[keep.astype(bool)]  # a Series: an empty list would select no columns
    if kind:
        out = out[out["kind"] == kind]
    out = out.copy()  # the input may be a cached frame: never modified
    out["unit_name"] = pd.Series(
        [scope.name(code, lang) for code in out["unit_code"]], index=out.index, dtype="object"
    )
    return out


def worst_first(frame: pd.DataFrame) -> pd.DataFrame:
    """Offline, then late, then online; within each the longest silent first (never seen
    before everything), then by id."""
    rank = frame["status"].map({status: order for order, status in enumerate(STATUSES)})
    silence = frame["age_s"].fillna(math.inf)
    keys = pd.DataFrame({"rank": rank, "silence": -silence, "id": frame["device_id"]})
    order = keys.sort_values(["rank", "silence", "id"], kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def device_status_frame(
    store: Store,
    devices: Iterable[Device],
    metrics: Mapping[str, MetricSettings],
    settings: DevicesSettings,
    now: datetime,
    access: Access,
    *,
    hierarchy: Hierarchy,
    unit: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    lang: str = "vi",
    readings: pd.DataFrame | None = None,
    lookback: timedelta = LOOKBACK,
) -> pd.DataFrame:
    """One row per registered device the user may see (inside ``unit``, of ``kind``, with
    ``status``: None for any), worst first: :data:`STATUS_COLUMNS`, then the last value of
    every catalogue metric (NaN for the metrics of other kinds). ``readings`` is a scan of
    :func:`latest_readings` already made (the page's cache); else the store is read.
    FilterError for a status that does not exist."""
    wanted = check_status(status)
    if readings is None:
        readings = latest_readings(store, metrics, now - lookback)
    table = status_table(readings, devices, metrics, settings, now)
    out = scoped(table, UnitScope(access, hierarchy, unit), kind=kind, lang=lang)
    if wanted is not None:
        out = out[out["status"] == wanted]
    return worst_first(out)


def count_by(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """{"": {status: count}, kind: {status: count}, ...} of a :func:`device_status_frame`:
    every status of the whole frame, then of each kind (kinds sorted)."""
    counts: dict[str, dict[str, int]] = {"": dict.fromkeys(STATUSES, 0)}
    for kind in sorted(set(frame["kind"])):
        counts[str(kind)] = dict.fromkeys(STATUSES, 0)
    for kind, status in zip(frame["kind"], frame["status"], strict=True):
        counts[""][status] += 1
        counts[str(kind)][status] += 1
    return counts
