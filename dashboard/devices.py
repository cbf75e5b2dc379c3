"""The state of every registered device, for the device layer of the map (issue #4).

A device is in exactly one of four states, checked in this order (the worst wins):

``offline``
    It has no reading of any catalogue metric of its kind (``metrics`` whose ``kind`` is the
    device's kind) newer than ``stale_after`` (``dashboard.stale_after_s``, 900 s by
    default) before now, or it has never been seen at all. A reading exactly
    ``stale_after`` old still counts, as on the map (``views.map.is_stale``). Nothing else
    is judged for an offline device: its old values do not say how things are now.
``alarm``
    Its latest value of some metric breaches an alert rule (``alerts.rules``) of severity
    ``critical``: strictly above the threshold for ``op: above``, strictly below it for
    ``op: below``, as ``alerts.evaluate.breaches`` decides.
``warning``
    It breaches a rule of severity ``warning``. Rules of severity ``info`` never colour a
    device.
``ok``
    Otherwise: seen recently and breaching no warning or critical rule.

Rules are written for units (``level``) and compare an aggregate of the unit's devices
(``mean``, ``max`` ...). Applying the same threshold to one device's own latest value is
a deliberate simplification: it shows *which* device pushes a unit over, and a single
device over a unit-mean threshold is worth a look even when the unit is not. What the
alert evaluator does is kept where it applies to one value: a rule naming ``units``
judges only devices tagged with one of them at the rule's level; a value older than the
rule's ``lookback_s``, or not finite, is not judged. ``for_s`` (how long a breach must
last before an e-mail) is ignored: the map shows the state of the latest value.

When several rules of the worst severity breach, the first in ``alerts.rules`` order
decides, so the same data always gives the same row.

:func:`device_frame` reads the store with one ``latest_by_unit`` per catalogue metric,
grouped by the ``device`` tag that every stored point carries (``core.types.Point``):
both adapters group by (device, level tag) and roll up per level value
(``core.store.rollup``), so level ``"device"`` gives each device's own last value,
unchanged by the aggregation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

import pandas as pd

from alerts.evaluate import breaches
from core.ports import Store
from core.settings import AlertRule, MetricSettings
from core.types import UnitRef
from dashboard.frames import TS_DTYPE
from layers.levels import Hierarchy
from layers.registry import Device

DeviceState = Literal["ok", "warning", "alarm", "offline"]
# Legend order: from fine to worst.
DEVICE_STATES: Final[tuple[DeviceState, ...]] = ("ok", "warning", "alarm", "offline")
DEVICE_LEVEL: Final = "device"  # the tag every stored point carries
FRAME_COLUMNS: Final = (
    "device_id",
    "kind",
    "name",
    "lon",
    "lat",
    "unit_code",
    "last_seen",
    "state",
    "metric",
    "value",
    "rule",
)
_SEVERITY_STATE: Final[dict[str, DeviceState]] = {"critical": "alarm", "warning": "warning"}


@dataclass(frozen=True, slots=True)
class Latest:
    """A device's latest value of one metric."""

    value: float
    ts: datetime


@dataclass(frozen=True, slots=True)
class Verdict:
    """A device's state and, for alarm and warning, the value and rule that decided it."""

    state: DeviceState
    metric: str | None = None  # the catalogue id of the metric, e.g. "pm25"
    value: float | None = None
    rule: str | None = None  # the alert rule's id


def device_state(
    latest: Mapping[str, Latest],
    rules: Sequence[AlertRule],
    *,
    now: datetime,
    stale_after: timedelta,
    tags: Mapping[str, str] | None = None,
) -> Verdict:
    """The state of one device from its latest value per metric id (only the metrics of its
    kind; none when never seen) and the alert rules. ``tags`` are the device's unit codes
    per level, for rules limited to some ``units``. Pure."""
    newest = max((item.ts for item in latest.values()), default=None)
    if newest is None or now - newest > stale_after:
        return Verdict("offline")
    worst: Verdict = Verdict("ok")
    for rule in rules:
        state = _SEVERITY_STATE.get(rule.severity)
        item = latest.get(rule.metric)
        if state is None or item is None or not _applies(rule, tags or {}):
            continue
        if not math.isfinite(item.value) or now - item.ts > timedelta(seconds=rule.lookback_s):
            continue
        if breaches(rule, item.value) and _rank(state) > _rank(worst.state):
            worst = Verdict(state, rule.metric, item.value, rule.id)
    return worst


def _applies(rule: AlertRule, tags: Mapping[str, str]) -> bool:
    return rule.units is None or tags.get(rule.level) in rule.units


def _rank(state: DeviceState) -> int:
    return DEVICE_STATES.index(state)


def within_level(code: str, devices: Iterable[Device], hierarchy: Hierarchy | None) -> str | None:
    """The level of unit ``code``: from the hierarchy when given (KeyError for an unknown
    code), else from the first device tagged with it; None when no device is."""
    if hierarchy is not None:
        return hierarchy.unit(code).level
    for device in devices:
        for level, value in device.tags.items():
            if value == code:
                return level
    return None


def device_frame(
    store: Store,
    devices: Iterable[Device],
    metrics: Mapping[str, MetricSettings],
    rules: Sequence[AlertRule],
    *,
    now: datetime,
    stale_after: timedelta,
    lookback: timedelta,
    within: str | None = None,
    hierarchy: Hierarchy | None = None,
) -> pd.DataFrame:
    """One row per device (sorted by device_id) with its position, last reading and state.

    Columns: device_id, kind, name, lon, lat, unit_code (None outside every unit),
    last_seen (``datetime64[us, UTC]``, NaT when nothing within ``lookback``), state
    (:data:`DEVICE_STATES`), and for alarm and warning the catalogue ``metric``, its
    ``value`` and the ``rule`` id that decided it (None/NaN otherwise).

    ``within`` keeps only the devices tagged with that unit code (at any level) and asks
    the store for that unit's points only. ``lookback`` is how far back a reading is
    looked for, so an offline device still shows when it was last seen; it must be at
    least ``stale_after``. One ``latest_by_unit`` per catalogue metric of a kind some
    selected device has. Store errors (``RetryableError``) are the caller's to handle."""
    if lookback < stale_after:
        raise ValueError(f"lookback ({lookback}) must be at least stale_after ({stale_after})")
    selected = list(devices)
    parent: UnitRef | None = None
    if within is not None:
        level = within_level(within, selected, hierarchy)
        selected = [d for d in selected if level is not None and d.tags.get(level) == within]
        parent = UnitRef(level, within) if level is not None else None
    selected.sort(key=lambda device: device.device_id)
    kinds = {device.kind for device in selected}
    found: dict[str, dict[str, Latest]] = {}  # device_id -> metric id -> its latest value
    wanted = {device.device_id: device.kind for device in selected}
    for metric_id, metric in metrics.items():
        if metric.kind not in kinds:
            continue
        values = store.latest_by_unit(
            metric.ref, DEVICE_LEVEL, since=now - lookback, parent=parent, aggregation="last"
        )
        for item in values:
            if wanted.get(item.code) == metric.kind:  # a stray id or a device of another kind
                found.setdefault(item.code, {})[metric_id] = Latest(item.value, item.ts)
    verdicts: list[Verdict] = []
    last_seen: list[datetime | None] = []
    for device in selected:
        latest = found.get(device.device_id, {})
        verdicts.append(
            device_state(latest, rules, now=now, stale_after=stale_after, tags=device.tags)
        )
        last_seen.append(max((item.ts for item in latest.values()), default=None))

    def texts(values: Iterable[str | None]) -> pd.Series:
        # object, not pandas' inferred "str": a missing text stays None, not NaN
        return pd.Series(list(values), dtype="object")

    return pd.DataFrame(
        {
            "device_id": texts(device.device_id for device in selected),
            "kind": texts(device.kind for device in selected),
            "name": texts(device.name for device in selected),
            "lon": pd.Series([float(device.lon) for device in selected], dtype="float64"),
            "lat": pd.Series([float(device.lat) for device in selected], dtype="float64"),
            "unit_code": texts(device.unit_code for device in selected),
            "last_seen": pd.Series(pd.DatetimeIndex(last_seen, dtype=TS_DTYPE)),
            "state": texts(verdict.state for verdict in verdicts),
            "metric": texts(verdict.metric for verdict in verdicts),
            "value": pd.Series(
                [math.nan if v.value is None else v.value for v in verdicts], dtype="float64"
            ),
            "rule": texts(verdict.rule for verdict in verdicts),
        },
        columns=list(FRAME_COLUMNS),
    )
