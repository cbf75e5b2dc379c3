"""The alert engine: every ``alerts.interval_s``, each rule is evaluated on the store, its
states move, and the e-mails they call for go through the outbox and the pipeline.

Thin wiring around the pure parts (evaluate, state, render). Failures stay local: a store
error puts that rule's units in "error" (no e-mail) and the other rules go on; an SMTP
outage leaves e-mails pending in the outbox, sent when the server answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from alerts.evaluate import Result, evaluate
from alerts.render import AlertContext, render
from alerts.repository import AlertRepository
from alerts.silencing import Silencing
from alerts.stages import Delivery, NotificationKey, Pipeline, RetryPolicy, build_pipeline
from alerts.state import AlertKey, Transition, transition
from core.clock import SystemClock
from core.errors import CityOpsError, PermanentError
from core.ports import Clock, Notifier, Store
from core.settings import AlertRule, Label, Settings

log = logging.getLogger("cityops.alerts.service")

UnitName = Callable[[str, str], str]  # (code, lang) → "Phường Hải Vân, Thành phố Đà Nẵng"


class AlertService:
    """Evaluates ``settings.alerts.rules``; ``run_once()`` for one round, ``run_forever()``
    for the engine. Creates its tables on the first round, not in the constructor."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: Engine,
        notifier: Notifier,
        *,
        unit_name: UnitName,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        silencing: Silencing | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._unit_name = unit_name
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._repository = AlertRepository(engine)
        pipeline = build_pipeline(
            self._repository, notifier, self._clock, policy=retry, sleep=sleep
        )
        # With silences (alerts/silencing.py), a muted e-mail is held before dedup and send.
        self._silencing = silencing
        if silencing is not None:
            pipeline = Pipeline((silencing.stage(), *pipeline.stages))
        self._pipeline = pipeline
        self._schema_ready = False

    @property
    def repository(self) -> AlertRepository:
        return self._repository

    def run_once(self) -> list[Transition]:
        """Evaluate every rule, then send what the outbox holds (this round's e-mails and
        any left unsent by an earlier round or an earlier process). Returns the
        transitions of this round; raises only when the state database is unusable."""
        if not self._schema_ready:
            self._repository.create_schema()
            if self._silencing is not None:
                self._silencing.prepare()
            self._schema_ready = True
        now = self._clock.now()
        transitions: list[Transition] = []
        for rule in self._settings.alerts.rules:
            try:
                transitions.extend(self._evaluate_rule(rule, now))
            except CityOpsError as exc:
                log.warning("rule %s skipped this round: %s", rule.id, exc)
            except Exception:
                log.exception("rule %s failed; the other rules go on", rule.id)
        self.deliver()
        return transitions

    def deliver(self) -> list[Delivery]:
        """Send the outbox through the pipeline; returns the deliveries with outcomes."""
        try:
            if self._silencing is not None:
                self._silencing.release()  # silences that are over give back what they held
            return self._pipeline.exec(self._repository.pending())
        except CityOpsError as exc:
            # A row sent but not marked is sent again next round (same Message-ID).
            log.warning("outbox not fully processed: %s", exc)
            return []

    def run_forever(self, stop_event: threading.Event) -> None:
        """Rounds every ``alerts.interval_s`` until ``stop_event`` is set."""
        interval = self._settings.alerts.interval_s
        log.info("alert engine: %d rules every %g s", len(self._settings.alerts.rules), interval)
        while not stop_event.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except CityOpsError as exc:
                log.warning("alert round failed: %s", exc)
            except Exception:
                log.exception("alert round failed")
            stop_event.wait(max(0.0, interval - (time.monotonic() - started)))

    # -- one rule ----------------------------------------------------------------------

    def _evaluate_rule(self, rule: AlertRule, now: datetime) -> list[Transition]:
        metric = self._settings.metrics.get(rule.metric)
        if metric is None:
            raise PermanentError(f"alert rule {rule.id}: no metric {rule.metric!r} in metrics")
        previous = self._repository.load_states(rule.id)
        results: dict[str, Result]
        try:
            values = self._store.latest_by_unit(
                metric.ref,
                rule.level,
                since=now - timedelta(seconds=rule.lookback_s),
                aggregation=metric.aggregation,
            )
        except CityOpsError as exc:
            log.warning("rule %s: store failed, %d units in error: %s", rule.id, len(previous), exc)
            results = {code: Result.failed(str(exc)) for code in previous}
        else:
            results = evaluate(rule, values, now)
            for code in previous:
                results.setdefault(code, Result.no_data())
        transitions = [
            transition(previous.get(code), result, now, rule.for_s, key=AlertKey(rule.id, code))
            for code, result in sorted(results.items())
        ]
        outbox = [self._delivery(rule, moved) for moved in transitions if moved.notify]
        # A unit that stays ok is not written every round: nothing about it changed.
        to_save = [moved for moved in transitions if moved.changed or moved.current.state != "ok"]
        self._repository.save(to_save, outbox, now=now)
        for moved in transitions:
            if moved.changed and moved.previous is not None:
                log.info(
                    "alert %s/%s: %s → %s (value %s)",
                    rule.id,
                    moved.current.unit_code,
                    moved.previous.state,
                    moved.current.state,
                    moved.current.value,
                )
        return transitions

    def _delivery(self, rule: AlertRule, moved: Transition) -> Delivery:
        assert moved.notify is not None
        settings = self._settings
        code = moved.current.unit_code
        context = AlertContext(
            rule=rule,
            metric_id=rule.metric,
            metric=settings.metrics[rule.metric],
            unit_name=self._unit_label(code),
            public_url=settings.dashboard.public_url,
            recipients=tuple(settings.alerts.recipients),
            sender=settings.smtp.sender,
            site_name=settings.site.name,
            timezone=settings.site.timezone,
        )
        key = NotificationKey(rule.id, code, moved.current.episode, moved.notify)
        return Delivery(key, render(moved, context))

    def _unit_label(self, code: str) -> Label:
        try:
            return Label(vi=self._unit_name(code, "vi"), en=self._unit_name(code, "en"))
        except LookupError:
            # A code missing from the units file still gets its e-mail, named by code.
            log.warning("no administrative unit with code %s; the e-mail shows the code", code)
            return Label(vi=f"Mã {code}", en=f"Code {code}")
