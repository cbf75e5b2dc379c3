"""The notification pipeline with a fake notifier and an in-memory log (pure logic)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from alerts.stages import (
    DedupStage,
    Delivery,
    LogStatus,
    NotificationKey,
    RetryPolicy,
    RetryStage,
    build_pipeline,
)
from core.errors import PermanentError, RetryableError
from core.types import Notification
from tests.conftest import FakeClock


class ScriptedNotifier:
    """Raises the scripted errors in order, then accepts; keeps what it sent."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[str] = []
        self.sent: list[str] = []

    def send(self, notification: Notification) -> None:
        self.calls.append(notification.subject)
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(notification.subject)


class MemoryLog:
    def __init__(self, statuses: dict[NotificationKey, LogStatus] | None = None) -> None:
        self.statuses = dict(statuses or {})
        self.outcomes: list[tuple[NotificationKey, str, int, str | None]] = []

    def status(self, key: NotificationKey) -> LogStatus | None:
        return self.statuses.get(key)

    def record_outcome(self, delivery: Delivery, now: datetime) -> None:
        self.outcomes.append((delivery.key, delivery.outcome, delivery.attempts, delivery.error))
        if delivery.outcome in ("sent", "failed"):
            self.statuses[delivery.key] = "sent" if delivery.outcome == "sent" else "failed"


def delivery(unit: str = "20194", kind: str = "firing", log_id: int = 1) -> Delivery:
    key = NotificationKey("pm25-bad", unit, 1, kind)
    note = Notification(recipients=("a@example.gov.vn",), subject=f"{kind} {unit}", body_text="x")
    return Delivery(key, note, log_id=log_id)


def test_retryable_twice_then_sent() -> None:
    notifier = ScriptedNotifier(RetryableError("421 busy"), RetryableError("timed out"))
    notification_log = MemoryLog()
    sleeps: list[float] = []
    done = build_pipeline(
        notification_log, notifier, FakeClock(), policy=RetryPolicy(attempts=3), sleep=sleeps.append
    ).exec([delivery()])
    assert [d.outcome for d in done] == ["sent"]
    assert notifier.sent == ["firing 20194"]
    assert len(notifier.calls) == 3
    assert sleeps == [1.0, 2.0]  # exponential backoff between attempts
    assert notification_log.outcomes == [(delivery().key, "sent", 3, None)]


def test_permanent_error_fails_once_and_for_all() -> None:
    notifier = ScriptedNotifier(PermanentError("550 no such user"))
    notification_log = MemoryLog()
    sleeps: list[float] = []
    done = build_pipeline(notification_log, notifier, FakeClock(), sleep=sleeps.append).exec(
        [delivery()]
    )
    assert [(d.outcome, d.attempts, d.error) for d in done] == [("failed", 1, "550 no such user")]
    assert sleeps == []
    assert notification_log.statuses[delivery().key] == "failed"


def test_server_down_defers_everything_in_order_without_hammering() -> None:
    notifier = ScriptedNotifier(*[RetryableError("connection refused")] * 10)
    notification_log = MemoryLog()
    sleeps: list[float] = []
    batch = [delivery("20194", log_id=1), delivery("20197", log_id=2), delivery("20200", log_id=3)]
    done = build_pipeline(
        notification_log, notifier, FakeClock(), policy=RetryPolicy(attempts=2), sleep=sleeps.append
    ).exec(batch)
    assert [d.outcome for d in done] == ["deferred"] * 3
    assert len(notifier.calls) == 2  # only the first was tried, twice
    assert [d.attempts for d in done] == [2, 0, 0]
    assert done[1].error == "not tried: connection refused"
    assert notification_log.statuses == {}  # all still pending for the next run


def test_dedup_drops_sent_failed_and_repeats() -> None:
    sent, failed, fresh = delivery("20194"), delivery("20197"), delivery("20200")
    notification_log = MemoryLog({sent.key: "sent", failed.key: "failed", fresh.key: "pending"})
    kept = DedupStage(notification_log).exec([sent, failed, fresh, replace(fresh, log_id=9)])
    assert kept == [fresh]


def test_the_same_email_is_never_sent_twice_across_runs() -> None:
    notifier, notification_log = ScriptedNotifier(), MemoryLog()
    sleeps: list[float] = []
    run = build_pipeline(notification_log, notifier, FakeClock(), sleep=sleeps.append)
    run.exec([delivery()])
    run.exec([delivery()])  # e.g. the outbox read again before the mark was seen
    assert notifier.sent == ["firing 20194"]


def test_firing_goes_before_resolved() -> None:
    notifier = ScriptedNotifier()
    build_pipeline(MemoryLog(), notifier, FakeClock(), sleep=lambda _: None).exec(
        [delivery(kind="firing", log_id=1), delivery(kind="resolved", log_id=2)]
    )
    assert notifier.sent == ["firing 20194", "resolved 20194"]


def test_retry_stage_passes_on_what_is_not_due() -> None:
    done = replace(delivery(), outcome="sent")
    notifier = ScriptedNotifier()
    assert RetryStage(notifier, RetryPolicy(), sleep=lambda _: None).exec([done]) == [done]
    assert notifier.calls == []


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(attempts=6, first_delay_s=1.0, factor=3.0, max_delay_s=20.0)
    assert policy.delays() == [1.0, 3.0, 9.0, 20.0, 20.0]
    assert RetryPolicy(attempts=1).delays() == []
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
