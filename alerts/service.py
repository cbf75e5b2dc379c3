"""The alert engine: every ``alerts.interval_s`` the evaluator holding the lease evaluates
each rule on the store, records the states and the events they call for (one
transaction), then escalates, routes, groups and sends (alerts/dispatch.py).

Several evaluators may run for safety: only the lease holder (alerts/leader.py) does a
round; the others wait and take over when its lease runs out. Failures stay local: a store
error puts that rule's units in "error" (no e-mail) and the other rules go on; an SMTP
outage leaves e-mails in the outbox, retried with backoff until the server takes them.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Engine

from alerts.actions import AlertActions
from alerts.dispatch import Dispatcher, SendReport
from alerts.evaluate import Result
from alerts.event_facts import facts_for
from alerts.facts import AlertFacts, NotificationKey
from alerts.leader import Lease
from alerts.links import AckSigner
from alerts.metrics import AlertsMetrics, recorded_kinds
from alerts.outbox import Outbox
from alerts.places import Places
from alerts.repository import AlertRepository
from alerts.roster import Roster
from alerts.rules import results_for
from alerts.silencing import Silencing
from alerts.state import AlertKey, Transition, transition
from core.clock import SystemClock
from core.errors import CityOpsError, PermanentError
from core.logs import correlation, new_id
from core.ports import Clock, Notifier, Store
from core.settings import AlertRule, Settings

log = logging.getLogger("cityops.alerts.service")

LEASE_NAME = "alert-evaluator"
WINDOW_STEPS = 288  # a windowed rule is judged this many times per window
KPI_EVERY_S = 300.0


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class RoundReport:
    """What one round did (for logs, tests and the benchmark)."""

    leader: bool
    transitions: list[Transition] = field(default_factory=list)
    escalations: int = 0
    routed: int = 0
    emails: int = 0
    sent: SendReport = field(default_factory=SendReport)
    jobs: dict[str, int] = field(default_factory=dict)
    problems: int = 0  # rules skipped and steps not finished (logged)
    round_id: str = ""  # the correlation id of the round's log records


class AlertService:
    """Evaluates ``settings.alerts.rules``; ``run_once()`` for one round, ``run_forever()``
    for the engine. Creates its tables on the first round, not in the constructor.
    Counts what it does in :attr:`metrics` (alerts/metrics.py serves them)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: Engine,
        notifier: Notifier,
        *,
        places: Places,
        roster: Roster | None = None,
        signer: AckSigner | None = None,
        clock: Clock | None = None,
        holder: str | None = None,
        silencing: Silencing | None = None,
        jobs: Sequence[tuple[str, Callable[[datetime], int]]] = (),
    ) -> None:
        self._settings = settings
        # Periodic work that must run once, on the active evaluator only (derived metrics,
        # the Monday report e-mail): each (name, run(now) -> items done) after delivery.
        self._jobs = tuple(jobs)
        self._store = store
        self._places = places
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.holder = holder or default_holder()
        self._repository = AlertRepository(engine)
        self._outbox = Outbox(engine, self._clock)
        self._actions = AlertActions(engine, self._clock)
        self._lease = Lease(engine, LEASE_NAME, self.holder, self._clock)
        self._silencing = silencing
        self.dispatcher = Dispatcher(
            settings,
            repository=self._repository,
            outbox=self._outbox,
            actions=self._actions,
            roster=roster if roster is not None else _roster(settings, places),
            places=places,
            store=store,
            notifier=notifier,
            signer=signer,
            silencing=silencing,
            holder=self.holder,
        )
        self._schema_ready = False
        self._leading = False
        self._last_run: dict[str, datetime] = {}
        self._engine = engine
        self._problems = 0
        self.metrics = AlertsMetrics([rule.id for rule in settings.alerts.rules], self._clock.now())
        self.dispatcher.on_events = self._count_events

    @property
    def repository(self) -> AlertRepository:
        return self._repository

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    def prepare(self) -> None:
        if not self._schema_ready:
            self._repository.create_schema()
            self._actions.migrate()
            if self._silencing is not None:
                self._silencing.prepare()
            self._schema_ready = True

    def run_once(self) -> RoundReport:
        """One round when this evaluator holds the lease (else nothing). Raises only when
        the state database is unusable. Its log records carry the round's correlation id."""
        round_id = f"round-{new_id()}"
        started = time.monotonic()
        with correlation(round_id):
            try:
                report = self._round()
            except BaseException:
                self.metrics.round_failed()
                raise
        report.round_id = round_id
        self.metrics.round_finished(
            leader=report.leader,
            seconds=time.monotonic() - started,
            at=self._clock.now(),
            problems=report.problems,
        )
        return report

    def _round(self) -> RoundReport:
        self.prepare()
        self._problems = 0
        settings = self._settings.alerts
        leader = self._lease.acquire(settings.lease_s)
        if leader != self._leading:
            log.info("alert evaluator %s: %s", self.holder, "active" if leader else "standby")
            self._leading = leader
        report = RoundReport(leader)
        if not leader:
            return report
        now = self._clock.now()
        for rule in settings.rules:
            if not self._due(rule, now):
                continue
            self.metrics.evaluated(rule.id)
            try:
                report.transitions.extend(self._evaluate_rule(rule, now))
            except CityOpsError as exc:
                self._problems += 1
                log.warning("rule %s skipped this round: %s", rule.id, exc)
            except Exception:
                self._problems += 1
                log.exception("rule %s failed; the other rules go on", rule.id)
        report.escalations = self._step("escalate", self.dispatcher.escalate, now)
        report.routed = self._step("route", self.dispatcher.route, now)
        report.emails = self._step("group", self.dispatcher.group, now)
        if self._lease.acquire(settings.lease_s):  # still ours after the work above
            report.sent = self.deliver()
            for name, job in self._jobs:
                report.jobs[name] = self._step(name, job, self._clock.now())
        report.problems = self._problems
        return report

    def _due(self, rule: AlertRule, now: datetime) -> bool:
        """A rule over a long window moves slowly: judged every 1/288 of its window (every
        5 min for a 24-hour mean, 12.5 s for an hour), not every round — a 24-hour mean
        over a day of readings is the costliest query the engine makes."""
        every = (getattr(rule, "window_s", 0) or 0) / WINDOW_STEPS
        if rule.type == "kpi":  # counters of a day, week or month so far
            every = max(every, KPI_EVERY_S)
        last = self._last_run.get(rule.id)
        if last is not None and (now - last).total_seconds() < every:
            return False
        self._last_run[rule.id] = now
        return True

    def _step(self, name: str, step: Callable[[datetime], int], now: datetime) -> int:
        try:
            return step(now)
        except CityOpsError as exc:
            log.warning("alert %s step not finished this round: %s", name, exc)
        except Exception:
            log.exception("alert %s step failed", name)
        self._problems += 1
        return 0

    def _count_events(self, created: list[int], proposed: list[str]) -> None:
        """Count the events recorded: the proposed kinds when all were new (the usual
        case, no query), else the kinds of the rows created (a repeat after a crash)."""
        if len(created) == len(proposed):
            self.metrics.count_events(proposed)
        elif created:
            try:
                self.metrics.count_events(recorded_kinds(self._engine, created))
            except CityOpsError as exc:
                log.warning("alert events not counted: %s", exc)

    def deliver(self) -> SendReport:
        """Send what the outbox holds that is due."""
        try:
            sent = self.dispatcher.send(self._clock.now(), clock=self._clock.now)
        except CityOpsError as exc:
            self._problems += 1
            log.warning("outbox not fully processed: %s", exc)
            sent = SendReport()
        self.metrics.delivered(sent)
        return sent

    def release(self) -> None:
        """Give the lease up (a clean stop), so a standby takes over at once."""
        try:
            self._lease.release()
        except CityOpsError as exc:
            log.warning("could not release the evaluator lease: %s", exc)

    def run_forever(self, stop_event: threading.Event) -> None:
        """Rounds every ``alerts.interval_s`` until ``stop_event`` is set."""
        interval = self._settings.alerts.interval_s
        log.info("alert engine: %d rules every %g s", len(self._settings.alerts.rules), interval)
        try:
            while not stop_event.is_set():
                started = time.monotonic()
                try:
                    self.run_once()
                except CityOpsError as exc:
                    log.warning("alert round failed: %s", exc)
                except Exception:
                    log.exception("alert round failed")
                stop_event.wait(max(0.0, interval - (time.monotonic() - started)))
        finally:
            self.release()

    # -- one rule ----------------------------------------------------------------------

    def _evaluate_rule(self, rule: AlertRule, now: datetime) -> list[Transition]:
        metric = self._settings.metrics.get(rule.metric)
        if metric is None:
            raise PermanentError(f"alert rule {rule.id}: no metric {rule.metric!r} in metrics")
        previous = self._repository.load_states(rule.id)
        results: dict[str, Result]
        try:
            results = results_for(
                rule,
                store=self._store,
                metric=metric,
                previous=previous,
                now=now,
                known=self._places.known,
                timezone=self._settings.site.timezone,
            )
        except CityOpsError as exc:
            log.warning("rule %s: store failed, %d units in error: %s", rule.id, len(previous), exc)
            results = {code: Result.failed(str(exc)) for code in previous}
        transitions = [
            transition(previous.get(code), result, now, rule.for_s, key=AlertKey(rule.id, code))
            for code, result in sorted(results.items())
        ]
        events: list[tuple[NotificationKey, AlertFacts]] = []
        for moved in transitions:
            if moved.notify is None:
                continue
            state = moved.current
            facts = facts_for(rule, metric, state, self._places, kind=moved.notify, now=now)
            if moved.notify == "resolved" and moved.previous is not None:
                facts = _with_fired_at(facts, moved.previous.fired_at)
            key = NotificationKey(rule.id, state.unit_code, state.episode, moved.notify)
            events.append((key, facts))
        # A unit that stays ok is not written every round: nothing about it changed.
        to_save = [moved for moved in transitions if moved.changed or moved.current.state != "ok"]
        created = self._repository.save(to_save, events, now=now)
        self._count_events(created, [key.kind for key, _ in events])
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


def _roster(settings: Settings, places: Places) -> Roster:
    return Roster.from_settings(
        settings, known_unit=lambda code: places.hierarchy.get(code) is not None
    )


def _with_fired_at(facts: AlertFacts, fired_at: datetime | None) -> AlertFacts:
    return replace(facts, fired_at=fired_at)


def lease_timeout(settings: Settings) -> timedelta:
    """How long a standby waits, at most, before it takes over from a dead evaluator."""
    return timedelta(seconds=settings.alerts.lease_s + settings.alerts.interval_s)
