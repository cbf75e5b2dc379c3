"""The notification pipeline: small stages run in order, assembled in :func:`build_pipeline`.

After Alertmanager's ``notify/``: each stage takes the deliveries still in play and returns
those that go on. Here: dedup (the notification log says it was already sent or given up)
→ retry (send through the Notifier, backing off on RetryableError) → record (the outcome
goes back to the log). Deliveries come from the outbox (``AlertRepository.pending``), where
the service wrote them in the same transaction as the alert state, so a crash at any
point leaves either an unsent intent (sent on the next run) or a sent one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, Protocol

from core.errors import PermanentError, RetryableError
from core.ports import Clock, Notifier
from core.types import Notification

log = logging.getLogger("cityops.alerts.stages")

Outcome = Literal["due", "sent", "failed", "deferred"]
LogStatus = Literal["pending", "sent", "failed"]


@dataclass(frozen=True, slots=True)
class NotificationKey:
    """One e-mail of one episode: never sent twice."""

    rule_id: str
    unit_code: str
    episode: int
    kind: str  # "firing" | "resolved"


@dataclass(frozen=True, slots=True)
class Delivery:
    """An e-mail on its way, and what happened to it so far."""

    key: NotificationKey
    notification: Notification
    log_id: int | None = None
    attempts: int = 0  # over every run, including this one
    outcome: Outcome = "due"
    error: str | None = None


class NotificationLog(Protocol):
    """Where sends are remembered (``alerts.repository.AlertRepository``)."""

    def status(self, key: NotificationKey) -> LogStatus | None:
        """Called by the dedup stage: "sent" or "failed" means never again."""
        ...

    def record_outcome(self, delivery: Delivery, now: datetime) -> None:
        """Called by the record stage once per delivery that was tried (or deferred)."""
        ...


class Stage(Protocol):
    def exec(self, deliveries: list[Delivery]) -> list[Delivery]: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff inside one run; what is still unsent waits in the outbox for
    the next run, so the attempts here stay few and the waits short."""

    attempts: int = 3
    first_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1: {self.attempts}")
        if self.first_delay_s < 0 or self.max_delay_s < 0 or self.factor < 1:
            raise ValueError(f"delays must be >= 0 and factor >= 1: {self}")

    def delays(self) -> list[float]:
        """The waits between attempts: 1, 2, 4 ... capped at ``max_delay_s``."""
        return [
            min(self.max_delay_s, self.first_delay_s * self.factor**attempt)
            for attempt in range(self.attempts - 1)
        ]


class DedupStage:
    """Drops what the log already sent or gave up on, and repeats within one batch."""

    def __init__(self, notification_log: NotificationLog) -> None:
        self._log = notification_log

    def exec(self, deliveries: list[Delivery]) -> list[Delivery]:
        seen: set[NotificationKey] = set()
        kept: list[Delivery] = []
        for delivery in deliveries:
            if delivery.key in seen or self._log.status(delivery.key) in ("sent", "failed"):
                log.debug("not sending %s again", delivery.key)
                continue
            seen.add(delivery.key)
            kept.append(delivery)
        return kept


class RetryStage:
    """Sends each due delivery, retrying RetryableError with backoff; PermanentError fails
    it for good. When one delivery runs out of attempts the server is taken to be down and
    the rest are deferred untried: they keep their order and the run stays short."""

    def __init__(
        self,
        notifier: Notifier,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._notifier = notifier
        self._policy = policy
        self._sleep = sleep

    def exec(self, deliveries: list[Delivery]) -> list[Delivery]:
        done: list[Delivery] = []
        server_down: str | None = None
        for delivery in deliveries:
            if delivery.outcome != "due":
                done.append(delivery)
            elif server_down is not None:
                done.append(replace(delivery, outcome="deferred", error=server_down))
            else:
                sent = self._send(delivery)
                if sent.outcome == "deferred":
                    server_down = f"not tried: {sent.error}"
                done.append(sent)
        return done

    def _send(self, delivery: Delivery) -> Delivery:
        waits = [*self._policy.delays(), None]
        attempts = delivery.attempts
        error = ""
        for wait in waits:
            attempts += 1
            try:
                self._notifier.send(delivery.notification)
            except RetryableError as exc:
                error = str(exc)
                log.warning("sending %s failed (attempt %d): %s", delivery.key, attempts, exc)
                if wait is not None:
                    self._sleep(wait)
                continue
            except PermanentError as exc:
                log.error("sending %s failed for good: %s", delivery.key, exc)
                return replace(delivery, attempts=attempts, outcome="failed", error=str(exc))
            return replace(delivery, attempts=attempts, outcome="sent", error=None)
        return replace(delivery, attempts=attempts, outcome="deferred", error=error)


class RecordStage:
    """Writes every outcome to the log: sent and failed are final, deferred stays pending."""

    def __init__(self, notification_log: NotificationLog, clock: Clock) -> None:
        self._log = notification_log
        self._clock = clock

    def exec(self, deliveries: list[Delivery]) -> list[Delivery]:
        now = self._clock.now()
        for delivery in deliveries:
            if delivery.outcome != "due":
                self._log.record_outcome(delivery, now)
        return deliveries


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Stages run in order; stops early when no delivery is left."""

    stages: Sequence[Stage] = field(default_factory=tuple)

    def exec(self, deliveries: list[Delivery]) -> list[Delivery]:
        for stage in self.stages:
            if not deliveries:
                break
            deliveries = stage.exec(deliveries)
        return deliveries


def build_pipeline(
    notification_log: NotificationLog,
    notifier: Notifier,
    clock: Clock,
    *,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Pipeline:
    """The one place the stages are put together."""
    return Pipeline(
        (
            DedupStage(notification_log),
            RetryStage(notifier, policy or RetryPolicy(), sleep=sleep),
            RecordStage(notification_log, clock),
        )
    )
