"""Escalation and reminders of firing alerts nobody has acknowledged, as pure functions of
an injected ``now``.

An episode that fired at ``fired_at`` and is still unacknowledged climbs its duty chain
(alerts/roster.py): step n is told at ``fired_at + n * after_min`` ("escalation-n", for n
up to the last step of the chain), and everyone is reminded every ``remind_every_min``
("reminder-k"). The evaluator records each due event in the outbox, whose unique key
(rule, unit, episode, kind) makes asking again harmless; so this module only says what is
due, never what was already sent. An acknowledgement stops both.

Design: docs/design/014-alert-delivery.md.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from alerts.facts import DutyStep, event_kind_key
from core.settings_alerts import EscalationSettings


@dataclass(frozen=True, slots=True)
class OpenEpisode:
    """A firing episode of one (rule, unit), as the escalation step sees it."""

    rule_id: str
    unit_code: str
    episode: int
    fired_at: datetime
    acknowledged: bool


def due_events(
    episodes: Sequence[OpenEpisode],
    now: datetime,
    settings: EscalationSettings,
    chain_length: Callable[[OpenEpisode], int],
) -> list[tuple[str, str, int, str]]:
    """(rule_id, unit_code, episode, kind key) of every escalation and reminder due at
    ``now``. Every escalation whose time has come is listed (the outbox drops repeats);
    of the reminders only the latest, so an evaluator that was down for hours sends one
    reminder, not ten. ``chain_length``: the number of steps of the episode's duty chain
    (escalation n exists for n from 1 to chain_length - 1)."""
    step = timedelta(minutes=settings.after_min)
    every = timedelta(minutes=settings.remind_every_min)
    due: list[tuple[str, str, int, str]] = []
    for episode in episodes:
        if episode.acknowledged or now < episode.fired_at:
            continue
        key = (episode.rule_id, episode.unit_code, episode.episode)
        elapsed = now - episode.fired_at
        escalations = min(elapsed // step, chain_length(episode) - 1)
        due.extend((*key, event_kind_key("escalation", n)) for n in range(1, escalations + 1))
        if every > timedelta(0):
            latest = elapsed // every
            if latest >= 1:
                due.append((*key, event_kind_key("reminder", latest)))
    return due


def annotate(
    chain: Sequence[DutyStep],
    fired_at: datetime | None,
    settings: EscalationSettings,
    told: Collection[str],
) -> list[DutyStep]:
    """The chain with, per step, when it is (or was) told (step n: ``fired_at + n *
    after_min``; None before the alert fired) and whether any of its people has been
    told (their address in ``told``): the e-mail's "duty chain" block."""
    told_addresses = {address.lower() for address in told}
    step = timedelta(minutes=settings.after_min)
    return [
        replace(
            rung,
            due=None if fired_at is None else fired_at + rung.step * step,
            told=any(person.email.lower() in told_addresses for person in rung.people),
        )
        for rung in chain
    ]
