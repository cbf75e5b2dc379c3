"""alert_states and the event log (notification_log) on a real SQLite file and a real
PostgreSQL database, and the "alerts" migrations from the release before."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    inspect,
)

from alerts.evaluate import Result
from alerts.facts import AlertFacts, EventKind, event_kind_key
from alerts.repository import AlertRepository, EventKey, EventRow, metadata
from alerts.state import AlertKey, AlertState, Transition, transition
from core.db import UtcDateTime, make_engine
from core.errors import PermanentError, RetryableError
from core.migrate import applied_versions
from core.settings_base import Label

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
ALERT_TABLES = ("alert_deliveries", "alert_emails", "alert_leases", "notification_log")


def clean(engine: Engine) -> None:
    """Empty the alert tables (PostgreSQL's database lives for the whole module)."""
    with engine.begin() as connection:
        for table in (*ALERT_TABLES, "alert_states"):
            connection.exec_driver_sql(f"DELETE FROM {table}")


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


def make_facts(
    unit: str = "20194",
    *,
    rule_id: str = "pm25-bad",
    episode: int = 1,
    kind: EventKind = "firing",
    step: int = 0,
    level: str = "commune",
    parents: tuple[str, ...] = ("48",),
    at: datetime = T0,
) -> AlertFacts:
    return AlertFacts(
        rule_id=rule_id,
        unit_code=unit,
        level=level,
        episode=episode,
        kind=kind,
        step=step,
        severity="warning",
        rule_type="threshold",
        metric_id="pm25",
        title=Label(vi="Bụi mịn PM2.5 ở mức Xấu", en="PM2.5 at Poor"),
        metric_label=Label(vi="Bụi mịn PM2.5", en="PM2.5"),
        value=92.4,
        value_text=Label(vi="92,4 µg/m³", en="92.4 µg/m³"),
        condition=Label(vi="vượt ngưỡng 80 µg/m³", en="above 80 µg/m³"),
        rule_text=Label(vi="PM2.5 > 80 µg/m³", en="PM2.5 > 80 µg/m³"),
        unit_name=Label(vi=f"Phường {unit}, Thành phố Đà Nẵng", en=f"{unit} Ward, Da Nang"),
        unit_page=f"/area/{level}/{unit}",
        since=at,
        fired_at=at,
        resolved_at=at if kind == "resolved" else None,
        evaluated_at=at,
        threshold=80.0,
        parents=parents,
    )


def event(facts: AlertFacts) -> tuple[EventKey, AlertFacts]:
    kind = event_kind_key(facts.kind, facts.step)
    return EventKey(facts.rule_id, facts.unit_code, facts.episode, kind), facts


def firing(unit: str = "20194", at: datetime = T0, rule_id: str = "pm25-bad") -> Transition:
    return transition(None, Result("breach", 92.4), at, 0, key=AlertKey(rule_id, unit))


def fired(moved: Transition, kind: EventKind = "firing") -> tuple[EventKey, AlertFacts]:
    state = moved.current
    return event(
        make_facts(state.unit_code, rule_id=state.rule_id, episode=state.episode, kind=kind)
    )


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


def test_an_event_is_recorded_once_with_its_facts(engine: Engine) -> None:
    repository = AlertRepository(engine)
    moved = firing()
    key, facts = fired(moved)
    created = repository.save([moved], [(key, facts)], now=T0)
    assert len(created) == 1
    # The same (rule, unit, episode, kind) again, e.g. from a process that crashed before
    # committing its state: the log keeps the first one.
    again = replace(facts, value=99.0)
    assert repository.save([moved], [(key, again)], now=T0 + timedelta(seconds=5)) == []
    assert repository.pending_events() == [
        EventRow(created[0], "pm25-bad", "20194", 1, "firing", facts, T0, "pending")
    ]
    (entry,) = repository.log_entries("pm25-bad")
    assert entry["facts"] == facts
    assert entry["subject"] == "Bụi mịn PM2.5 ở mức Xấu — Phường 20194, Thành phố Đà Nẵng"
    assert (entry["status"], entry["status_reason"], entry["recipients"]) == ("pending", None, "[]")
    assert repository.log_entries("other-rule") == []


def test_add_events_for_escalations_and_reminders(engine: Engine) -> None:
    repository = AlertRepository(engine)
    moved = firing()
    repository.save([moved], [fired(moved)], now=T0)
    later = T0 + timedelta(minutes=15)
    escalation = event(make_facts(kind="escalation", step=1))
    reminder = event(make_facts(kind="reminder", step=2))
    created = repository.add_events([escalation, reminder], now=later)
    assert len(created) == 2
    assert repository.add_events([escalation], now=later) == []
    kinds = [(row.kind, row.created_at) for row in repository.pending_events()]
    assert kinds == [("firing", T0), ("escalation-1", later), ("reminder-2", later)]


def test_an_event_must_match_its_facts(engine: Engine) -> None:
    repository = AlertRepository(engine)
    key, facts = event(make_facts())
    with pytest.raises(ValueError, match="does not match"):
        repository.add_events([(replace(key, episode=2), facts)], now=T0)
    with pytest.raises(ValueError, match="does not match"):
        repository.add_events([(replace(key, kind="escalation-1"), facts)], now=T0)
    assert repository.log_entries() == []


def test_pending_events_oldest_first_and_status_changes_only_pending(engine: Engine) -> None:
    repository = AlertRepository(engine)
    units = ["20200", "20194", "20197"]
    ids = [repository.add_events([event(make_facts(unit))], now=T0)[0] for unit in units]
    assert [row.unit_code for row in repository.pending_events()] == units
    assert [row.unit_code for row in repository.pending_events(limit=2)] == units[:2]

    repository.set_event_status([ids[0], ids[1]], "dropped", "nobody to tell")
    repository.set_event_status([ids[0]], "routed")  # no longer pending: stays dropped
    assert [row.id for row in repository.pending_events()] == [ids[2]]
    statuses = [(e["status"], e["status_reason"]) for e in repository.log_entries()]
    assert statuses == [
        ("dropped", "nobody to tell"),
        ("dropped", "nobody to tell"),
        ("pending", None),
    ]
    with pytest.raises(ValueError, match="sent"):
        repository.set_event_status([ids[2]], "sent")


def test_states_and_events_are_one_transaction(engine: Engine) -> None:
    repository = AlertRepository(engine)
    good = firing("20194")
    naive = replace(firing("20197").current, since=datetime(2026, 11, 2, 1, 0))
    bad = Transition(None, naive, "firing")
    with pytest.raises(PermanentError, match="timezone-aware"):
        repository.save([good, bad], [fired(good)], now=T0)
    # The states are written before the events: an event that fails undoes them too.
    with pytest.raises(PermanentError, match="timezone-aware"):
        repository.save([good], [fired(good)], now=datetime(2026, 11, 2, 1, 0))
    assert repository.load_states("pm25-bad") == {}
    assert repository.pending_events() == []


def test_open_episodes_are_the_states_with_a_firing_open(engine: Engine) -> None:
    repository = AlertRepository(engine)
    open_one = firing("20194")
    closed = firing("20197")
    resolved = transition(closed.current, Result("ok", 10.0), T0 + timedelta(minutes=1), 0)
    other = AlertState("water-cam-le-alarm3", "20260", "ok", T0, 1.2, T0)
    repository.save([open_one, resolved, Transition(None, other, None)], [], now=T0)
    assert repository.open_episodes() == [open_one.current]


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


# -- migrating a database of the release before ---------------------------------------


def previous_release_schema() -> MetaData:
    """alert_states and notification_log as the release before made them (create_all)."""
    old = MetaData()
    Table(
        "alert_states",
        old,
        Column("rule_id", Text, primary_key=True),
        Column("unit_code", Text, primary_key=True),
        Column("state", Text, nullable=False),
        Column("since", UtcDateTime, nullable=False),
        Column("value", Float, nullable=True),
        Column("last_eval", UtcDateTime, nullable=False),
        Column("fired_at", UtcDateTime, nullable=True),
        Column("active_at", UtcDateTime, nullable=True),
        Column("resolved_at", UtcDateTime, nullable=True),
        Column("episode", Integer, nullable=False),
        Column("error", Text, nullable=True),
    )
    Table(
        "notification_log",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("rule_id", Text, nullable=False),
        Column("unit_code", Text, nullable=False),
        Column("episode", Integer, nullable=False),
        Column("kind", Text, nullable=False),
        Column("status", Text, nullable=False, index=True),
        Column("reason", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("sent_at", UtcDateTime, nullable=True),
        Column("last_attempt_at", UtcDateTime, nullable=True),
        Column("attempts", Integer, nullable=False),
        Column("last_error", Text, nullable=True),
        Column("recipients", Text, nullable=False),
        Column("subject", Text, nullable=False),
        Column("body_text", Text, nullable=False),
        Column("body_html", Text, nullable=True),
        Column("headers", Text, nullable=False),
        UniqueConstraint(
            "rule_id", "unit_code", "episode", "kind", name="notification_log_once_per_episode"
        ),
    )
    return old


def test_a_database_of_the_release_before_is_migrated_and_keeps_its_rows(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:  # back to what the release before left
            for table in (*ALERT_TABLES, "alert_states"):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            if inspect(connection).has_table("schema_migrations"):
                connection.exec_driver_sql(
                    "DELETE FROM schema_migrations WHERE component = 'alerts'"
                )
        old = previous_release_schema()
        old.create_all(engine)
        sent_row = {
            "rule_id": "pm25-bad",
            "unit_code": "20194",
            "episode": 1,
            "kind": "firing",
            "status": "sent",
            "reason": "first",
            "created_at": T0,
            "sent_at": T0,
            "attempts": 1,
            "recipients": '["truc-ban@example.gov.vn"]',
            "subject": "[CẢNH BÁO] Phường Hải Vân",
            "body_text": "Giá trị: 92,4 µg/m³",
            "headers": "{}",
        }
        with engine.begin() as connection:
            connection.execute(old.tables["notification_log"].insert(), [sent_row])
            connection.execute(
                old.tables["notification_log"].insert(),
                [{**sent_row, "unit_code": "20197", "status": "pending", "sent_at": None}],
            )
        repository = AlertRepository(engine)
        repository.save([firing()], [], now=T0)  # nothing new needed for states

        repository.create_schema()
        assert applied_versions(engine, "alerts") == [1, 2]
        tables = set(inspect(engine).get_table_names())
        assert {"alert_deliveries", "alert_emails", "alert_leases"} <= tables
        sent, waiting = repository.log_entries()
        assert (sent["status"], sent["subject"], sent["facts"], sent["status_reason"]) == (
            "sent",
            "[CẢNH BÁO] Phường Hải Vân",
            None,
            None,
        )
        assert [row.facts for row in repository.pending_events()] == [None]
        assert waiting["unit_code"] == "20197"
        assert repository.load_states("pm25-bad") == {"20194": firing().current}
        # The old unique key still holds, and new events go in beside the old rows.
        moved = firing()
        assert repository.save([moved], [fired(moved)], now=T0) == []
        assert len(repository.add_events([event(make_facts("20200"))], now=T0)) == 1
        repository.create_schema()
        assert applied_versions(engine, "alerts") == [1, 2]
    finally:
        engine.dispose()


def test_a_new_database_gets_the_same_tables(url: str) -> None:
    engine = make_engine(url)
    try:
        AlertRepository(engine).create_schema()
        columns = {c["name"] for c in inspect(engine).get_columns("notification_log")}
        assert {"facts", "status_reason", "subject", "recipients"} <= columns
        emails = {c["name"] for c in inspect(engine).get_columns("alert_emails")}
        assert {"claimed_by", "claimed_until", "images", "message_id"} <= emails
    finally:
        engine.dispose()


def test_a_database_made_with_the_current_metadata_migrates_too(url: str) -> None:
    """Test seeds create the tables with ``metadata.create_all``: the steps then find them."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            for table in (*ALERT_TABLES, "alert_states"):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            if inspect(connection).has_table("schema_migrations"):
                connection.exec_driver_sql(
                    "DELETE FROM schema_migrations WHERE component = 'alerts'"
                )
        metadata.create_all(engine)
        repository = AlertRepository(engine)
        created = repository.add_events([event(make_facts())], now=T0)
        repository.create_schema()
        assert applied_versions(engine, "alerts") == [1, 2]
        assert [row.id for row in repository.pending_events()] == created
    finally:
        engine.dispose()
