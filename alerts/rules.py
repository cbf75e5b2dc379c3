"""One alert rule's results for this round: what to ask the store, per rule type, then the
pure judging of alerts/evaluate.py.

    threshold, window_s 0  latest_by_unit (each device's last value within lookback_s)
    threshold, window_s >0 window_by_unit (every reading of the last window_s)
    no_data                latest_by_unit over the long lookback, plus the expected codes
    rate                   latest_by_unit now and over_s ago
    kpi                    window_by_unit sums of the numerator and the denominator field

Units (or devices) with an alert state that the round does not judge get
``Result.no_data()``: the state machine keeps their episode open (alerts/state.py).
A store failure raises its CityOpsError; the caller turns it into "error" results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from alerts.evaluate import (
    Result,
    evaluate,
    evaluate_change,
    evaluate_ratio,
    evaluate_silence,
)
from alerts.state import AlertState
from core.errors import PermanentError
from core.ports import Store
from core.settings import AlertRule, MetricSettings
from core.settings_rules import Period
from core.types import Aggregation, MetricRef

KnownUnits = Callable[[str, str], set[str]]  # (metric kind, level) → codes expected to report

_Fetch = Callable[
    [AlertRule, Store, MetricSettings, Mapping[str, AlertState], datetime, KnownUnits, str],
    dict[str, Result],
]


def results_for(
    rule: AlertRule,
    *,
    store: Store,
    metric: MetricSettings,
    previous: Mapping[str, AlertState],
    now: datetime,
    known: KnownUnits,
    timezone: str,
) -> dict[str, Result]:
    """Per unit code (device id at level "device"), this round's Result of ``rule``.

    ``previous``: the rule's alert states by code (hysteresis, and what a silent code has
    been silent for). ``known``: the codes expected to report (the device registry).
    ``timezone``: the site's, for a kpi rule's calendar period. Raises CityOpsError when
    the store fails."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware: {now!r}")
    results = _FETCH[rule.type](rule, store, metric, previous, now, known, timezone)
    for code in previous:
        results.setdefault(code, Result.no_data())
    return results


def holding(previous: Mapping[str, AlertState]) -> set[str]:
    """Codes judged against the clear line: pending, firing, or with an open episode
    (firing, then no data or a store error)."""
    return {
        code
        for code, state in previous.items()
        if state.state in ("pending", "firing") or state.episode_open
    }


def _aggregation(rule: AlertRule, metric: MetricSettings) -> Aggregation:
    return rule.aggregation or metric.aggregation


def _threshold(
    rule: AlertRule,
    store: Store,
    metric: MetricSettings,
    previous: Mapping[str, AlertState],
    now: datetime,
    known: KnownUnits,
    timezone: str,
) -> dict[str, Result]:
    aggregation = _aggregation(rule, metric)
    if rule.window_s > 0:
        values = store.window_by_unit(
            metric.ref,
            rule.level,
            start=now - timedelta(seconds=rule.window_s),
            end=now,
            aggregation=aggregation,
        )
        return evaluate(rule, values, now, holding=holding(previous), max_age_s=rule.window_s)
    values = store.latest_by_unit(
        metric.ref,
        rule.level,
        since=now - timedelta(seconds=rule.lookback_s),
        aggregation=aggregation,
    )
    return evaluate(rule, values, now, holding=holding(previous))


def carried_silence(state: AlertState, now: datetime) -> float:
    """How long a code the store no longer shows has been silent, from its state: the
    silence last judged plus the time since. A round without judgement (a store error,
    no data) keeps the value but moves ``last_eval``, so from such a state the time is
    counted from when it was entered."""
    anchor = state.since if state.state in ("error", "no_data") else state.last_eval
    return (state.value or 0.0) + max(0.0, (now - anchor).total_seconds())


def _no_data(
    rule: AlertRule,
    store: Store,
    metric: MetricSettings,
    previous: Mapping[str, AlertState],
    now: datetime,
    known: KnownUnits,
    timezone: str,
) -> dict[str, Result]:
    values = store.latest_by_unit(
        metric.ref,
        rule.level,
        since=now - timedelta(seconds=rule.lookback_s),
        aggregation="last",
    )
    newest = {unit.code: unit.ts for unit in values}
    carried = {
        code: carried_silence(state, now) for code, state in previous.items() if code not in newest
    }
    return evaluate_silence(rule, newest, known(metric.kind, rule.level), carried, now)


def _rate(
    rule: AlertRule,
    store: Store,
    metric: MetricSettings,
    previous: Mapping[str, AlertState],
    now: datetime,
    known: KnownUnits,
    timezone: str,
) -> dict[str, Result]:
    assert rule.over_s is not None
    aggregation = _aggregation(rule, metric)
    lookback = timedelta(seconds=rule.lookback_s)
    then = now - timedelta(seconds=rule.over_s)
    current = store.latest_by_unit(
        metric.ref,
        rule.level,
        since=now - lookback,
        aggregation=aggregation,
    )
    if not current:
        return {}
    before = store.latest_by_unit(
        metric.ref,
        rule.level,
        since=then - lookback,
        until=then,
        aggregation=aggregation,
    )
    return evaluate_change(rule, current, before, holding=holding(previous))


def period_start(period: Period, now: datetime, timezone: str) -> datetime:
    """The start (UTC) of the local calendar day, week (from Monday 00:00) or month that
    holds ``now``: a week in Asia/Ho_Chi_Minh starts on Sunday 17:00 UTC."""
    zone = ZoneInfo(timezone)
    day = now.astimezone(zone).date()
    if period == "week":
        day -= timedelta(days=day.weekday())
    elif period == "month":
        day = day.replace(day=1)
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _kpi(
    rule: AlertRule,
    store: Store,
    metric: MetricSettings,
    previous: Mapping[str, AlertState],
    now: datetime,
    known: KnownUnits,
    timezone: str,
) -> dict[str, Result]:
    target = rule.target if rule.target is not None else metric.target
    if metric.denominator is None or target is None:
        raise PermanentError(
            f"alert rule {rule.id}: metric {rule.metric!r} needs a denominator and a target"
        )
    if rule.period is not None:
        start = period_start(rule.period, now, timezone)
    else:
        start = now - timedelta(seconds=rule.window_s)
    numerators = store.window_by_unit(
        metric.ref, rule.level, start=start, end=now, aggregation="sum"
    )
    denominators = store.window_by_unit(
        MetricRef(metric.kind, metric.denominator),
        rule.level,
        start=start,
        end=now,
        aggregation="sum",
    )
    return evaluate_ratio(rule, numerators, denominators, target)


_FETCH: dict[str, _Fetch] = {
    "threshold": _threshold,
    "no_data": _no_data,
    "rate": _rate,
    "kpi": _kpi,
}
