"""Escalation and reminders (alerts/escalation.py) as tables of elapsed time → due events,
with an injected ``now``: escalation n at n x after_min up to the chain's last step, only
the latest reminder, nothing once acknowledged; and the e-mail's duty-chain block."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.escalation import OpenEpisode, annotate, due_events
from alerts.facts import DutyStep, Person
from core.settings_alerts import EscalationSettings
from core.settings_base import Label

FIRED = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
SETTINGS = EscalationSettings(after_min=15, remind_every_min=30)
EPISODE = OpenEpisode("pm25-bad", "20194", 3, FIRED, acknowledged=False)


def kinds(elapsed: timedelta, chain: int = 3, settings: EscalationSettings = SETTINGS) -> list[str]:
    events = due_events([EPISODE], FIRED + elapsed, settings, lambda _: chain)
    assert all(event[:3] == ("pm25-bad", "20194", 3) for event in events)
    return [event[3] for event in events]


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (timedelta(0), []),
        (timedelta(minutes=14, seconds=59), []),
        (timedelta(minutes=15), ["escalation-1"]),
        (timedelta(minutes=29, seconds=59), ["escalation-1"]),
        (timedelta(minutes=30), ["escalation-1", "escalation-2", "reminder-1"]),
        (timedelta(minutes=59), ["escalation-1", "escalation-2", "reminder-1"]),
        (timedelta(minutes=60), ["escalation-1", "escalation-2", "reminder-2"]),
        # The evaluator was down five hours: one reminder, the latest, not ten.
        (timedelta(hours=5, minutes=10), ["escalation-1", "escalation-2", "reminder-10"]),
    ],
)
def test_due_events_by_elapsed_time(elapsed: timedelta, expected: list[str]) -> None:
    assert kinds(elapsed) == expected


def test_the_chain_length_limits_escalation() -> None:
    late = timedelta(hours=2)
    assert kinds(late, chain=5) == [
        "escalation-1",
        "escalation-2",
        "escalation-3",
        "escalation-4",
        "reminder-4",
    ]
    assert kinds(late, chain=2) == ["escalation-1", "reminder-4"]
    assert kinds(late, chain=1) == ["reminder-4"]  # only the desk: nowhere to climb
    assert kinds(late, chain=0) == ["reminder-4"]


def test_an_acknowledgement_stops_escalation_and_reminders() -> None:
    acknowledged = OpenEpisode("pm25-bad", "20194", 3, FIRED, acknowledged=True)
    now = FIRED + timedelta(hours=3)
    assert due_events([acknowledged], now, SETTINGS, lambda _: 3) == []
    both = due_events([acknowledged, EPISODE], now, SETTINGS, lambda _: 2)
    assert both == [
        ("pm25-bad", "20194", 3, "escalation-1"),
        ("pm25-bad", "20194", 3, "reminder-6"),
    ]


def test_reminders_off_and_a_clock_behind_the_firing() -> None:
    no_reminders = EscalationSettings(after_min=15, remind_every_min=0)
    assert kinds(timedelta(hours=3), settings=no_reminders) == ["escalation-1", "escalation-2"]
    assert kinds(timedelta(minutes=-5)) == []


def test_each_episode_gets_its_own_chain_length_and_times() -> None:
    later = OpenEpisode("flood-alarm-3", "20197", 1, FIRED + timedelta(minutes=20), False)
    lengths = {"20194": 2, "20197": 4}
    events = due_events(
        [EPISODE, later], FIRED + timedelta(minutes=50), SETTINGS, lambda e: lengths[e.unit_code]
    )
    assert events == [
        ("pm25-bad", "20194", 3, "escalation-1"),
        ("pm25-bad", "20194", 3, "reminder-1"),
        ("flood-alarm-3", "20197", 1, "escalation-1"),
        ("flood-alarm-3", "20197", 1, "escalation-2"),
        ("flood-alarm-3", "20197", 1, "reminder-1"),
    ]


def person(email: str) -> Person:
    return Person(email=email, name=email.split("@")[0])


CHAIN = [
    DutyStep(0, "20194", Label(vi="Phường Hải Vân", en="Hai Van"), (person("an@x.vn"),)),
    DutyStep(
        1,
        "48",
        Label(vi="Thành phố Đà Nẵng", en="Da Nang"),
        (person("binh@x.vn"), person("c@x.vn")),
    ),
    DutyStep(2, None, Label(vi="Trực ban", en="Duty desk"), (person("desk@x.vn"),)),
]


def test_annotate_sets_when_each_step_is_told_and_whether_it_was() -> None:
    steps = annotate(CHAIN, FIRED, SETTINGS, told={"an@x.vn", "C@X.VN"})
    assert [(s.due, s.told) for s in steps] == [
        (FIRED, True),
        (FIRED + timedelta(minutes=15), True),  # one of its two people was told
        (FIRED + timedelta(minutes=30), False),
    ]
    assert [s.people for s in steps] == [s.people for s in CHAIN]
    assert CHAIN[0].due is None  # the chain given is not changed


def test_annotate_before_firing_has_no_times() -> None:
    steps = annotate(CHAIN, None, SETTINGS, told=())
    assert [(s.due, s.told) for s in steps] == [(None, False)] * 3
