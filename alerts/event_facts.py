"""An alert state → the AlertFacts of one event (alerts/facts.py), worded by the rule's type.

Built when the event is recorded, so the e-mail says what the evaluation saw even when it
is rendered after a restart or an SMTP outage.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from alerts import rule_text
from alerts.facts import AlertFacts, EventKind
from alerts.places import Places
from alerts.state import AlertState
from core.settings import AlertRule, MetricSettings


def facts_for(
    rule: AlertRule,
    metric: MetricSettings,
    state: AlertState,
    places: Places,
    *,
    kind: EventKind,
    step: int = 0,
    now: datetime,
) -> AlertFacts:
    code = state.unit_code
    worded: Literal["firing", "resolved"] = "resolved" if kind == "resolved" else "firing"
    return AlertFacts(
        rule_id=rule.id,
        unit_code=code,
        level=rule.level,
        episode=state.episode,
        kind=kind,
        step=step,
        severity=rule.severity,
        rule_type=rule.type,
        metric_id=rule.metric,
        title=rule_text.title(rule, metric),
        metric_label=metric.label,
        value=state.value,
        value_text=rule_text.value_text(rule, metric, state.value),
        condition=rule_text.condition(rule, metric, worded),
        rule_text=rule_text.describe(rule, metric),
        unit_name=places.name(code, rule.level),
        unit_page=places.unit_page(code, rule.level, rule.metric),
        since=state.active_at or state.since,
        fired_at=state.fired_at,
        resolved_at=state.resolved_at if kind == "resolved" else None,
        evaluated_at=now,
        threshold=getattr(rule, "threshold", None),
        parents=places.parents(code, rule.level),
        extra={"decimals": metric.decimals, "metric_unit": metric.unit},
    )
