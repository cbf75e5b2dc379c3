"""Silences on alert events, before they are routed to anyone.

:meth:`Silencing.hold_muted` runs on the pending events: an event whose alert is muted by
a silence in force (a unit silence covers the units inside it; a device silence the
alerts of that device) is **held**: its ``notification_log`` row gets the status
``"silenced"`` (with the silence in ``status_reason``) and it is not routed.

:meth:`Silencing.release` runs before each round's routing: a held event whose silence is
over goes back to ``"pending"`` when still worth telling (a firing, escalation or
reminder of an episode still open; the resolved of an episode whose firing was routed),
and to ``"suppressed"`` otherwise (the episode began and ended under the silence: nobody
needs either e-mail now). So nothing is lost when a silence ends, and nothing stale goes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import Engine, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError

from alerts.actions import AlertActions, Silence, covering
from alerts.repository import (
    EventRow,
    alert_states,
    event_from_row,
    notification_log,
    transaction,
)
from core.clock import SystemClock
from core.errors import RetryableError
from core.ports import Clock
from layers.levels import Hierarchy

log = logging.getLogger("cityops.alerts.silencing")

HELD: Final = "silenced"
SUPPRESSED: Final = "suppressed"
RELEASE_BATCH: Final = 500
# A held resolved is worth telling when its episode's firing went out (legacy: "sent").
TOLD_STATUSES: Final = ("routed", "sent")


class Silencing:
    """The silences of alerts/actions.py applied to the events of one state database."""

    def __init__(
        self, engine: Engine, hierarchy: Hierarchy | None, clock: Clock | None = None
    ) -> None:
        self._engine = engine
        self._hierarchy = hierarchy
        self._clock: Clock = clock or SystemClock()
        self._actions = AlertActions(engine, self._clock)

    def prepare(self) -> None:
        """The silences tables must exist before the first event is checked."""
        self._actions.migrate()

    def active(self, now: datetime | None) -> list[Silence]:
        """The silences in force at ``now`` (None: the clock's now)."""
        return self._actions.active_silences(now or self._clock.now())

    def muting(self, silences: Sequence[Silence], event: EventRow) -> Silence | None:
        """The silence among ``silences`` that mutes ``event``, or None. A device alert
        (facts.level "device") names the device in ``unit_code``; its unit, for unit
        silences, is the first of its facts' parents."""
        facts = event.facts
        if facts is not None and facts.level == "device":
            unit = facts.parents[0] if facts.parents else event.unit_code
            return covering(silences, event.rule_id, unit, event.unit_code, self._hierarchy)
        return covering(silences, event.rule_id, event.unit_code, None, self._hierarchy)

    def hold_muted(self, events: list[EventRow]) -> list[EventRow]:
        """Hold the events a silence in force mutes; returns the others, in order."""
        silences = self.active(None)
        if not silences or not events:
            return events
        kept: list[EventRow] = []
        held: list[tuple[EventRow, Silence]] = []
        for event in events:
            muted = self.muting(silences, event)
            if muted is None:
                kept.append(event)
            else:
                log.info(
                    "holding %s/%s %s: silence %d (%s)",
                    event.rule_id,
                    event.unit_code,
                    event.kind,
                    muted.id,
                    muted.reason,
                )
                held.append((event, muted))
        if held:
            self.hold(held)
        return kept

    def hold(self, held: Sequence[tuple[EventRow, Silence]]) -> None:
        """Mark ``held`` events as silenced (only those still pending)."""
        log_c = notification_log.c
        with transaction(self._engine, f"hold {len(held)} silenced alert events") as connection:
            for event, silence in held:
                connection.execute(
                    update(notification_log)
                    .where(log_c.id == event.id, log_c.status == "pending")
                    .values(status=HELD, status_reason=f"silence {silence.id}: {silence.reason}")
                )

    def release(self, now: datetime | None = None) -> dict[str, list[int]]:
        """Events held by a silence that is over: back to pending, or suppressed. Returns
        the event ids of each ("pending", "suppressed")."""
        at = now or self._clock.now()
        outcome: dict[str, list[int]] = {"pending": [], SUPPRESSED: []}
        log_c, state_c = notification_log.c, alert_states.c
        try:
            with self._engine.begin() as connection:
                rows = connection.execute(
                    select(notification_log)
                    .where(log_c.status == HELD)
                    .order_by(log_c.id)
                    .limit(RELEASE_BATCH)
                ).mappings()
                held = [event_from_row(row) for row in rows]
                if not held:
                    return outcome
                silences = self._actions.active_silences(at)
                ended = [event for event in held if self.muting(silences, event) is None]
                if not ended:
                    return outcome
                keys = sorted({(event.rule_id, event.unit_code) for event in ended})
                episodes = sorted({_episode(event) for event in ended})
                open_now = {
                    (state.rule_id, state.unit_code, state.episode)
                    for state in connection.execute(
                        select(state_c.rule_id, state_c.unit_code, state_c.episode).where(
                            tuple_(state_c.rule_id, state_c.unit_code).in_(keys),
                            state_c.fired_at.is_not(None),
                        )
                    )
                }
                firing_told = {
                    (told.rule_id, told.unit_code, told.episode)
                    for told in connection.execute(
                        select(log_c.rule_id, log_c.unit_code, log_c.episode).where(
                            tuple_(log_c.rule_id, log_c.unit_code, log_c.episode).in_(episodes),
                            log_c.kind == "firing",
                            log_c.status.in_(TOLD_STATUSES),
                        )
                    )
                }
                for event in ended:
                    worth = _episode(event) in (
                        firing_told if event.kind == "resolved" else open_now
                    )
                    status = "pending" if worth else SUPPRESSED
                    connection.execute(
                        update(notification_log)
                        .where(log_c.id == event.id, log_c.status == HELD)
                        .values(status=status)
                    )
                    outcome[status].append(event.id)
        except SQLAlchemyError as exc:
            raise RetryableError(f"silenced alert events could not be released: {exc}") from exc
        if outcome["pending"] or outcome[SUPPRESSED]:
            log.info(
                "silence over: %d alert events back to route, %d no longer needed",
                len(outcome["pending"]),
                len(outcome[SUPPRESSED]),
            )
        return outcome


def _episode(event: EventRow) -> tuple[str, str, int]:
    return (event.rule_id, event.unit_code, event.episode)
