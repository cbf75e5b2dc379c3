"""Rule judging: values from the store → a Result per unit (or device). Pure.

One function per rule type; alerts/rules.py fetches what each needs from the store.
``holding`` names the codes whose alert is pending or firing (or whose episode is open):
those are judged against the rule's clear line instead of its trigger line (hysteresis),
so a value hovering between the two does not start and end an alert every round::

    above, threshold 80, clear 70:   ok ─ value > 80 ─► breach ─ value ≤ 70 ─► ok
                                     (79 keeps an ok unit ok and a firing unit firing)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from core.settings import AlertRule
from core.types import UnitValue

ResultKind = Literal["breach", "ok", "no_data", "error"]


@dataclass(frozen=True, slots=True)
class Result:
    """What one evaluation says about one unit.

    ``breach``/``ok`` come from the judging functions here; ``no_data`` (a unit with an
    alert state is absent from the store's answer) from alerts/rules.py, and ``error``
    (the store failed) from the service."""

    kind: ResultKind
    value: float | None = None
    ts: datetime | None = None  # the newest device timestamp behind ``value``
    error: str | None = None

    @classmethod
    def no_data(cls) -> Result:
        return cls("no_data")

    @classmethod
    def failed(cls, error: str) -> Result:
        return cls("error", error=error)


def beyond(op: str, value: float, line: float) -> bool:
    """Strict comparison: a value exactly at the line is not beyond it."""
    return value > line if op == "above" else value < line


def breaches(rule: AlertRule, value: float, *, holding: bool = False) -> bool:
    """Whether one reading breaches a rule on its own (the dashboard colours devices with
    it): only threshold rules on latest values can. A window's mean, a silence, a change
    or a ratio is never one reading, so for those rules this is False."""
    if rule.window_s > 0:
        return False
    return _past_line(rule, value, holding=holding)


def _past_line(rule: AlertRule, value: float, *, holding: bool) -> bool:
    """A threshold rule's value against its threshold, or its clear line while holding."""
    if rule.type != "threshold" or rule.op is None or rule.threshold is None:
        return False
    line = rule.clear if holding and rule.clear is not None else rule.threshold
    return beyond(rule.op, value, line)


def _wanted(rule: AlertRule) -> set[str] | None:
    return set(rule.units) if rule.units is not None else None


def evaluate(
    rule: AlertRule,
    values: list[UnitValue],
    now: datetime,
    *,
    holding: Collection[str] = (),
    max_age_s: float | None = None,
) -> dict[str, Result]:
    """A threshold rule: per unit code, "breach" or "ok" with the value.

    Only the rule's ``units`` count when it names some. A value that is not a finite number,
    or older than ``max_age_s`` (default the rule's lookback: a store answering with stale
    rows), is left out: the unit then counts as having no data rather than being judged on
    a value that is not there."""
    wanted = _wanted(rule)
    oldest = now - timedelta(seconds=rule.lookback_s if max_age_s is None else max_age_s)
    results: dict[str, Result] = {}
    for unit in values:
        if wanted is not None and unit.code not in wanted:
            continue
        if not math.isfinite(unit.value) or unit.ts < oldest:
            continue
        held = unit.code in holding
        kind: ResultKind = "breach" if _past_line(rule, unit.value, holding=held) else "ok"
        results[unit.code] = Result(kind, unit.value, unit.ts)
    return results


def evaluate_silence(
    rule: AlertRule,
    newest: Mapping[str, datetime],
    expected: Iterable[str],
    carried: Mapping[str, float],
    now: datetime,
) -> dict[str, Result]:
    """A no_data rule: per code expected or seen, the seconds since its newest reading;
    more than ``silent_s`` is a breach.

    ``newest``: the newest reading of each code the store saw (within the long lookback).
    ``carried``: for codes the store did not see, the silence already known from the
    previous round plus the time since (see alerts/rules.py). An expected code with
    neither is being watched from now: ok, silent 0 s (a fresh start does not call every
    device silent before it had a chance to report)."""
    assert rule.silent_s is not None
    wanted = _wanted(rule)
    results: dict[str, Result] = {}
    for code in sorted({*expected, *newest}):
        if wanted is not None and code not in wanted:
            continue
        ts = newest.get(code)
        # A device clock ahead of ours reads as silent 0 s, not a negative silence.
        silent = carried.get(code, 0.0) if ts is None else max(0.0, (now - ts).total_seconds())
        kind: ResultKind = "breach" if silent > rule.silent_s else "ok"
        results[code] = Result(kind, silent, ts)
    return results


def evaluate_change(
    rule: AlertRule,
    current: list[UnitValue],
    before: list[UnitValue],
    *,
    holding: Collection[str] = (),
) -> dict[str, Result]:
    """A rate rule: per code with a value now and ``over_s`` ago, the change between them.

    Rise: a breach when the change is at least ``change`` (``clear_change`` while
    holding); fall: when it is at most minus that."""
    assert rule.change is not None
    wanted = _wanted(rule)
    earlier = {unit.code: unit for unit in before if math.isfinite(unit.value)}
    results: dict[str, Result] = {}
    for unit in current:
        old = earlier.get(unit.code)
        if old is None or not math.isfinite(unit.value):
            continue
        if wanted is not None and unit.code not in wanted:
            continue
        change = unit.value - old.value
        limit = rule.change
        if unit.code in holding and rule.clear_change is not None:
            limit = rule.clear_change
        moved = change if rule.direction == "rise" else -change
        kind: ResultKind = "breach" if moved >= limit else "ok"
        results[unit.code] = Result(kind, change, unit.ts)
    return results


def evaluate_ratio(
    rule: AlertRule,
    numerators: list[UnitValue],
    denominators: list[UnitValue],
    target: float,
) -> dict[str, Result]:
    """A kpi rule: per code, Σ numerator / Σ denominator over the period (the sums come
    from the store, so a province's rate is its communes' summed counts divided, never an
    average of their rates). A denominator under ``min_count`` (or zero) is not judged."""
    wanted = _wanted(rule)
    tops = {unit.code: unit for unit in numerators}
    results: dict[str, Result] = {}
    for bottom in denominators:
        if wanted is not None and bottom.code not in wanted:
            continue
        if not math.isfinite(bottom.value) or bottom.value <= 0 or bottom.value < rule.min_count:
            continue
        top = tops.get(bottom.code)
        numerator = top.value if top is not None else 0.0  # nothing on time is a 0 % rate
        if not math.isfinite(numerator):
            continue
        ratio = numerator / bottom.value
        ts = max(bottom.ts, top.ts) if top is not None else bottom.ts
        kind: ResultKind = "breach" if beyond(rule.op or "below", ratio, target) else "ok"
        results[bottom.code] = Result(kind, ratio, ts)
    return results
