"""Grouping deliveries into e-mails per person (alerts/grouping.py), with injected times:
a storm becomes one e-mail per person, group_wait and group_interval hold e-mails, big
batches are chunked, a firing overtaken by its resolved is merged, and the order inside
an e-mail is fixed (critical first, then escalation, firing, reminder, resolved)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.facts import AlertFacts, EventKind, Person, Severity
from alerts.grouping import PendingDelivery, PlannedEmail, next_ready, plan_emails
from core.settings_base import Label

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
AN = Person(email="an@x.vn", name="Nguyễn Văn An", unit_code="20194")
BINH = Person(email="binh@x.vn", name="Trần Thị Bình", unit_code="48")
DESK = Person(email="desk@x.vn", name="Trực ban")


def facts(
    unit: str,
    kind: EventKind = "firing",
    *,
    severity: Severity = "critical",
    rule: str = "pm25-bad",
    episode: int = 1,
    step: int = 0,
) -> AlertFacts:
    text = Label(vi="Bụi mịn PM2.5 ở mức Xấu", en="PM2.5 at Bad level")
    return AlertFacts(
        rule_id=rule,
        unit_code=unit,
        level="commune",
        episode=episode,
        kind=kind,
        step=step,
        severity=severity,
        rule_type="threshold",
        metric_id="pm25",
        title=text,
        metric_label=text,
        value=92.4,
        value_text=Label(vi="92,4 µg/m³", en="92.4 µg/m³"),
        condition=text,
        rule_text=text,
        unit_name=Label(vi=f"Phường {unit}", en=f"Ward {unit}"),
        unit_page=f"/area/commune/{unit}",
        since=T0 - timedelta(minutes=1),
        fired_at=T0,
        resolved_at=T0 + timedelta(minutes=5) if kind == "resolved" else None,
        evaluated_at=T0,
    )


class Deliveries:
    """Numbers deliveries as the outbox would."""

    def __init__(self) -> None:
        self.next_id = 0

    def __call__(self, person: Person, alert: AlertFacts, seconds: float = 0) -> PendingDelivery:
        self.next_id += 1
        return PendingDelivery(self.next_id, person, alert, T0 + timedelta(seconds=seconds))


def plan(pending: list[PendingDelivery], now: datetime, **options: Any) -> list[PlannedEmail]:
    settings: dict[str, Any] = {"group_wait_s": 0, "group_interval_s": 60, "max_per_email": 50}
    settings.update(options)
    last_sent = settings.pop("last_sent", {})
    return plan_emails(pending, last_sent, now, **settings)


def shown(email: PlannedEmail) -> list[tuple[str, str, str]]:
    return [(d.facts.severity, d.facts.kind, d.facts.unit_code) for d in email.deliveries]


def test_a_storm_of_500_alerts_for_3_people_is_3_emails() -> None:
    make = Deliveries()
    pending = [
        make(person, facts(f"{20000 + n:05d}"), seconds=n / 100)
        for n in range(500)
        for person in (AN, BINH, DESK)
    ]
    emails = plan(pending, T0 + timedelta(seconds=5), max_per_email=500)
    assert [(e.person.email, len(e.deliveries)) for e in emails] == [
        ("an@x.vn", 500),
        ("binh@x.vn", 500),
        ("desk@x.vn", 500),
    ]
    every_id = sorted(i for e in emails for i in e.delivery_ids)
    assert every_id == list(range(1, 1501))


def test_group_wait_holds_the_first_alert_for_others_to_join() -> None:
    make = Deliveries()
    pending = [make(AN, facts("20194")), make(AN, facts("20197"), seconds=20)]
    assert plan(pending, T0 + timedelta(seconds=29), group_wait_s=30) == []
    assert next_ready(pending, {}, group_wait_s=30, group_interval_s=60) == T0 + timedelta(
        seconds=30
    )
    [email] = plan(pending, T0 + timedelta(seconds=30), group_wait_s=30)
    assert [d.id for d in email.deliveries] == [1, 2]


def test_group_interval_holds_the_next_email_until_it_is_over() -> None:
    make = Deliveries()
    last_sent = {"an@x.vn": T0}
    pending = [
        make(AN, facts("20194"), seconds=10),
        make(BINH, facts("20194"), seconds=10),  # never e-mailed: goes now
        make(AN, facts("20197"), seconds=50),
    ]
    [first] = plan(pending, T0 + timedelta(seconds=10), last_sent=last_sent)
    assert first.person == BINH
    waiting = [d for d in pending if d.person == AN]
    assert plan(waiting, T0 + timedelta(seconds=59.9), last_sent=last_sent) == []
    assert next_ready(waiting, last_sent, group_wait_s=0, group_interval_s=60) == T0 + timedelta(
        seconds=60
    )
    [second] = plan(waiting, T0 + timedelta(seconds=60), last_sent=last_sent)
    assert [d.id for d in second.deliveries] == [1, 3]  # everything that came meanwhile
    assert next_ready([], last_sent, group_wait_s=0, group_interval_s=60) is None


def test_more_than_max_per_email_is_several_emails_in_one_round() -> None:
    make = Deliveries()
    pending = [make(AN, facts(f"{20100 + n}", severity="warning")) for n in range(100)]
    pending += [make(AN, facts(f"{20300 + n}")) for n in range(20)]  # critical
    emails = plan(pending, T0, max_per_email=50)
    assert [len(e.deliveries) for e in emails] == [50, 50, 20]
    assert {s for s, _, _ in shown(emails[0])[:20]} == {"critical"}
    assert [d.facts.unit_code for d in emails[0].deliveries][:2] == ["20300", "20301"]
    assert sorted(i for e in emails for i in e.delivery_ids) == list(range(1, 121))
    with pytest.raises(ValueError, match="max_per_email"):
        plan(pending, T0, max_per_email=0)


def test_a_firing_overtaken_by_its_resolved_is_merged_into_it() -> None:
    make = Deliveries()
    firing = make(AN, facts("20194"))
    resolved = make(AN, facts("20194", "resolved"), seconds=3)
    other_episode = make(AN, facts("20194", episode=2), seconds=4)
    alone = make(BINH, facts("20194", "resolved"), seconds=3)
    emails = plan([resolved, firing, other_episode, alone], T0 + timedelta(seconds=5))
    to_an, to_binh = emails
    assert [(d.id, d.facts.kind, d.facts.episode) for d in to_an.deliveries] == [
        (3, "firing", 2),
        (2, "resolved", 1),
    ]
    assert to_an.deliveries[1].facts.extra == {"was_not_sent": True}
    assert to_an.merged_ids == (1,)
    assert sorted(to_an.delivery_ids) == [1, 2, 3]
    assert resolved.facts.extra == {}  # the pending delivery itself is not changed
    assert to_binh.deliveries[0].facts.extra == {}
    assert to_binh.merged_ids == ()


def test_a_merged_firing_goes_with_the_chunk_that_shows_its_resolved() -> None:
    make = Deliveries()
    pending = [make(AN, facts(f"{20100 + n}")) for n in range(3)]
    pending.append(make(AN, facts("20999")))  # firing
    pending.append(make(AN, facts("20999", "resolved", severity="info")))
    first, second = plan(pending, T0, max_per_email=3)
    assert first.merged_ids == ()
    assert [d.id for d in second.deliveries] == [5]
    assert second.merged_ids == (4,)


def test_order_is_severity_then_kind_then_unit_whatever_came_first() -> None:
    make = Deliveries()
    pending = [
        make(AN, facts("20197", "resolved")),
        make(AN, facts("20194", "reminder", step=1, episode=5)),
        make(AN, facts("20197", "firing", episode=2)),
        make(AN, facts("20194", "firing", severity="warning", episode=6)),
        make(AN, facts("20194", "escalation", step=1, severity="info", episode=7)),
        make(AN, facts("20194", "firing", episode=3)),
        make(AN, facts("20194", "escalation", step=2, episode=4)),
    ]
    expected = [
        ("critical", "escalation", "20194"),
        ("critical", "firing", "20194"),
        ("critical", "firing", "20197"),
        ("critical", "reminder", "20194"),
        ("critical", "resolved", "20197"),
        ("warning", "firing", "20194"),
        ("info", "escalation", "20194"),
    ]
    for seed in range(5):
        shuffled = list(pending)
        random.Random(seed).shuffle(shuffled)
        [email] = plan(shuffled, T0)
        assert shown(email) == expected


def test_several_events_of_one_episode_are_one_line_with_the_news_that_matters_most() -> None:
    make = Deliveries()
    reminder = make(AN, facts("20194", "reminder", step=1))
    first = make(AN, facts("20194", "escalation", step=1))
    second = make(AN, facts("20194", "escalation", step=2))
    [email] = plan([reminder, first, second], T0)
    assert [(d.facts.kind, d.facts.step) for d in email.deliveries] == [("escalation", 2)]
    assert sorted(email.merged_ids) == sorted([reminder.id, first.id])
    firing = make(AN, facts("20197", "firing"))
    again = make(AN, facts("20197", "reminder", step=1))
    [email] = plan([again, firing], T0)
    assert [d.facts.kind for d in email.deliveries] == ["firing"]
    assert email.merged_ids == (again.id,)
