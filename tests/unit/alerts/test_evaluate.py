"""Rule evaluation: strict thresholds, the rule's units, stale and non-finite values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.evaluate import Result, breaches, evaluate
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
    flood = rules["flood-alarm-3"]
    results = evaluate(flood, [value("20260", 3.0), value("20194", 2.0)], T0)
    assert {code: r.kind for code, r in results.items()} == {"20260": "breach", "20194": "ok"}
    assert settings.metrics[pm25.metric].ref.field == "pm25"
