"""Rule evaluation: the latest value of every unit against a rule's threshold. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from core.settings import AlertRule
from core.types import UnitValue

ResultKind = Literal["breach", "ok", "no_data", "error"]


@dataclass(frozen=True, slots=True)
class Result:
    """What one evaluation says about one unit.

    ``breach``/``ok`` come from :func:`evaluate`; ``no_data`` (a unit with an alert state
    is absent from the store's answer) and ``error`` (the store failed) come from the
    service, which knows which units had a state before."""

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


def breaches(rule: AlertRule, value: float) -> bool:
    """Strict comparison: a value exactly at the threshold is not a breach."""
    if rule.op == "above":
        return value > rule.threshold
    return value < rule.threshold


def evaluate(rule: AlertRule, values: list[UnitValue], now: datetime) -> dict[str, Result]:
    """Per unit code, "breach" or "ok" with the value.

    Only the rule's ``units`` count when it names some. A value that is not a finite number,
    or older than the rule's lookback (a store answering with stale rows), is left out:
    the unit then counts as having no data rather than being judged on a value that is not
    there."""
    wanted = set(rule.units) if rule.units is not None else None
    oldest = now - timedelta(seconds=rule.lookback_s)
    results: dict[str, Result] = {}
    for unit in values:
        if wanted is not None and unit.code not in wanted:
            continue
        if not math.isfinite(unit.value) or unit.ts < oldest:
            continue
        kind: ResultKind = "breach" if breaches(rule, unit.value) else "ok"
        results[unit.code] = Result(kind, unit.value, unit.ts)
    return results
