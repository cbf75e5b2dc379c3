"""What an alert e-mail says, as plain data: the contract between the evaluator (which
records an event with its facts in the outbox), the dispatcher (which groups events per
person) and the renderer (which writes the e-mail). Stored as JSON in
``notification_log.facts``, so an e-mail rendered after a restart says what the
evaluation saw, not what the store says later.

    EventKind   firing | resolved | reminder | escalation
    AlertFacts  one event of one (rule, unit) episode, with every text it needs, vi and en
    Person      someone who receives e-mail (a roster entry, or the duty desk)
    DutyStep    one rung of the duty chain of a unit: who, and when they are (or were) told
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from core.settings_base import Label

EventKind = Literal["firing", "resolved", "reminder", "escalation"]
EVENT_KINDS: tuple[EventKind, ...] = ("firing", "resolved", "reminder", "escalation")
Severity = Literal["info", "warning", "critical"]


def event_kind_key(kind: EventKind, step: int = 0) -> str:
    """The ``notification_log.kind`` column: "firing", "resolved", "reminder-2",
    "escalation-1". With (rule, unit, episode) it names one event once (the unique key)."""
    if kind in ("reminder", "escalation"):
        if step < 1:
            raise ValueError(f"{kind} needs a step >= 1: {step}")
        return f"{kind}-{step}"
    return kind


def parse_event_kind(key: str) -> tuple[EventKind, int]:
    """ "escalation-2" → ("escalation", 2); "firing" → ("firing", 0)."""
    name, _, step = key.partition("-")
    if name not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {key!r}")
    return name, int(step) if step else 0


@dataclass(frozen=True, slots=True)
class NotificationKey:
    """One event of one episode (``notification_log``'s unique key): recorded once."""

    rule_id: str
    unit_code: str
    episode: int
    kind: str  # event_kind_key(): "firing", "resolved", "reminder-2", "escalation-1"


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """One event, with the texts the e-mail shows already worded (vi and en) by the rule's
    type (alerts/rule_text.py), so the renderer needs no rule knowledge."""

    rule_id: str
    unit_code: str
    level: str  # the unit's level ("commune", "province") or "device"
    episode: int
    kind: EventKind
    step: int  # reminder number or escalation level; 0 for firing/resolved
    severity: Severity
    rule_type: str  # threshold | no_data | rate | kpi
    metric_id: str
    title: Label  # "Bụi mịn PM2.5 ở mức Xấu"
    metric_label: Label  # "Bụi mịn PM2.5"
    value: float | None
    value_text: Label  # "92,4 µg/m³"
    condition: Label  # "trung bình 1 giờ vượt ngưỡng 80 µg/m³"
    rule_text: Label  # "Bụi mịn PM2.5 trung bình 1 giờ > 80 µg/m³, kéo dài 60 giây"
    unit_name: Label  # full name with its parents: "Phường Hải Vân, Thành phố Đà Nẵng"
    unit_page: str  # path of the unit page, "/area/commune/20194" (a device: its unit's page)
    since: datetime  # when the breach began (active_at)
    fired_at: datetime | None
    resolved_at: datetime | None
    evaluated_at: datetime
    threshold: float | None = None
    parents: tuple[str, ...] = ()  # unit codes above the unit, nearest first (for the chain)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.rule_id, self.unit_code, self.episode)

    def to_json(self) -> str:
        data = asdict(self)
        for name in ("since", "fired_at", "resolved_at", "evaluated_at"):
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        return json.dumps(data, ensure_ascii=False, sort_keys=True, default=_plain)

    @classmethod
    def from_json(cls, text: str) -> AlertFacts:
        data = json.loads(text)
        for name in ("title", "metric_label", "value_text", "condition", "rule_text", "unit_name"):
            data[name] = Label(**data[name])
        for name in ("since", "fired_at", "resolved_at", "evaluated_at"):
            if data[name] is not None:
                data[name] = datetime.fromisoformat(data[name])
        data["parents"] = tuple(data["parents"])
        return cls(**data)


def _plain(value: Any) -> Any:
    if isinstance(value, Label):
        return value.model_dump()
    raise TypeError(f"not JSON: {value!r}")


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who gets alert e-mail: a roster entry, or the duty desk (``alerts.recipients``,
    named "Trực ban")."""

    email: str
    name: str
    lang: Literal["vi", "en"] = "vi"
    unit_code: str | None = None  # the roster unit; None for the duty desk


@dataclass(frozen=True, slots=True)
class DutyStep:
    """One rung of a unit's duty chain: step 0 is the unit's own on-duty officers (or the
    nearest unit above with someone on duty), step n the n-th escalation; the last step is
    the duty desk. ``due`` is when this rung is (or was) told."""

    step: int
    unit_code: str | None  # None for the duty desk
    unit_name: Label
    people: tuple[Person, ...]
    due: datetime | None = None
    told: bool = False
