"""alert_states and notification_log on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from alerts.evaluate import Result
from alerts.repository import AlertRepository
from alerts.stages import Delivery, NotificationKey
from alerts.state import AlertKey, AlertState, Transition, transition
from core.db import make_engine
from core.errors import PermanentError, RetryableError
from core.types import Notification

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.integration)]
)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    built = make_engine(url)
    repository = AlertRepository(built)
    repository.create_schema()
    yield built
    if built.dialect.name == "postgresql":  # the database lives for the module: start clean
        with built.begin() as connection:
            connection.exec_driver_sql("DELETE FROM notification_log")
            connection.exec_driver_sql("DELETE FROM alert_states")
    built.dispose()


def firing(unit: str = "20194", at: datetime = T0) -> Transition:
    return transition(None, Result("breach", 92.4), at, 0, key=AlertKey("pm25-bad", unit))


def delivery(moved: Transition, subject: str = "[CẢNH BÁO] Phường Hải Vân") -> Delivery:
    assert moved.notify is not None
    current = moved.current
    key = NotificationKey(current.rule_id, current.unit_code, current.episode, moved.notify)
    note = Notification(
        recipients=("truc-ban@example.gov.vn", "lanh-dao@example.gov.vn"),
        subject=subject,
        body_text="Giá trị: 92,4 µg/m³",
        body_html="<p>92,4 µg/m³</p>",
        reason="first",
        headers={"X-CityOps-Alert": "pm25-bad/20194", "Message-ID": "<a@b>"},
    )
    return Delivery(key, note)


def test_states_round_trip_with_aware_utc_times(engine: Engine) -> None:
    repository = AlertRepository(engine)
    repository.create_schema()  # a second time is harmless
    moved = firing()
    repository.save([moved], [], now=T0)
    loaded = repository.load_states("pm25-bad")
    assert loaded == {"20194": moved.current}
    assert loaded["20194"].fired_at is not None
    assert loaded["20194"].fired_at.tzinfo is UTC
    assert repository.load_states("other-rule") == {}


def test_saving_again_replaces_the_state(engine: Engine) -> None:
    repository = AlertRepository(engine)
    first = firing()
    later = transition(first.current, Result("ok", 40.0), T0 + timedelta(minutes=5), 0)
    error = transition(later.current, Result.failed("store down"), T0 + timedelta(minutes=6), 0)
    for moved in (first, later, error):
        repository.save([moved], [], now=moved.current.last_eval)
    assert repository.load_states("pm25-bad")["20194"] == error.current
    assert error.current.error == "store down"


def test_outbox_holds_each_email_once_until_it_is_sent(engine: Engine) -> None:
    repository = AlertRepository(engine)
    moved = firing()
    created = repository.save([moved], [delivery(moved)], now=T0)
    assert len(created) == 1
    # The same (rule, unit, episode, kind) again, e.g. from a process that crashed before
    # committing its state: the log keeps the first one.
    assert repository.save([moved], [delivery(moved, subject="again")], now=T0) == []
    (pending,) = repository.pending()
    assert pending.log_id == created[0]
    assert pending.notification == delivery(moved).notification
    assert pending.key == NotificationKey("pm25-bad", "20194", 1, "firing")
    assert repository.status(pending.key) == "pending"

    repository.record_outcome(
        replace(pending, outcome="deferred", attempts=2, error="connection refused"), T0
    )
    (still,) = repository.pending()
    assert (still.attempts, repository.status(still.key)) == (2, "pending")

    repository.record_outcome(replace(still, outcome="sent", attempts=3), T0)
    assert repository.pending() == []
    assert repository.status(still.key) == "sent"
    (entry,) = repository.log_entries()
    assert (entry["status"], entry["attempts"], entry["sent_at"]) == ("sent", 3, T0)


def test_failed_is_final(engine: Engine) -> None:
    repository = AlertRepository(engine)
    moved = firing()
    repository.save([moved], [delivery(moved)], now=T0)
    (pending,) = repository.pending()
    repository.record_outcome(replace(pending, outcome="failed", attempts=1, error="550"), T0)
    assert repository.pending() == []
    assert repository.status(pending.key) == "failed"
    assert repository.log_entries()[0]["last_error"] == "550"


def test_pending_comes_oldest_first(engine: Engine) -> None:
    repository = AlertRepository(engine)
    units = ["20200", "20194", "20197"]
    for unit in units:
        moved = firing(unit)
        repository.save([moved], [delivery(moved)], now=T0)
    assert [d.key.unit_code for d in repository.pending()] == units
    assert [d.key.unit_code for d in repository.pending(limit=2)] == units[:2]


def test_state_and_outbox_are_one_transaction(engine: Engine) -> None:
    repository = AlertRepository(engine)
    good = firing("20194")
    naive = replace(firing("20197").current, since=datetime(2026, 11, 2, 1, 0))
    bad = Transition(None, naive, "firing")
    with pytest.raises(PermanentError, match="timezone-aware"):
        repository.save([good, bad], [delivery(good)], now=T0)
    assert repository.load_states("pm25-bad") == {}
    assert repository.pending() == []


def test_unknown_state_in_the_table_is_a_clear_error(engine: Engine) -> None:
    repository = AlertRepository(engine)
    repository.save([firing()], [], now=T0)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alert_states SET state = 'exploded'")
    with pytest.raises(PermanentError, match="exploded"):
        repository.load_states("pm25-bad")


@pytest.mark.integration
def test_unreachable_postgres_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/none?connect_timeout=2")
    try:
        with pytest.raises(RetryableError, match="state database"):
            AlertRepository(engine).create_schema()
    finally:
        engine.dispose()


def test_states_are_kept_per_rule(engine: Engine) -> None:
    repository = AlertRepository(engine)
    other = AlertState("water-cam-le-alarm3", "20260", "ok", T0, 1.2, T0)
    repository.save([firing(), Transition(None, other, None)], [], now=T0)
    assert list(repository.load_states("water-cam-le-alarm3").values()) == [other]
