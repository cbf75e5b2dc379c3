"""Silences in the notification pipeline: silence → dedup → retry → send → record.

:class:`SilenceStage` runs first: a due e-mail whose (rule, unit) is muted by a silence in
force (a unit silence covers the units inside it) is **held**: its outbox row gets the
status ``"silenced"`` (recorded, neither sent nor pending) and it leaves the batch.

:meth:`Silencing.release` runs before each delivery: a held row whose silence is over goes
back to ``"pending"`` when it is still worth sending (the firing e-mail of an episode that
is still open; the resolved e-mail of an episode whose firing e-mail was sent), and to
``"suppressed"`` otherwise (the episode began and ended under the silence: nobody needs
either e-mail now). So nothing is lost when a silence ends, and nothing stale is sent.
Checked at sending time, a silence also holds e-mails already waiting in the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import Engine, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError

from alerts.actions import AlertActions, Silence, covering
from alerts.repository import alert_states, notification_log
from alerts.stages import Delivery
from core.clock import SystemClock
from core.errors import RetryableError
from core.ports import Clock
from layers.levels import Hierarchy

log = logging.getLogger("cityops.alerts.silencing")

HELD: Final = "silenced"
SUPPRESSED: Final = "suppressed"
RELEASE_BATCH: Final = 500


class Silencing:
    """The silences of alerts/actions.py applied to the outbox of one state database."""

    def __init__(
        self, engine: Engine, hierarchy: Hierarchy | None, clock: Clock | None = None
    ) -> None:
        self._engine = engine
        self._hierarchy = hierarchy
        self._clock: Clock = clock or SystemClock()
        self._actions = AlertActions(engine, self._clock)

    def prepare(self) -> None:
        """The silences tables must exist before the first e-mail is checked."""
        self._actions.migrate()

    def stage(self) -> SilenceStage:
        return SilenceStage(self)

    def active(self, now: datetime | None) -> list[Silence]:
        """The silences in force at ``now`` (None: the clock's now)."""
        return self._actions.active_silences(now or self._clock.now())

    def muting(self, silences: Sequence[Silence], rule_id: str, unit_code: str) -> Silence | None:
        return covering(silences, rule_id, unit_code, None, self._hierarchy)

    def hold(self, held: Sequence[tuple[Delivery, Silence]]) -> None:
        """Mark the outbox rows of ``held`` as silenced (only rows still pending)."""
        try:
            with self._engine.begin() as connection:
                for delivery, silence in held:
                    connection.execute(
                        update(notification_log)
                        .where(
                            notification_log.c.id == delivery.log_id,
                            notification_log.c.status == "pending",
                        )
                        .values(status=HELD, last_error=f"silence {silence.id}: {silence.reason}")
                    )
        except SQLAlchemyError as exc:
            raise RetryableError(f"silenced e-mails could not be recorded: {exc}") from exc

    def release(self, now: datetime | None = None) -> dict[str, list[int]]:
        """Rows held by a silence that is over: back to the outbox, or suppressed. Returns
        the row ids of each ("pending", "suppressed")."""
        at = now or self._clock.now()
        outcome: dict[str, list[int]] = {"pending": [], SUPPRESSED: []}
        log_c = notification_log.c
        try:
            with self._engine.begin() as connection:
                rows = connection.execute(
                    select(log_c.id, log_c.rule_id, log_c.unit_code, log_c.episode, log_c.kind)
                    .where(log_c.status == HELD)
                    .order_by(log_c.id)
                    .limit(RELEASE_BATCH)
                ).all()
                if not rows:
                    return outcome
                silences = self._actions.active_silences(at)
                ended = [row for row in rows if not self.muting(silences, row[1], row[2])]
                if not ended:
                    return outcome
                keys = sorted({(row.rule_id, row.unit_code) for row in ended})
                episodes = sorted({(row.rule_id, row.unit_code, row.episode) for row in ended})
                open_now = {
                    (state.rule_id, state.unit_code, state.episode)
                    for state in connection.execute(
                        select(
                            alert_states.c.rule_id, alert_states.c.unit_code, alert_states.c.episode
                        ).where(
                            tuple_(alert_states.c.rule_id, alert_states.c.unit_code).in_(keys),
                            alert_states.c.fired_at.is_not(None),
                        )
                    )
                }
                firing_sent = {
                    (sent.rule_id, sent.unit_code, sent.episode)
                    for sent in connection.execute(
                        select(log_c.rule_id, log_c.unit_code, log_c.episode).where(
                            tuple_(log_c.rule_id, log_c.unit_code, log_c.episode).in_(episodes),
                            log_c.kind == "firing",
                            log_c.status == "sent",
                        )
                    )
                }
                for row in ended:
                    episode = (row.rule_id, row.unit_code, row.episode)
                    worth = episode in (open_now if row.kind == "firing" else firing_sent)
                    status = "pending" if worth else SUPPRESSED
                    connection.execute(
                        update(notification_log)
                        .where(log_c.id == row.id, log_c.status == HELD)
                        .values(status=status)
                    )
                    outcome[status].append(int(row.id))
        except SQLAlchemyError as exc:
            raise RetryableError(f"silenced e-mails could not be released: {exc}") from exc
        if outcome["pending"] or outcome[SUPPRESSED]:
            log.info(
                "silence over: %d e-mails back in the outbox, %d no longer needed",
                len(outcome["pending"]),
                len(outcome[SUPPRESSED]),
            )
        return outcome


class SilenceStage:
    """The pipeline's first stage: holds what a silence in force mutes."""

    def __init__(self, silencing: Silencing) -> None:
        self._silencing = silencing

    def exec(self, deliveries: list[Delivery]) -> list[Delivery]:
        silences = self._silencing.active(None)
        if not silences:
            return deliveries
        kept: list[Delivery] = []
        held: list[tuple[Delivery, Silence]] = []
        for delivery in deliveries:
            muted = self._silencing.muting(silences, delivery.key.rule_id, delivery.key.unit_code)
            if muted is None or delivery.log_id is None:
                kept.append(delivery)
            else:
                log.info("not sending %s: silence %d (%s)", delivery.key, muted.id, muted.reason)
                held.append((delivery, muted))
        if held:
            self._silencing.hold(held)
        return kept
