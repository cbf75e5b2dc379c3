"""Grouping: the deliveries waiting for one person become one e-mail (or a few, when more
than ``max_per_email`` wait), so a storm of 500 alerts is a handful of e-mails, not 500.

Per recipient (by e-mail address), like Alertmanager's group_wait/group_interval:

* a new delivery waits ``group_wait_s`` for others to join it (counted from the oldest
  one waiting);
* a person e-mailed less than ``group_interval_s`` ago gets the next e-mail when that
  time is up, with everything that came meanwhile;
* when a person is ready, everything waiting for them goes this round.

A firing and a resolved of the same episode both still waiting: only the resolved one is
shown (marked ``extra["was_not_sent"]``, "the alert ended before it was sent"); the
firing's delivery id is still returned with the e-mail (``merged_ids``) so the outbox
marks it e-mailed. Pure functions of an injected ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from alerts.facts import AlertFacts, Person

SEVERITY_ORDER: Final = {"critical": 0, "warning": 1, "info": 2}
KIND_ORDER: Final = {"escalation": 0, "firing": 1, "reminder": 2, "resolved": 3}
WAS_NOT_SENT: Final = "was_not_sent"


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """One event for one person, routed and not yet in an e-mail."""

    id: int
    person: Person
    facts: AlertFacts
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PlannedEmail:
    """One e-mail to write: its alerts in the order shown. ``merged_ids``: deliveries
    it stands for without showing them (a firing overtaken by its resolved)."""

    person: Person
    deliveries: tuple[PendingDelivery, ...]
    merged_ids: tuple[int, ...] = ()

    @property
    def delivery_ids(self) -> tuple[int, ...]:
        """Every delivery this e-mail covers: shown and merged."""
        return tuple(delivery.id for delivery in self.deliveries) + self.merged_ids


def plan_emails(
    pending: Sequence[PendingDelivery],
    last_sent: Mapping[str, datetime],
    now: datetime,
    *,
    group_wait_s: float,
    group_interval_s: float,
    max_per_email: int,
) -> list[PlannedEmail]:
    """The e-mails to write at ``now``, by recipient address. ``last_sent``: when each
    address was last e-mailed."""
    if max_per_email < 1:
        raise ValueError(f"max_per_email must be at least 1: {max_per_email}")
    planned: list[PlannedEmail] = []
    for address, waiting in sorted(_by_address(pending).items()):
        ready_at = _ready_at(waiting, last_sent.get(address), group_wait_s, group_interval_s)
        if now < ready_at:
            continue
        shown, merged = _merge_ended(waiting)
        shown.sort(key=_display_order)
        person = waiting[0].person
        for first in range(0, len(shown), max_per_email):
            chunk = tuple(shown[first : first + max_per_email])
            # A merged firing belongs to the e-mail that shows its resolved (once).
            merged_ids = sorted(
                id_ for delivery in chunk for id_ in merged.pop(delivery.facts.key, [])
            )
            planned.append(
                PlannedEmail(person=person, deliveries=chunk, merged_ids=tuple(merged_ids))
            )
    return planned


def next_ready(
    pending: Sequence[PendingDelivery],
    last_sent: Mapping[str, datetime],
    *,
    group_wait_s: float,
    group_interval_s: float,
) -> datetime | None:
    """When :func:`plan_emails` next produces an e-mail (None: nothing is waiting)."""
    times = [
        _ready_at(waiting, last_sent.get(address), group_wait_s, group_interval_s)
        for address, waiting in _by_address(pending).items()
    ]
    return min(times, default=None)


def _by_address(pending: Sequence[PendingDelivery]) -> dict[str, list[PendingDelivery]]:
    """The deliveries per address, oldest first (the oldest one's Person names the e-mail)."""
    groups: dict[str, list[PendingDelivery]] = {}
    for delivery in sorted(pending, key=lambda d: (d.created_at, d.id)):
        groups.setdefault(delivery.person.email, []).append(delivery)
    return groups


def _ready_at(
    waiting: Sequence[PendingDelivery],
    last_sent: datetime | None,
    group_wait_s: float,
    group_interval_s: float,
) -> datetime:
    oldest = min(delivery.created_at for delivery in waiting)
    ready = oldest + timedelta(seconds=group_wait_s)
    if last_sent is not None:
        ready = max(ready, last_sent + timedelta(seconds=group_interval_s))
    return ready


# Which of several events of one episode an e-mail shows: the news that matters most.
_SHOWN_FIRST = {"resolved": 0, "escalation": 1, "firing": 2, "reminder": 3}


def _merge_ended(
    waiting: Sequence[PendingDelivery],
) -> tuple[list[PendingDelivery], dict[tuple[str, str, int], list[int]]]:
    """One line per episode: of the events of one episode waiting for one person, show the
    resolved one (marked when its firing never went out), else the highest escalation, else
    the firing, else the latest reminder — "2 alerts" about one alert would mislead. Returns
    the deliveries to show and, per episode key, the ids of the others (sent with it)."""
    by_episode: dict[tuple[str, str, int], list[PendingDelivery]] = {}
    for delivery in waiting:
        by_episode.setdefault(delivery.facts.key, []).append(delivery)
    merged: dict[tuple[str, str, int], list[int]] = {}
    shown: list[PendingDelivery] = []
    for key, events in by_episode.items():
        events.sort(key=lambda d: (_SHOWN_FIRST.get(d.facts.kind, 9), -d.facts.step, d.id))
        chosen, others = events[0], events[1:]
        if others:
            merged[key] = sorted(delivery.id for delivery in others)
        if chosen.facts.kind == "resolved" and any(d.facts.kind == "firing" for d in others):
            marked = replace(chosen.facts, extra={**chosen.facts.extra, WAS_NOT_SENT: True})
            chosen = replace(chosen, facts=marked)
        shown.append(chosen)
    return shown, merged


def _display_order(delivery: PendingDelivery) -> tuple[int, int, str, str, int, int, int]:
    facts = delivery.facts
    return (
        SEVERITY_ORDER.get(facts.severity, len(SEVERITY_ORDER)),
        KIND_ORDER.get(facts.kind, len(KIND_ORDER)),
        facts.unit_code,
        facts.rule_id,
        facts.episode,
        facts.step,
        delivery.id,
    )
