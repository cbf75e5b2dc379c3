"""Rule judging (alerts/evaluate.py): strict thresholds, the rule's units, stale and
non-finite values, hysteresis through the state machine, silences, changes and ratios."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.evaluate import (
    Result,
    breaches,
    evaluate,
    evaluate_change,
    evaluate_ratio,
    evaluate_silence,
)
from alerts.rules import holding
from alerts.state import AlertKey, AlertState, transition
from core.settings import AlertRule, load_settings
from core.types import UnitValue

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


def rule(**changes: object) -> AlertRule:
    fields: dict[str, object] = {
        "id": "pm25-bad",
        "metric": "pm25",
        "level": "commune",
        "op": "above",
        "threshold": 80,
        "for_s": 60,
    }
    fields.update(changes)
    return AlertRule.model_validate(fields)


def value(code: str, number: float, age_s: float = 30) -> UnitValue:
    return UnitValue(code=code, value=number, ts=T0 - timedelta(seconds=age_s), devices=2)


@pytest.mark.parametrize(
    ("op", "number", "expected"),
    [
        ("above", 80.01, True),
        ("above", 80.0, False),  # at the threshold is not above it
        ("above", 79.9, False),
        ("below", 79.9, True),
        ("below", 80.0, False),
        ("below", 80.01, False),
    ],
)
def test_thresholds_compare_strictly(op: str, number: float, expected: bool) -> None:
    assert breaches(rule(op=op), number) is expected


def test_every_unit_with_data_is_judged() -> None:
    results = evaluate(rule(), [value("20194", 92.4), value("20197", 35.0)], T0)
    assert results == {
        "20194": Result("breach", 92.4, T0 - timedelta(seconds=30)),
        "20197": Result("ok", 35.0, T0 - timedelta(seconds=30)),
    }


def test_only_the_rules_units_count() -> None:
    only = rule(units=["20260"], op="above", threshold=2.5)
    results = evaluate(only, [value("20194", 9.0), value("20260", 2.6)], T0)
    assert list(results) == ["20260"]
    assert results["20260"].kind == "breach"


def test_stale_and_non_finite_values_are_left_out() -> None:
    values = [
        value("20194", 92.4, age_s=900),  # exactly at the lookback edge still counts
        value("20197", 92.4, age_s=901),
        value("20200", float("nan")),
        value("20203", float("inf")),
    ]
    assert list(evaluate(rule(lookback_s=900), values, T0)) == ["20194"]


def test_shipped_rules_read_from_config() -> None:
    settings = load_settings(REPO / "config.yaml", environ={})
    rules = {r.id: r for r in settings.alerts.rules}
    pm25 = rules["pm25-bad"]
    assert (pm25.metric, pm25.level, pm25.op, pm25.threshold, pm25.for_s) == (
        "pm25",
        "commune",
        "above",
        80,
        60,
    )
    assert (pm25.clear, pm25.window_s) == (70, 0)  # hysteresis on the latest values
    flood = rules["flood-alarm-3"]
    results = evaluate(flood, [value("20260", 3.0), value("20194", 2.0)], T0)
    assert {code: r.kind for code, r in results.items()} == {"20260": "breach", "20194": "ok"}
    assert settings.metrics[pm25.metric].ref.field == "pm25"


# -- hysteresis ----------------------------------------------------------------------------


def run(rule: AlertRule, numbers: list[float]) -> list[str]:
    """Feed one unit's values round by round through evaluate and the state machine."""
    previous: dict[str, AlertState] = {}
    states = []
    for step, number in enumerate(numbers):
        now = T0 + timedelta(seconds=10 * step)
        results = evaluate(rule, [value("20194", number, age_s=0)], now, holding=holding(previous))
        moved = transition(
            previous.get("20194"),
            results["20194"],
            now,
            rule.for_s,
            key=AlertKey(rule.id, "20194"),
        )
        previous["20194"] = moved.current
        states.append(moved.current.state)
    return states


HOVERING = [75, 82, 79, 81, 78, 82, 77, 81, 69, 75, 81]


def test_a_value_hovering_between_clear_and_threshold_does_not_flap() -> None:
    with_clear = rule(for_s=0, clear=70)
    assert run(with_clear, HOVERING) == [
        "ok",
        "firing",  # 82 > 80
        "firing",  # 79: under the threshold but above clear, still firing
        "firing",
        "firing",
        "firing",
        "firing",
        "firing",
        "resolved",  # 69 is back past the clear line
        "ok",  # 75: not firing any more, judged against 80 again
        "firing",  # 81: a new episode
    ]
    # Without a clear line the same values end and start the alert at every crossing.
    without = run(rule(for_s=0), HOVERING)
    assert without == [
        "ok",
        "firing",
        "resolved",
        "firing",
        "resolved",
        "firing",
        "resolved",
        "firing",
        "resolved",
        "ok",
        "firing",
    ]


def test_a_pending_alert_is_judged_against_clear_too() -> None:
    """for_s 20 (two rounds): 78 keeps the breach pending, so it fires as it lasts."""
    states = run(rule(for_s=20, clear=70), [85, 78, 76, 74, 60, 85, 65])
    assert states == ["pending", "pending", "firing", "firing", "resolved", "pending", "ok"]


def test_below_rules_clear_upwards() -> None:
    low = rule(op="below", threshold=0.5, clear=0.8, for_s=0)
    assert run(low, [0.6, 0.4, 0.7, 0.79, 0.8, 0.81, 0.6]) == [
        "ok",
        "firing",
        "firing",
        "firing",  # 0.79 is still under the clear line
        "resolved",  # 0.8 is back at it
        "ok",
        "ok",
    ]


def test_an_open_episode_through_no_data_still_holds_the_clear_line() -> None:
    firing = AlertState(
        "pm25-bad", "20194", "no_data", T0, 85.0, T0, fired_at=T0 - timedelta(minutes=5)
    )
    assert holding({"20194": firing}) == {"20194"}
    results = evaluate(
        rule(clear=70), [value("20194", 75.0)], T0, holding=holding({"20194": firing})
    )
    assert results["20194"].kind == "breach"
    ok = AlertState("pm25-bad", "20194", "ok", T0, 60.0, T0)
    assert holding({"20194": ok}) == set()


def test_breaches_is_false_for_rules_that_judge_no_single_value() -> None:
    silent = AlertRule.model_validate(
        {"id": "s", "type": "no_data", "metric": "pm25", "level": "device", "silent_s": 900}
    )
    assert breaches(silent, 1e9) is False
    assert breaches(rule(clear=70), 75.0) is False
    assert breaches(rule(clear=70), 75.0, holding=True) is True
    assert breaches(rule(window_s=3600), 500.0) is False  # one reading is not a mean


def test_a_window_rule_leaves_out_values_older_than_its_window() -> None:
    hourly = rule(window_s=3600, lookback_s=900)
    values = [value("20194", 92.0, age_s=1800), value("20197", 92.0, age_s=3601)]
    assert list(evaluate(hourly, values, T0, max_age_s=3600)) == ["20194"]


# -- no data -------------------------------------------------------------------------------


def silence_rule(**changes: object) -> AlertRule:
    fields: dict[str, object] = {
        "id": "air-no-data",
        "type": "no_data",
        "metric": "pm25",
        "level": "device",
        "silent_s": 900,
    }
    return AlertRule.model_validate(fields | changes)


def test_silence_is_the_time_since_the_newest_reading() -> None:
    newest = {
        "aq-1": T0 - timedelta(seconds=899),
        "aq-2": T0 - timedelta(seconds=900),  # exactly silent_s: not more than it
        "aq-3": T0 - timedelta(seconds=2100),
        "aq-4": T0 + timedelta(seconds=5),  # a device clock ahead of ours
    }
    results = evaluate_silence(silence_rule(), newest, {"aq-1", "aq-2", "aq-3"}, {}, T0)
    assert {code: (r.kind, r.value) for code, r in results.items()} == {
        "aq-1": ("ok", 899.0),
        "aq-2": ("ok", 900.0),
        "aq-3": ("breach", 2100.0),
        "aq-4": ("ok", 0.0),  # seen, though not expected: judged
    }
    assert results["aq-3"].ts == T0 - timedelta(seconds=2100)


def test_an_expected_device_never_seen_is_watched_from_now_then_carried() -> None:
    first = evaluate_silence(silence_rule(), {}, {"aq-9"}, {}, T0)
    assert first == {"aq-9": Result("ok", 0.0, None)}
    later = evaluate_silence(silence_rule(), {}, {"aq-9"}, {"aq-9": 901.0}, T0)
    assert later == {"aq-9": Result("breach", 901.0, None)}


def test_silence_only_for_the_rules_units() -> None:
    only = silence_rule(units=["aq-1"])
    newest = {"aq-1": T0 - timedelta(hours=1), "aq-2": T0 - timedelta(hours=1)}
    assert list(evaluate_silence(only, newest, {"aq-3"}, {}, T0)) == ["aq-1"]


# -- rate ----------------------------------------------------------------------------------


def rate_rule(**changes: object) -> AlertRule:
    fields: dict[str, object] = {
        "id": "water-rising",
        "type": "rate",
        "metric": "water_level",
        "level": "device",
        "direction": "rise",
        "change": 0.5,
        "over_s": 3600,
    }
    return AlertRule.model_validate(fields | changes)


def test_rise_and_fall_compare_the_change_with_change() -> None:
    before = [value("wl-1", 2.0), value("wl-2", 2.0), value("wl-3", 2.0), value("wl-4", 3.0)]
    now = [value("wl-1", 2.5), value("wl-2", 2.49), value("wl-3", 1.4), value("wl-5", 9.0)]
    rising = evaluate_change(rate_rule(), now, before)
    assert {code: r.kind for code, r in rising.items()} == {
        "wl-1": "breach",  # +0.5 is "at least 0.5"
        "wl-2": "ok",
        "wl-3": "ok",
    }  # wl-4 has no value now, wl-5 none an hour ago: not judged
    assert rising["wl-1"].value == pytest.approx(0.5)
    falling = evaluate_change(rate_rule(direction="fall"), now, before)
    assert {code: r.kind for code, r in falling.items()} == {
        "wl-1": "ok",
        "wl-2": "ok",
        "wl-3": "breach",
    }
    assert falling["wl-3"].value == pytest.approx(-0.6)


def test_a_rising_alert_ends_only_under_clear_change() -> None:
    hysteresis = rate_rule(clear_change=0.3)
    before = [value("wl-1", 2.0)]
    now = [value("wl-1", 2.35)]
    assert evaluate_change(hysteresis, now, before)["wl-1"].kind == "ok"
    assert evaluate_change(hysteresis, now, before, holding={"wl-1"})["wl-1"].kind == "breach"
    lower = [value("wl-1", 2.29)]
    assert evaluate_change(hysteresis, lower, before, holding={"wl-1"})["wl-1"].kind == "ok"


# -- kpi -----------------------------------------------------------------------------------


def kpi_rule(**changes: object) -> AlertRule:
    fields: dict[str, object] = {
        "id": "dossiers-on-time-week",
        "type": "kpi",
        "metric": "dossiers_on_time",
        "level": "commune",
        "period": "week",
    }
    return AlertRule.model_validate(fields | changes)


def test_ratio_is_the_numerators_sum_over_the_denominators_sum() -> None:
    numerators = [value("20194", 9.0), value("20197", 170.0)]
    denominators = [
        value("20194", 10.0),  # 90 %
        value("20197", 200.0),  # 85 %
        value("20200", 12.0),  # none on time: 0 %
        value("20203", 9.0),  # under min_count 10: not judged
    ]
    results = evaluate_ratio(kpi_rule(), numerators, denominators, target=0.9)
    assert {code: (r.kind, r.value) for code, r in results.items()} == {
        "20194": ("ok", 0.9),  # at the target is not under it
        "20197": ("breach", 0.85),
        "20200": ("breach", 0.0),
    }
    above = evaluate_ratio(kpi_rule(op="above", min_count=0), numerators, denominators, 0.88)
    assert {code: r.kind for code, r in above.items()} == {
        "20194": "breach",
        "20197": "ok",
        "20200": "ok",
        "20203": "ok",
    }
