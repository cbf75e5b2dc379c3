"""The delivery outbox (alerts/outbox.py) on a real SQLite file and a real PostgreSQL:
route → queue → claim → sent | retry | failed, one transaction per step, and two senders
that never get the same e-mail."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from alerts.facts import Person
from alerts.outbox import NO_FACTS, NOBODY, Outbox, ToldRow
from alerts.repository import AlertRepository
from core.db import make_engine
from core.errors import PermanentError
from core.types import Notification
from tests.integration.test_alerts_repository import T0, clean, event, make_facts

LAN = Person("lan@hai-van.danang.gov.vn", "Nguyễn Thị Lan", "vi", "20194")
MINH = Person("minh@danang.gov.vn", "Trần Văn Minh", "en", "48")
DESK = Person("truc-ban@danang.gov.vn", "Trực ban", "vi", None)
PNG = b"\x89PNG\r\n\x1a\n-not-really-but-bytes-\x00\xff"


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.integration)]
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    found: str = request.getfixturevalue("postgres_url")
    return found


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    built = make_engine(url)
    AlertRepository(built).create_schema()
    clean(built)
    yield built
    built.dispose()


@pytest.fixture
def repository(engine: Engine) -> AlertRepository:
    return AlertRepository(engine)


@pytest.fixture
def outbox(engine: Engine) -> Outbox:
    return Outbox(engine)


def record(repository: AlertRepository, unit: str = "20194", **kwargs: object) -> int:
    (created,) = repository.add_events([event(make_facts(unit, **kwargs))], now=T0)  # type: ignore[arg-type]
    return created


def email(to: Person, subject: str = "[CẢNH BÁO][warning] Bụi mịn PM2.5") -> Notification:
    return Notification(
        recipients=(to.email,),
        subject=subject,
        body_text="Bụi mịn PM2.5 92,4 µg/m³ — Phường Hải Vân",
        body_html='<p>92,4 µg/m³</p><img src="cid:chart-1">',
        reason="first",
        headers={"Message-ID": f"<{subject[-3:]}.{to.email}@cityops>", "X-CityOps": "1"},
        images={"chart-1": PNG},
    )


def statuses(repository: AlertRepository) -> list[tuple[str, str, str | None]]:
    return [(e["kind"], e["status"], e["status_reason"]) for e in repository.log_entries()]


def test_route_gives_an_event_its_people_once(repository: AlertRepository, outbox: Outbox) -> None:
    event_id = record(repository)
    added = outbox.route(event_id, [(LAN, 0), (DESK, 1), (LAN, 1)], now=T0)
    assert added == 2  # Lan once, at the first step she was given
    assert statuses(repository) == [("firing", "routed", None)]
    assert outbox.route(event_id, [(MINH, 0)], now=T0) == 0  # routed already: nothing more
    rows = outbox.pending_deliveries()
    assert [(row.person, row.step, row.event_id) for row in rows] == [
        (LAN, 0, event_id),
        (DESK, 1, event_id),
    ]
    assert rows[0].facts == make_facts()
    assert rows[0].created_at == T0
    assert outbox.counts()["deliveries_pending"] == 2
    with pytest.raises(ValueError, match="no alert event 999"):
        outbox.route(999, [(LAN, 0)], now=T0)


def test_route_is_one_transaction(repository: AlertRepository, outbox: Outbox) -> None:
    event_id = record(repository)
    broken = Person(None, "không có địa chỉ")  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match="state database"):
        outbox.route(event_id, [(LAN, 0), (broken, 0)], now=T0)
    assert outbox.pending_deliveries() == []
    assert statuses(repository) == [("firing", "pending", None)]


def test_events_with_nobody_or_no_facts_are_dropped(
    engine: Engine, repository: AlertRepository, outbox: Outbox
) -> None:
    nobody = record(repository, "20194")
    acked = record(repository, "20197")
    with engine.begin() as connection:  # a pending row left by the release before
        connection.exec_driver_sql(
            "INSERT INTO notification_log (rule_id, unit_code, episode, kind, status, reason,"
            " created_at, attempts, recipients, subject, body_text, headers) VALUES"
            " ('pm25-bad', '20200', 1, 'firing', 'pending', 'first', '2026-11-02 01:00:00',"
            " 0, '[]', 'cũ', '', '{}')"
        )
    (legacy,) = [row.id for row in repository.pending_events() if row.facts is None]
    assert outbox.route(nobody, [], now=T0) == 0
    assert outbox.route(legacy, [(LAN, 0)], now=T0) == 0
    outbox.drop_event(acked, "acknowledged before it went out")
    outbox.drop_event(nobody, "no longer pending: not changed")
    assert statuses(repository) == [
        ("firing", "dropped", NOBODY),
        ("firing", "dropped", "acknowledged before it went out"),
        ("firing", "dropped", NO_FACTS),
    ]
    assert outbox.pending_deliveries() == []


def test_queue_claim_and_send(repository: AlertRepository, outbox: Outbox) -> None:
    first, second = record(repository, "20194"), record(repository, "20197")
    outbox.route(first, [(LAN, 0), (MINH, 0)], now=T0)
    outbox.route(second, [(LAN, 0)], now=T0)
    lan_ids = [row.id for row in outbox.pending_deliveries() if row.person == LAN]
    (minh_id,) = [row.id for row in outbox.pending_deliveries() if row.person == MINH]
    outbox.drop_deliveries([lan_ids[1]], "acknowledged meanwhile")

    later = T0 + timedelta(seconds=30)
    email_id = outbox.queue_email(LAN, email(LAN), lan_ids, now=later)
    # Only Minh's is left; the dropped one stayed dropped, not emailed.
    assert [row.id for row in outbox.pending_deliveries()] == [minh_id]
    assert outbox.last_email_at([LAN.email, MINH.email]) == {LAN.email: later}
    told = outbox.told("pm25-bad", "20194", 1)
    assert told == [
        ToldRow(LAN, 0, "firing", first, "emailed", "pending", None),
        ToldRow(MINH, 0, "firing", first, "pending", None, None),
    ]
    assert outbox.told("pm25-bad", "20197", 1) == []  # Lan's was dropped

    assert outbox.claim_due("a", now=later - timedelta(seconds=1), lease_s=60) == []  # not due
    (claimed,) = outbox.claim_due("a", now=later, lease_s=60)
    assert (claimed.id, claimed.recipient, claimed.lang, claimed.attempts) == (
        email_id,
        LAN.email,
        "vi",
        0,
    )
    assert claimed.notification == email(LAN)  # recipients, bodies, headers, images
    assert outbox.claim_due("b", now=later, lease_s=60) == []  # taken
    assert outbox.counts() == {
        "pending": 0,
        "sending": 1,
        "sent": 0,
        "failed": 0,
        "deliveries_pending": 1,
    }
    sent_at = later + timedelta(seconds=2)
    outbox.mark_sent(email_id, now=sent_at)
    assert outbox.told("pm25-bad", "20194", 1)[0] == ToldRow(
        LAN, 0, "firing", first, "emailed", "sent", sent_at
    )
    assert outbox.claim_due("b", now=later + timedelta(hours=1), lease_s=60) == []
    assert outbox.counts()["sent"] == 1


def test_a_refused_email_retries_with_backoff_then_fails(
    repository: AlertRepository, outbox: Outbox
) -> None:
    event_id = record(repository)
    outbox.route(event_id, [(MINH, 0)], now=T0)
    ids = [row.id for row in outbox.pending_deliveries()]
    email_id = outbox.queue_email(MINH, email(MINH), ids, now=T0)

    (row,) = outbox.claim_due("a", now=T0, lease_s=60)
    retry_at = T0 + timedelta(seconds=10)
    outbox.mark_retry(email_id, now=T0, error="421 try later", next_attempt_at=retry_at)
    assert outbox.counts()["pending"] == 1
    assert outbox.claim_due("a", now=retry_at - timedelta(seconds=1), lease_s=60) == []
    (row,) = outbox.claim_due("a", now=retry_at, lease_s=60)
    assert row.attempts == 1
    outbox.mark_retry(row.id, now=retry_at, error="unreachable", next_attempt_at=retry_at)
    (row,) = outbox.claim_due("a", now=retry_at, lease_s=60)
    assert row.attempts == 2
    failed_at = retry_at + timedelta(seconds=1)
    outbox.mark_failed(row.id, now=failed_at, error="550 no such user")
    outbox.mark_retry(row.id, now=failed_at, error="late", next_attempt_at=failed_at)  # ignored
    assert outbox.claim_due("a", now=failed_at + timedelta(days=1), lease_s=60) == []

    (failed,) = outbox.failed_emails()
    assert failed["id"] == email_id
    assert (failed["recipient"], failed["attempts"], failed["last_error"]) == (
        MINH.email,
        3,
        "550 no such user",
    )
    assert (failed["created_at"], failed["last_attempt_at"]) == (T0, failed_at)
    assert (failed["alerts"], failed["rules"]) == ([("pm25-bad", "20194")], ["pm25-bad"])
    assert failed["subject"] == email(MINH).subject
    assert outbox.counts()["failed"] == 1
    # The person was still told (the console shows the failure): the chain's mark needs it.
    assert [t.email_status for t in outbox.told("pm25-bad", "20194", 1)] == ["failed"]


def test_failed_emails_newest_first_with_every_alert_they_carried(
    repository: AlertRepository, outbox: Outbox
) -> None:
    for unit in ("20194", "20197"):
        outbox.route(record(repository, unit), [(LAN, 0)], now=T0)
    outbox.route(record(repository, "20200", rule_id="no2-bad"), [(MINH, 0)], now=T0)
    lan = [row.id for row in outbox.pending_deliveries() if row.person == LAN]
    minh = [row.id for row in outbox.pending_deliveries() if row.person == MINH]
    older = outbox.queue_email(LAN, email(LAN, "lan"), lan, now=T0)
    newer = outbox.queue_email(MINH, email(MINH, "minh"), minh, now=T0)
    for row in outbox.claim_due("a", now=T0, lease_s=60):
        outbox.mark_failed(row.id, now=T0, error="550")
    found = outbox.failed_emails()
    assert [row["id"] for row in found] == [newer, older]
    assert found[1]["alerts"] == [("pm25-bad", "20194"), ("pm25-bad", "20197")]
    assert found[0]["rules"] == ["no2-bad"]
    assert [row["id"] for row in outbox.failed_emails(limit=1)] == [newer]


def test_an_email_without_message_id_is_refused_and_nothing_changes(
    repository: AlertRepository, outbox: Outbox
) -> None:
    outbox.route(record(repository), [(LAN, 0)], now=T0)
    ids = [row.id for row in outbox.pending_deliveries()]
    bare = Notification((LAN.email,), "x", "y")
    with pytest.raises(ValueError, match="Message-ID"):
        outbox.queue_email(LAN, bare, ids, now=T0)
    assert [row.id for row in outbox.pending_deliveries()] == ids
    assert outbox.counts()["pending"] == 0


def test_an_abandoned_sending_email_is_reclaimed_after_its_claim(
    repository: AlertRepository, outbox: Outbox
) -> None:
    outbox.route(record(repository), [(LAN, 0)], now=T0)
    ids = [row.id for row in outbox.pending_deliveries()]
    email_id = outbox.queue_email(LAN, email(LAN), ids, now=T0)
    (row,) = outbox.claim_due("dead-host:1:aa", now=T0, lease_s=60)  # ... and then it died
    assert outbox.claim_due("b", now=T0 + timedelta(seconds=59), lease_s=60) == []
    assert outbox.claim_due("b", now=T0 + timedelta(seconds=60), lease_s=60) == []
    (again,) = outbox.claim_due("b", now=T0 + timedelta(seconds=61), lease_s=60)
    assert again.id == email_id
    # Same e-mail, same Message-ID: a mail client shows a re-send once.
    assert again.notification.headers["Message-ID"] == row.notification.headers["Message-ID"]
    outbox.mark_sent(email_id, now=T0 + timedelta(seconds=62))
    assert outbox.counts()["sent"] == 1


def claim_all(engine: Engine, holder: str, now: datetime, start: threading.Barrier) -> list[int]:
    outbox = Outbox(engine)
    got: list[int] = []
    start.wait()
    while rows := outbox.claim_due(holder, now=now, lease_s=60, limit=3):
        got.extend(row.id for row in rows)
    return got


def test_two_claimers_never_get_the_same_email(
    url: str, repository: AlertRepository, outbox: Outbox
) -> None:
    for index in range(12):
        outbox.route(record(repository, f"20{index:03d}"), [(LAN, 0), (MINH, 0)], now=T0)
    for person in (LAN, MINH):
        for row in [r for r in outbox.pending_deliveries() if r.person == person]:
            outbox.queue_email(person, email(person, f"{row.id:03d}"), [row.id], now=T0)
    engines = [make_engine(url) for _ in range(3)]  # a pool each: like separate processes
    start = threading.Barrier(len(engines))
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def run(name: str, engine: Engine) -> None:
        try:
            results[name] = claim_all(engine, name, T0, start)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(f"sender-{i}", made)) for i, made in enumerate(engines)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for made in engines:
            made.dispose()
    assert errors == []
    claimed = [email_id for got in results.values() for email_id in got]
    assert len(claimed) == 24
    assert len(set(claimed)) == 24  # nobody got one twice
    assert outbox.counts()["sending"] == 24
