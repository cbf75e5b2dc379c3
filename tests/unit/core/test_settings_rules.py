"""Alert rules in the settings (core/settings_rules.py and the rule checks of
core/settings.py): each type's keys, defaults and errors that name the key and value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import ConfigError
from core.settings import Settings, load_settings, parse_settings
from core.settings_rules import NO_DATA_LOOKBACK_S

REPO = Path(__file__).resolve().parents[3]


def shipped() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def with_rules(*rules: dict[str, Any], metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = shipped()
    raw["alerts"]["rules"] = list(rules)
    if metrics:
        raw["metrics"].update(metrics)
    return raw


def parsed(*rules: dict[str, Any], **kwargs: Any) -> Settings:
    return parse_settings(with_rules(*rules, **kwargs), environ={})


def error(*rules: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parsed(*rules, **kwargs)
    return str(caught.value)


THRESHOLD: dict[str, Any] = {
    "id": "pm25-bad",
    "metric": "pm25",
    "level": "commune",
    "op": "above",
    "threshold": 80,
}
NO_DATA: dict[str, Any] = {
    "id": "air-no-data",
    "type": "no_data",
    "metric": "pm25",
    "level": "device",
    "silent_s": 900,
}
RATE: dict[str, Any] = {
    "id": "water-rising",
    "type": "rate",
    "metric": "water_level",
    "level": "device",
    "direction": "rise",
    "change": 0.5,
    "over_s": 3600,
}
KPI: dict[str, Any] = {
    "id": "dossiers-week",
    "type": "kpi",
    "metric": "dossiers_on_time",
    "level": "commune",
    "period": "week",
}


def test_the_shipped_rules_cover_every_type() -> None:
    settings = load_settings(REPO / "config.yaml", environ={})
    rules = {rule.id: rule for rule in settings.alerts.rules}
    assert settings.alerts.rules[0].id == "pm25-bad"  # the demo test overrides rule 0
    assert {rule.type for rule in rules.values()} == {"threshold", "no_data", "rate", "kpi"}
    assert (rules["pm25-bad"].threshold, rules["pm25-bad"].clear) == (80, 70)
    assert (rules["pm25-poor"].threshold, rules["pm25-poor"].severity) == (50, "warning")
    assert (rules["pm25-qcvn-24h"].threshold, rules["pm25-qcvn-24h"].window_s) == (45, 86_400)
    assert (rules["pm10-qcvn-24h"].threshold, rules["pm10-qcvn-24h"].window_s) == (100, 86_400)
    floods = [rules[f"flood-alarm-{n}"] for n in (1, 2, 3)]
    assert [(r.threshold, r.severity) for r in floods] == [
        (0, "info"),
        (1, "warning"),
        (2, "critical"),
    ]
    assert (rules["air-no-data"].silent_s, rules["water-no-data"].silent_s) == (900, 1800)
    on_time = settings.metrics[rules["dossiers-on-time-week"].metric]
    assert (on_time.denominator, on_time.target, on_time.unit) == ("resolved", 0.95, "%")


def test_type_defaults_are_filled_in() -> None:
    settings = parsed(THRESHOLD, NO_DATA, RATE, KPI)
    threshold, no_data, rate, kpi = settings.alerts.rules
    assert (threshold.type, threshold.clear, threshold.window_s, threshold.aggregation) == (
        "threshold",
        80,
        0,
        None,  # the metric's
    )
    assert (no_data.lookback_s, threshold.lookback_s) == (NO_DATA_LOOKBACK_S, 900)
    assert rate.clear_change == 0.5
    assert (kpi.op, kpi.target, kpi.min_count) == ("below", None, 10)  # target: the metric's


def test_a_dumped_rule_reads_back_the_same() -> None:
    for rule in parsed(THRESHOLD, NO_DATA, RATE, KPI).alerts.rules:
        again = parsed(rule.model_dump(exclude_none=True)).alerts.rules[0]
        assert again == rule


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            THRESHOLD | {"silent_s": 600},
            "alerts.rules.0.silent_s must not be set on a threshold rule "
            "(it belongs to type no_data): 600",
        ),
        (
            NO_DATA | {"threshold": 80},
            "alerts.rules.0.threshold must not be set on a no_data rule "
            "(it belongs to type threshold): 80.0",
        ),
        (
            RATE | {"window_s": 600},
            "alerts.rules.0.window_s must not be set on a rate rule "
            "(it belongs to type threshold or kpi): 600",
        ),
        (KPI | {"clear": 0.8}, "alerts.rules.0.clear must not be set on a kpi rule"),
        ({k: v for k, v in THRESHOLD.items() if k != "threshold"}, "alerts.rules.0.threshold"),
        ({k: v for k, v in THRESHOLD.items() if k != "op"}, "alerts.rules.0.op must be set"),
        (
            {k: v for k, v in NO_DATA.items() if k != "silent_s"},
            "alerts.rules.0.silent_s must be set for a no_data rule: None",
        ),
        (
            {k: v for k, v in RATE.items() if k != "over_s"},
            "alerts.rules.0.over_s must be set for a rate rule",
        ),
        (
            THRESHOLD | {"clear": 85},
            "alerts.rules.0.clear must be at most threshold (80) for op above",
        ),
        (
            THRESHOLD | {"op": "below", "clear": 75},
            "alerts.rules.0.clear must be at least threshold (80) for op below",
        ),
        (RATE | {"clear_change": 0.6}, "alerts.rules.0.clear_change must be at most change"),
        (RATE | {"change": 0}, "alerts.rules.0.change must be greater than 0.0: 0"),
        (RATE | {"direction": "up"}, "alerts.rules.0.direction must be 'rise' or 'fall': 'up'"),
        (NO_DATA | {"silent_s": 0}, "alerts.rules.0.silent_s must be greater than 0: 0"),
        (
            NO_DATA | {"lookback_s": 900},
            "alerts.rules.0.lookback_s must be longer than silent_s (900)",
        ),
        (KPI | {"window_s": 86_400}, "alerts.rules.0.period must be day, week or month"),
        ({k: v for k, v in KPI.items() if k != "period"}, "alerts.rules.0.period must be"),
        (KPI | {"target": 90}, "alerts.rules.0.target must be at most 1"),
        (KPI | {"period": "year"}, "alerts.rules.0.period must be 'day', 'week' or 'month'"),
        (THRESHOLD | {"type": "anomaly"}, "alerts.rules.0.type must be 'threshold', 'no_data'"),
        (THRESHOLD | {"aggregation": "sum"}, "alerts.rules.0.aggregation must be 'mean'"),
        (THRESHOLD | {"treshold": 80}, "alerts.rules.0.treshold is not a known setting"),
    ],
)
def test_rule_errors_name_the_key_and_value(rule: dict[str, Any], expected: str) -> None:
    assert expected in error(rule)


def test_levels_are_the_hierarchys_or_device() -> None:
    assert parsed(THRESHOLD | {"level": "device"}).alerts.rules[0].level == "device"
    assert parsed(THRESHOLD | {"level": "province"}).alerts.rules[0].level == "province"
    assert (
        "alerts.rules.0.level must be one of ['province', 'commune', 'device']: 'district'"
        in error(THRESHOLD | {"level": "district"})
    )


def test_metric_references_per_type() -> None:
    assert "alerts.rules.0.metric must be one of the metrics" in error(
        THRESHOLD | {"metric": "no2"}
    )
    assert (
        "alerts.rules.0.metric must be a ratio metric (one with a denominator) for a kpi rule "
        "['dossiers_on_time', 'dossiers_online', 'dossiers_paid_online', 'feedback_on_time']: "
        "'pm25'" in error(KPI | {"metric": "pm25"})
    )
    assert (
        "alerts.rules.0.metric is a ratio metric: only kpi and no_data rules can use it, "
        "not threshold: 'dossiers_on_time'" in error(THRESHOLD | {"metric": "dossiers_on_time"})
    )
    silent_counters = NO_DATA | {"metric": "dossiers_on_time", "level": "commune"}
    assert parsed(silent_counters).alerts.rules[0].metric == "dossiers_on_time"


def test_a_kpi_needs_a_target_from_the_rule_or_the_metric() -> None:
    untargeted = {
        "late": {
            "kind": "dossiers",
            "field": "resolved_late",
            "denominator": "resolved",
            "label": {"vi": "Tỷ lệ trễ hạn", "en": "Late rate"},
            "unit": "%",
        }
    }
    late = KPI | {"metric": "late"}
    assert "alerts.rules.0.target must be set for a kpi rule, or metrics.late.target" in error(
        late, metrics=untargeted
    )
    assert parsed(late | {"target": 0.05}, metrics=untargeted).alerts.rules[0].target == 0.05
    wrong = {"late": untargeted["late"] | {"target": 5}}
    assert "metrics.late.target must be a ratio from 0 to 1 (0.9 = 90 %)" in error(
        late, metrics=wrong
    )


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    from core.settings import check_settings

    raw = with_rules(
        THRESHOLD | {"level": "ward"},
        KPI | {"id": "k", "metric": "pm25"},
        NO_DATA | {"id": "n", "metric": "no2"},
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    keys = {problem.key for problem in check_settings(path, environ={})}
    assert {"alerts.rules.0.level", "alerts.rules.1.metric", "alerts.rules.2.metric"} <= keys


def test_an_environment_override_still_reaches_a_rule() -> None:
    settings = parse_settings(shipped(), environ={"CITYOPS_ALERTS__RULES__0__CLEAR": "75"})
    assert settings.alerts.rules[0].clear == 75
    with pytest.raises(ConfigError, match=r"alerts\.rules\.0\.clear must be at most threshold"):
        parse_settings(shipped(), environ={"CITYOPS_ALERTS__RULES__0__CLEAR": "95"})
