"""Self-metrics and health of the alert engine: ``GET /metrics`` (Prometheus text 0.0.4)
and ``GET /health`` (JSON) on ``alerts.metrics_host:metrics_port`` (default
127.0.0.1:9465, null = off), served from a daemon thread by core/exposition.py.

The engine thread is the only writer of :class:`AlertsMetrics` (plain ints, dicts with
keys fixed at start); the exporter thread reads them. The outbox backlog and the active
alerts are read from the state database at scrape time: they are what the database says,
whichever evaluator holds the lease. Names and health rules:
docs/design/016-self-monitoring.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine, func, select, text

from alerts.delivery_tables import alert_emails, alert_states, notification_log
from alerts.dispatch import SendReport
from alerts.facts import parse_event_kind
from alerts.repository import transaction
from core.errors import CityOpsError
from core.exposition import (
    CONTENT_TYPE,
    HEALTH_PATH,
    METRICS_PATH,
    Answer,
    Exposition,
    Histogram,
    HttpEndpoint,
    ServedEndpoint,
    health_answer,
    probe,
    worst,
)
from core.ports import Clock
from core.settings import Settings

log = logging.getLogger("cityops.alerts.metrics")

PREFIX: Final = "cityops_alerts_"
EVENT_KINDS: Final = ("firing", "resolved", "reminder", "escalation")
SEVERITIES: Final = ("info", "warning", "critical")
# A round evaluates every due rule and delivers: milliseconds on SQLite with a few rules,
# seconds with a 24-hour mean over InfluxDB or a slow SMTP server; interval_s (5 s) is
# the budget, 60 s a round that eats twelve intervals.
ROUND_BUCKETS_S: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STALE_ROUNDS: Final = 3  # /health is "down" when the last round is older than this × interval_s
DB_TIMEOUT_S: Final = 2.0


class AlertsMetrics:
    """The engine's counters. ``rule_ids`` is the configured rule set: the only values
    the ``rule`` label takes."""

    def __init__(self, rule_ids: Sequence[str], started_at: datetime) -> None:
        self.started_at = started_at
        self.rounds = 0  # rounds done holding the lease
        self.round_failures = 0  # rounds that raised (the state database unusable)
        self.round_seconds = Histogram(ROUND_BUCKETS_S)
        self.evaluations: dict[str, int] = dict.fromkeys(rule_ids, 0)
        self.events: dict[str, int] = dict.fromkeys(EVENT_KINDS, 0)
        self.sent = 0
        self.failed = 0  # refused for good (a bad address, a 5xx)
        self.retried = 0  # put back for a later attempt (server unreachable, a 4xx)
        self.leader = False
        self.last_round_at: datetime | None = None  # active or standby
        self.last_round_problems = 0  # rules skipped and steps unfinished, last active round
        self.last_round_retried = 0

    def evaluated(self, rule_id: str) -> None:
        if rule_id in self.evaluations:
            self.evaluations[rule_id] += 1

    def count_events(self, kinds: Iterable[str]) -> None:
        """Events recorded, by kind key ("escalation-2" counts as "escalation")."""
        for key in kinds:
            try:
                kind = parse_event_kind(key)[0]
            except ValueError:
                continue
            if kind in self.events:
                self.events[kind] += 1

    def delivered(self, report: SendReport) -> None:
        self.sent += report.sent
        self.failed += report.failed
        self.retried += report.retried
        self.last_round_retried = report.retried

    def round_finished(
        self, *, leader: bool, seconds: float, at: datetime, problems: int = 0
    ) -> None:
        self.leader = leader
        self.last_round_at = at
        if leader:
            self.rounds += 1
            self.round_seconds.observe(seconds)
            self.last_round_problems = problems
        else:
            self.last_round_problems = self.last_round_retried = 0

    def round_failed(self) -> None:
        self.round_failures += 1
        self.leader = False  # unsure: we could not even read the lease


def recorded_kinds(engine: Engine, ids: Sequence[int]) -> list[str]:
    """The kind keys of the event rows ``ids`` (when dedup left out some of a batch)."""
    if not ids:
        return []
    query = select(notification_log.c.kind).where(notification_log.c.id.in_(list(ids)))
    with transaction(engine, "read the kinds of new alert events") as connection:
        return [str(kind) for kind in connection.execute(query).scalars()]


class AlertsExporter(ServedEndpoint):
    """``GET /metrics`` and ``GET /health`` of one evaluator process."""

    def __init__(
        self,
        metrics: AlertsMetrics,
        settings: Settings,
        engine: Engine,
        clock: Clock,
        *,
        holder: str,
        host: str,
        port: int,
    ) -> None:
        self._metrics = metrics
        self._engine = engine
        self._clock = clock
        self._holder = holder
        self._interval_s = settings.alerts.interval_s
        self._severity = {rule.id: rule.severity for rule in settings.alerts.rules}
        self._endpoint = HttpEndpoint(
            {METRICS_PATH: self._metrics_answer, HEALTH_PATH: self._health_answer},
            host=host,
            port=port,
            port_key="alerts.metrics_port",
            host_key="alerts.metrics_host",
            what="alert engine metrics",
            log=log,
        )

    # -- /metrics --------------------------------------------------------------------

    def render(self) -> str:
        m, out = self._metrics, Exposition()
        out.simple(f"{PREFIX}rounds_total", "counter", "Rounds done holding the lease.", m.rounds)
        out.simple(
            f"{PREFIX}round_failures_total",
            "counter",
            "Rounds that failed (the state database unusable).",
            m.round_failures,
        )
        name = f"{PREFIX}round_seconds"
        out.family(name, "histogram", "Duration of the rounds done holding the lease.")
        out.histogram(name, m.round_seconds.copy(), {})
        name = f"{PREFIX}evaluations_total"
        out.family(name, "counter", "Rule evaluations, by configured rule id.")
        for rule_id, count in dict(m.evaluations).items():
            out.sample(name, count, {"rule": rule_id})
        name = f"{PREFIX}events_total"
        out.family(name, "counter", "Alert events recorded, by kind.")
        for kind, count in dict(m.events).items():
            out.sample(name, count, {"kind": kind})
        out.simple(
            f"{PREFIX}notifications_sent_total", "counter", "E-mails the SMTP server took.", m.sent
        )
        out.simple(
            f"{PREFIX}notifications_failed_total",
            "counter",
            "E-mails refused for good (bad address, 5xx).",
            m.failed,
        )
        out.simple(
            f"{PREFIX}notifications_retried_total",
            "counter",
            "E-mail attempts put back for a retry (server unreachable, 4xx).",
            m.retried,
        )
        out.simple(
            f"{PREFIX}leader", "gauge", "1 while this process holds the lease.", int(m.leader)
        )
        if m.last_round_at is not None:
            out.simple(
                f"{PREFIX}last_round_timestamp_seconds",
                "gauge",
                "Unix time of the last finished round (active or standby).",
                m.last_round_at.timestamp(),
            )
        self._database_families(out)
        return out.text()

    def _database_families(self, out: Exposition) -> None:
        """Outbox backlog and active alerts; left out (and logged) when the database fails:
        an absent series is what an ``absent()`` alert rule is for."""
        now = self._clock.now()
        e, s = alert_emails.c, alert_states.c
        try:
            with transaction(self._engine, "read the outbox for the metrics") as connection:
                pending, oldest = connection.execute(
                    select(func.count(), func.min(e.created_at)).where(
                        e.status.in_(("pending", "sending"))
                    )
                ).one()
                firing = connection.execute(
                    select(s.rule_id, func.count()).where(s.state == "firing").group_by(s.rule_id)
                ).all()
        except CityOpsError as exc:
            log.warning("alert metrics without the outbox and active alerts: %s", exc)
            return
        out.simple(f"{PREFIX}outbox_pending", "gauge", "E-mails waiting to be sent.", int(pending))
        age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        out.simple(
            f"{PREFIX}outbox_oldest_seconds",
            "gauge",
            "Age of the oldest e-mail waiting to be sent (0 when none).",
            age,
        )
        active: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
        for rule_id, count in firing:
            severity = self._severity.get(rule_id)  # a rule no longer configured: left out
            if severity is not None:
                active[severity] += int(count)
        name = f"{PREFIX}active"
        out.family(name, "gauge", "Alerts firing now, by the severity of their rule.")
        for level, count in active.items():
            out.sample(name, count, {"severity": level})

    def _metrics_answer(self) -> Answer:
        return 200, CONTENT_TYPE, self.render().encode("utf-8")

    # -- /health ---------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """ok | degraded | down (503): down when the last round is older than
        STALE_ROUNDS × interval_s (since the start, before the first) or the database
        does not answer SELECT 1 within DB_TIMEOUT_S; degraded when the last active round
        skipped a rule or a step, or put e-mails back for a retry. A standby is ok."""
        m, now = self._metrics, self._clock.now()
        last = m.last_round_at
        age = (now - (last or m.started_at)).total_seconds()
        rounds = "down" if age > STALE_ROUNDS * self._interval_s else "ok"
        problem = probe(self._select_one, DB_TIMEOUT_S)
        database = "down" if problem is not None else "ok"
        delivery = "ok"
        if m.leader and (m.last_round_problems or m.last_round_retried):
            delivery = "degraded"
        payload: dict[str, Any] = {
            "status": worst(rounds, database, delivery),
            "leader": m.leader,
            "holder": self._holder,
            "last_round_age_s": None if last is None else round(age, 3),
            "interval_s": self._interval_s,
            "checks": {"rounds": rounds, "database": database, "delivery": delivery},
        }
        if problem is not None:
            payload["database_error"] = problem
        return payload

    def _select_one(self) -> None:
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def _health_answer(self) -> Answer:
        return health_answer(self.health())


def make_alerts_exporter(
    settings: Settings,
    metrics: AlertsMetrics,
    engine: Engine,
    clock: Clock,
    *,
    holder: str,
) -> AlertsExporter | None:
    """The exporter the settings ask for (not started); None when alerts.metrics_port is null."""
    port = settings.alerts.metrics_port
    if port is None:
        return None
    return AlertsExporter(
        metrics,
        settings,
        engine,
        clock,
        holder=holder,
        host=settings.alerts.metrics_host,
        port=port,
    )
