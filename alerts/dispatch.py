"""From events to e-mails accepted by the SMTP server: escalate → route → group → send.

Each step reads what the previous one wrote in the state database and writes its result
there in one transaction (alerts/outbox.py), so the evaluator can die between any two and
its successor carries on: nothing lost, nothing sent twice (but for one e-mail the SMTP
server accepted just before the crash, sent again with the same Message-ID).

    escalate  open, unacknowledged episodes → "escalation-n" / "reminder-k" events
    route     pending events (after silences) → one delivery per person told (duty roster)
    group     pending deliveries → one e-mail per person (group_wait_s, group_interval_s)
    send      due e-mails → SMTP; retried with backoff, failed for good on a 5xx / bad address

Design: docs/design/014-alert-delivery.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from alerts.actions import AlertActions
from alerts.escalation import OpenEpisode, annotate, due_events
from alerts.event_facts import facts_for
from alerts.facts import AlertFacts, DutyStep, EventKind, NotificationKey, Person, parse_event_kind
from alerts.grouping import PendingDelivery, plan_emails
from alerts.links import AckSigner, ack_url
from alerts.outbox import Outbox
from alerts.places import Places
from alerts.render import CHARTS, EmailContext, EmailItem, render_email
from alerts.repository import AlertRepository, EventRow
from alerts.roster import Roster
from alerts.silencing import Silencing
from alerts.state import AlertState
from core.errors import CityOpsError, PermanentError, RetryableError
from core.logs import correlation
from core.ports import Notifier, Store
from core.settings import AlertRule, Settings
from core.types import SeriesPoint, UnitRef

log = logging.getLogger("cityops.alerts.dispatch")

CHART_BUCKETS = 72
NOBODY = "nobody to tell: no roster entry covers the unit and alerts.recipients is empty"


@dataclass(frozen=True)
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


class Dispatcher:
    """The steps after evaluation, for one evaluator (the lease holder)."""

    def __init__(
        self,
        settings: Settings,
        *,
        repository: AlertRepository,
        outbox: Outbox,
        actions: AlertActions,
        roster: Roster,
        places: Places,
        store: Store,
        notifier: Notifier,
        signer: AckSigner | None,
        silencing: Silencing | None,
        holder: str,
    ) -> None:
        self._settings = settings
        self._rules = {rule.id: rule for rule in settings.alerts.rules}
        self._repository = repository
        self._outbox = outbox
        self._actions = actions
        self._roster = roster
        self._places = places
        self._store = store
        self._notifier = notifier
        self._signer = signer
        self._silencing = silencing
        self._holder = holder
        # Told of the events each step records: (ids created, kind keys proposed).
        self.on_events: Callable[[list[int], list[str]], None] | None = None
        self._email_context = EmailContext(
            sender=settings.smtp.sender,
            site_name=settings.site.name,
            timezone=settings.site.timezone,
            public_url=settings.dashboard.public_url.rstrip("/"),
        )

    # -- escalate ----------------------------------------------------------------------

    def escalate(self, now: datetime) -> int:
        """Record the escalations and reminders now due; returns how many were new."""
        settings = self._settings.alerts.escalation
        states = {
            (state.rule_id, state.unit_code, state.episode): state
            for state in self._repository.open_episodes()
            if state.rule_id in self._rules and state.fired_at is not None
        }
        if not states:
            return 0
        acked = {tuple(key) for key in self._actions.acks(list(states))}
        episodes = [
            OpenEpisode(rule_id, unit, episode, state.fired_at, (rule_id, unit, episode) in acked)
            for (rule_id, unit, episode), state in states.items()
            if state.fired_at is not None
        ]

        def chain_length(episode: OpenEpisode) -> int:
            return len(self.chain(episode.rule_id, episode.unit_code, now))

        events: list[tuple[NotificationKey, AlertFacts]] = []
        for rule_id, unit, episode, kind_key in due_events(episodes, now, settings, chain_length):
            state = states[(rule_id, unit, episode)]
            kind, step = parse_event_kind(kind_key)
            facts = self._facts(self._rules[rule_id], state, kind, step, now)
            events.append((NotificationKey(rule_id, unit, episode, kind_key), facts))
        if not events:
            return 0
        created = self._repository.add_events(events, now=now)
        if self.on_events is not None:
            self.on_events(created, [key.kind for key, _ in events])
        return len(created)

    def _facts(
        self, rule: AlertRule, state: AlertState, kind: str, step: int, now: datetime
    ) -> AlertFacts:
        metric = self._settings.metrics[rule.metric]
        worded = cast(EventKind, kind)
        return facts_for(rule, metric, state, self._places, kind=worded, step=step, now=now)

    # -- route -------------------------------------------------------------------------

    def chain(self, rule_id: str, code: str, at: datetime) -> list[DutyStep]:
        rule = self._rules.get(rule_id)
        level = rule.level if rule is not None else "unit"
        unit = self._places.unit_of(code, level)
        parents = self._places.parents(code, level)
        if level == "device" and parents:
            unit, parents = parents[0], parents[1:]
        return self._roster.chain(
            unit or code,
            parents,
            at,
            desk=self._settings.alerts.recipients,
            unit_name=lambda found: self._places.name(found, "unit"),
        )

    def route(self, now: datetime) -> int:
        """Give each pending event its people; returns how many events were routed."""
        if self._silencing is not None:
            self._silencing.release(now)  # silences that are over give back what they held
        events = self._repository.pending_events()
        if self._silencing is not None and events:
            events = self._silencing.hold_muted(events)
        if not events:
            return 0
        acked = {
            tuple(key)
            for key in self._actions.acks([(e.rule_id, e.unit_code, e.episode) for e in events])
        }
        routed = 0
        for event in events:
            with correlation(f"event-{event.id}"):
                routed += self._route_one(event, acked, now)
        return routed

    def _route_one(self, event: EventRow, acked: set[tuple[Any, ...]], now: datetime) -> int:
        """One pending event: dropped (acknowledged, nobody to tell) or routed (1)."""
        event_id = event.id
        kind, step = parse_event_kind(event.kind)
        episode = (event.rule_id, event.unit_code, event.episode)
        if kind in ("reminder", "escalation") and episode in acked:
            self._outbox.drop_event(event_id, "acknowledged before it went out")
            return 0
        people = self._people(event.rule_id, event.unit_code, event.episode, kind, step, now)
        if not people:
            reason = NOBODY if kind in ("firing", "escalation") else "nobody was told"
            if kind == "escalation":
                reason = "the duty chain has no further step"
            self._outbox.drop_event(event_id, reason)
            if kind == "firing":
                log.error("alert %s/%s: %s", event.rule_id, event.unit_code, NOBODY)
            return 0
        self._outbox.route(event_id, people, now=now)
        return 1

    def _people(
        self, rule_id: str, code: str, episode: int, kind: str, step: int, now: datetime
    ) -> list[tuple[Person, int]]:
        if kind in ("firing", "escalation"):
            chain = self.chain(rule_id, code, now)
            if step >= len(chain):
                return []
            return [(person, step) for person in chain[step].people]
        # resolved: everyone told (or about to be) about this episode; a reminder: those
        # whose e-mail has gone out (one still waiting will say it all anyway)
        seen: dict[str, tuple[Person, int]] = {}
        for told in self._outbox.told(rule_id, code, episode):
            if kind == "reminder" and told.delivery_status != "emailed":
                continue
            seen.setdefault(told.person.email, (told.person, told.step))
        return list(seen.values())

    # -- group -------------------------------------------------------------------------

    def group(self, now: datetime) -> int:
        """Turn ready deliveries into e-mails; returns how many e-mails were queued."""
        rows = self._outbox.pending_deliveries()
        if not rows:
            return 0
        alerts = self._settings.alerts
        pending = [PendingDelivery(row.id, row.person, row.facts, row.created_at) for row in rows]
        last_sent = self._outbox.last_email_at({row.person.email for row in rows})
        plans = plan_emails(
            pending,
            last_sent,
            now,
            group_wait_s=alerts.group_wait_s,
            group_interval_s=alerts.group_interval_s,
            max_per_email=alerts.max_alerts_per_email,
        )
        # Per episode and per unit, asked once for all the e-mails of this round (a storm
        # puts the same alerts in many people's e-mails).
        chains: dict[tuple[str, str, int], list[DutyStep]] = {}
        series_cache: dict[tuple[str, str, str], Sequence[SeriesPoint] | None] = {}
        for plan in plans:
            items = [
                self._item(delivery.facts, plan.person, index, now, chains, series_cache)
                for index, delivery in enumerate(plan.deliveries)
            ]
            notification = render_email(plan.person, items, self._email_context)
            ids = [delivery.id for delivery in plan.deliveries] + list(plan.merged_ids)
            self._outbox.queue_email(plan.person, notification, ids, now=now)
        return len(plans)

    def _item(
        self,
        facts: AlertFacts,
        person: Person,
        index: int,
        now: datetime,
        chains: dict[tuple[str, str, int], list[DutyStep]],
        cache: dict[tuple[str, str, str], Sequence[SeriesPoint] | None],
    ) -> EmailItem:
        if facts.key not in chains:
            told = {row.person.email for row in self._outbox.told(*facts.key)}
            chains[facts.key] = annotate(
                self.chain(facts.rule_id, facts.unit_code, now),
                facts.fired_at,
                self._settings.alerts.escalation,
                told,
            )
        public_url = self._email_context.public_url
        series = self._series(facts, now, cache) if index < CHARTS else None
        link = None
        if self._signer is not None and facts.kind != "resolved":
            expires = now + timedelta(hours=self._settings.alerts.ack_link_hours)
            token = self._signer.token(
                facts.rule_id, facts.unit_code, facts.episode, person.email, person.lang, expires
            )
            link = ack_url(public_url, token)
        return EmailItem(
            facts=facts,
            chain=chains[facts.key],
            series=series,
            ack_url=link,
            unit_url=public_url + facts.unit_page,
        )

    def _series(
        self,
        facts: AlertFacts,
        now: datetime,
        cache: dict[tuple[str, str, str], Sequence[SeriesPoint] | None],
    ) -> Sequence[SeriesPoint] | None:
        hours = self._settings.alerts.chart_hours
        metric = self._settings.metrics.get(facts.metric_id)
        if hours <= 0 or metric is None:
            return None
        key = (facts.metric_id, facts.level, facts.unit_code)
        if key not in cache:
            span = timedelta(hours=hours)
            try:
                cache[key] = self._store.series(
                    metric.ref,
                    UnitRef(facts.level, facts.unit_code),
                    start=now - span,
                    end=now,
                    every=span / CHART_BUCKETS,
                    aggregation=metric.aggregation,
                )
            except CityOpsError as exc:  # the e-mail goes without its chart
                log.warning("no chart for %s/%s: %s", facts.rule_id, facts.unit_code, exc)
                cache[key] = None
        return cache[key]

    # -- send --------------------------------------------------------------------------

    def send(self, now: datetime, *, clock: Callable[[], datetime] | None = None) -> SendReport:
        """Send the e-mails that are due. The first server-side trouble (unreachable, 4xx)
        puts the rest of this batch back with the same wait: the server is down for all."""
        retry = self._settings.alerts.retry
        lease_s = self._settings.alerts.lease_s
        rows = self._outbox.claim_due(self._holder, now=now, lease_s=lease_s)
        sent = retried = failed = 0
        down: tuple[str, datetime] | None = None
        for row in rows:
            at = clock() if clock is not None else now
            if down is not None:
                self._outbox.mark_retry(row.id, now=at, error=down[0], next_attempt_at=down[1])
                retried += 1
                continue
            with correlation(f"email-{row.id}"):
                try:
                    self._notifier.send(row.notification)
                except RetryableError as exc:
                    wait = min(retry.max_delay_s, retry.first_delay_s * retry.factor**row.attempts)
                    down = (str(exc), at + timedelta(seconds=wait))
                    self._outbox.mark_retry(row.id, now=at, error=down[0], next_attempt_at=down[1])
                    log.warning(
                        "e-mail %d to %s: %s (again in %.0f s)", row.id, row.recipient, exc, wait
                    )
                    retried += 1
                except PermanentError as exc:
                    self._outbox.mark_failed(row.id, now=at, error=str(exc))
                    log.error("e-mail %d to %s failed for good: %s", row.id, row.recipient, exc)
                    failed += 1
                else:
                    self._outbox.mark_sent(row.id, now=at)
                    log.debug("e-mail %d to %s sent", row.id, row.recipient)
                    sent += 1
        return SendReport(sent, retried, failed)
