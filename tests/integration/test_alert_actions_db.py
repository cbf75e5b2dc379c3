"""Acknowledgements, notes, silences and the audit log (alerts/actions.py) on SQLite and on
a real PostgreSQL: migrations (also two migrators at once, and a version-1 database getting
the notes), history kept, audit in the same transaction, validation, database errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, func, select, text

from alerts.action_tables import COMPONENT, MIGRATIONS, acknowledgements, notes, silences
from alerts.actions import AckKey, AlertActions, InvalidAction, NoSuchSilence
from alerts.repository import AlertRepository
from alerts.silencing import Silencing
from core.db import make_engine
from core.errors import RetryableError
from core.migrate import applied_versions, migrate, schema_migrations
from core.settings import Label, LevelSettings, load_settings
from dashboard.access import Access
from dashboard.alerts_data import AlertSource
from dashboard.alerts_history import HistoryFilter, alert_history
from layers.levels import Hierarchy, Unit
from tests.conftest import FakeClock
from tests.unit.dashboard.alerts_seed import TZ, add_log, add_state

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    found: str = request.getfixturevalue("postgres_url")
    return found


def drop_all(engine: Engine) -> None:
    """Every table, the alert engine's too (their foreign keys decide the order)."""
    tables = MetaData()
    tables.reflect(engine)
    tables.drop_all(engine)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    built = make_engine(url)
    drop_all(built)  # the PostgreSQL database lives for the whole module
    yield built
    drop_all(built)
    built.dispose()


@pytest.fixture
def actions(engine: Engine, clock: FakeClock) -> AlertActions:
    made = AlertActions(engine, clock)
    assert made.migrate() == [1, 2]
    return made


def hierarchy() -> Hierarchy:
    levels = [
        LevelSettings(name="province", code_length=2, label=Label(vi="Tỉnh", en="Province")),
        LevelSettings(name="commune", code_length=5, label=Label(vi="Xã", en="Commune")),
    ]
    units = [
        Unit("48", "province", None, "Đà Nẵng", "Thành phố Đà Nẵng", "Da Nang", "Thành phố"),
        Unit("20194", "commune", "48", "Hải Vân", "Phường Hải Vân", "Hai Van", "Phường"),
        Unit("01", "province", None, "Hà Nội", "Thành phố Hà Nội", "Ha Noi", "Thành phố"),
        Unit("00004", "commune", "01", "Ba Đình", "Phường Ba Đình", "Ba Dinh", "Phường"),
    ]
    return Hierarchy(levels, units)


def count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def test_migration_creates_the_tables_once(engine: Engine, clock: FakeClock) -> None:
    actions = AlertActions(engine, clock)
    assert actions.migrate() == [1, 2]
    assert AlertActions(engine, clock).migrate() == []  # a restart: nothing to do
    assert applied_versions(engine, "alert_actions") == [1, 2]
    for table in ("alert_acknowledgements", "alert_silences", "alert_notes", "audit_log"):
        assert count(engine, table) == 0


def test_a_version_1_database_gets_the_notes_and_keeps_its_rows(
    engine: Engine, clock: FakeClock
) -> None:
    assert migrate(engine, COMPONENT, MIGRATIONS[:1], clock) == [1]  # the release before
    AlertActions(engine, clock).acknowledge("pm25-bad", "20194", 1, "nguyenvana")
    actions = AlertActions(engine, clock)
    assert actions.migrate() == [2]
    assert applied_versions(engine, "alert_actions") == [1, 2]
    key = AckKey("pm25-bad", "20194", 1)
    assert actions.acks([key])[key].acked_by == "nguyenvana"
    note = actions.add_note(*key, actor="nguyenvana", text="đã xử lý")
    assert actions.notes([key]) == {key: [note]}


def test_acknowledge_withdraw_and_history(
    actions: AlertActions, engine: Engine, clock: FakeClock
) -> None:
    key = AckKey("pm25-bad", "20194", 3)
    first = actions.acknowledge(*key, actor="nguyenvana", comment="  đang kiểm tra  ")
    assert first.comment == "đang kiểm tra"
    assert first.acked_at == clock.now()
    clock.advance(60)
    second = actions.acknowledge(*key, actor="tranthib", comment="đã báo đội môi trường")
    other = AckKey("pm25-bad", "20194", 2)  # an earlier episode is another thing
    assert actions.acks([key, other, ("flood-alarm-3", "20194", 3)]) == {key: second}

    clock.advance(60)
    assert actions.unacknowledge(*key, actor="nguyenvana", comment="nhầm") is True
    assert actions.acks([key]) == {}
    # Withdrawn twice is nothing to withdraw, and is not audited.
    assert actions.unacknowledge(*key, actor="nguyenvana") is False
    # Kept for the record, marked withdrawn, by whom and when.
    with engine.connect() as connection:
        rows = connection.execute(
            select(acknowledgements.c.acked_by, acknowledgements.c.withdrawn_by).order_by(
                acknowledgements.c.id
            )
        ).all()
        withdrawn_at = connection.execute(
            select(func.max(acknowledgements.c.withdrawn_at))
        ).scalar_one()
    assert [tuple(row) for row in rows] == [
        ("nguyenvana", "nguyenvana"),
        ("tranthib", "nguyenvana"),
    ]
    assert withdrawn_at == clock.now()
    # After a withdrawal a new acknowledgement is current again.
    third = actions.acknowledge(*key, actor="tranthib")
    assert actions.acks([key]) == {key: third}

    entries = actions.audit()
    assert [(e.action, e.actor, e.target) for e in entries] == [
        ("ack", "tranthib", "pm25-bad/20194"),
        ("unack", "nguyenvana", "pm25-bad/20194"),
        ("ack", "tranthib", "pm25-bad/20194"),
        ("ack", "nguyenvana", "pm25-bad/20194"),
    ]
    assert entries[1].detail == {"episode": 3, "comment": "nhầm"}
    assert [e.action for e in actions.audit(actor="nguyenvana")] == ["unack", "ack"]
    assert len(actions.audit(limit=1)) == 1


def test_notes_on_episodes_kept_in_order_and_audited(
    actions: AlertActions, engine: Engine, clock: FakeClock
) -> None:
    resolved = AckKey("pm25-bad", "20194", 1)
    current = AckKey("pm25-bad", "20194", 2)
    first = actions.add_note(*resolved, actor="nguyenvana", text="  Đã cử đội kiểm tra  ")
    assert (first.key, first.author, first.at, first.text) == (
        resolved,
        "nguyenvana",
        clock.now(),
        "Đã cử đội kiểm tra",
    )
    clock.advance(600)
    second = actions.add_note(
        *resolved, actor="tranthib", text="Nguồn khói từ bãi rác Khánh Sơn, đã dập"
    )
    third = actions.add_note(*current, actor="tranthib", text="lại có khói")
    found = actions.notes([resolved, current, ("flood-alarm-3", "20194", 1)])
    assert found == {resolved: [first, second], current: [third]}
    assert actions.notes([]) == {}
    # Acknowledgements are another thing: a note acknowledges nothing.
    assert actions.acks([resolved, current]) == {}

    entries = actions.audit(action="note")
    assert [(e.actor, e.target) for e in entries] == [
        ("tranthib", "pm25-bad/20194"),
        ("tranthib", "pm25-bad/20194"),
        ("nguyenvana", "pm25-bad/20194"),
    ]
    assert entries[-1].detail == {"episode": 1, "note_id": first.id, "text": "Đã cử đội kiểm tra"}
    assert entries[-1].at == first.at
    with engine.connect() as connection:
        rows = connection.execute(select(notes.c.episode, notes.c.text).order_by(notes.c.id)).all()
    assert [tuple(row) for row in rows] == [
        (1, "Đã cử đội kiểm tra"),
        (1, "Nguồn khói từ bãi rác Khánh Sơn, đã dập"),
        (2, "lại có khói"),
    ]


@pytest.mark.parametrize(
    ("episode", "actor", "text", "message"),
    [
        (1, "nguyenvana", "   ", "the note's text is required"),
        (1, "nguyenvana", "x" * 1001, "note is longer than 1000 characters"),
        (0, "nguyenvana", "x", "episode must be a positive integer"),
        (1, " ", "x", "the actor is required"),
    ],
)
def test_note_refuses_bad_input(
    actions: AlertActions, engine: Engine, episode: int, actor: str, text: str, message: str
) -> None:
    with pytest.raises(InvalidAction, match=message):
        actions.add_note("pm25-bad", "20194", episode, actor, text)
    assert count(engine, "alert_notes") == 0
    assert count(engine, "audit_log") == 0


def test_acknowledge_refuses_bad_input(actions: AlertActions, engine: Engine) -> None:
    with pytest.raises(InvalidAction, match="episode must be a positive integer"):
        actions.acknowledge("pm25-bad", "20194", 0, "nguyenvana")
    with pytest.raises(InvalidAction, match="the unit code is required"):
        actions.acknowledge("pm25-bad", " ", 1, "nguyenvana")
    with pytest.raises(InvalidAction, match="the actor is required"):
        actions.acknowledge("pm25-bad", "20194", 1, "")
    with pytest.raises(InvalidAction, match="longer than 1000 characters") as raised:
        actions.acknowledge("pm25-bad", "20194", 1, "nguyenvana", "x" * 1001)
    assert raised.value.in_lang("vi") == "ghi chú dài quá 1000 ký tự"
    assert count(engine, "alert_acknowledgements") == 0
    assert count(engine, "audit_log") == 0


def test_silences_start_end_cancel_and_cover(
    actions: AlertActions, engine: Engine, clock: FakeClock
) -> None:
    now = clock.now()
    city = actions.silence("unit", "48", now + timedelta(hours=4), "bảo trì trạm", "nguyenvana")
    device = actions.silence("device", "aq-0001", now + timedelta(hours=1), "thay pin", "tranthib")
    later = actions.silence(
        "rule",
        "flood-alarm-3",
        now + timedelta(days=2),
        "diễn tập",
        "root",
        starts_at=now + timedelta(days=1),
    )
    assert (city.starts_at, city.created_at, city.author) == (now, now, "nguyenvana")
    assert [s.id for s in actions.active_silences()] == [device.id, city.id]  # ending first
    assert [s.id for s in actions.active_silences(now + timedelta(days=1, hours=1))] == [later.id]

    units = hierarchy()
    # A unit silence covers what is inside it, given the hierarchy; only itself without.
    assert actions.silenced("pm25-bad", "20194", hierarchy=units) == city
    assert actions.silenced("pm25-bad", "20194") is None
    assert actions.silenced("pm25-bad", "48") == city
    assert actions.silenced("pm25-bad", "00004", hierarchy=units) is None
    assert actions.silenced("pm25-bad", "99999", hierarchy=units) is None  # unknown code
    assert actions.silenced("pm25-bad", "00004", "aq-0001", units) == device
    assert actions.silenced("flood-alarm-3", "00004", hierarchy=units) is None  # not yet

    clock.advance(1800)
    cancelled = actions.cancel_silence(city.id, "tranthib")
    assert (cancelled.cancelled_at, cancelled.cancelled_by) == (clock.now(), "tranthib")
    assert actions.get_silence(city.id) == cancelled
    assert actions.silenced("pm25-bad", "48") is None
    with pytest.raises(InvalidAction, match=f"silence {city.id} is over"):
        actions.cancel_silence(city.id, "tranthib")
    with pytest.raises(NoSuchSilence, match="there is no silence 999"):
        actions.cancel_silence(999, "tranthib")
    clock.advance(3600)  # the device silence ended on its own
    assert actions.silenced("pm25-bad", "00004", "aq-0001", units) is None
    with pytest.raises(InvalidAction, match="is over"):
        actions.cancel_silence(device.id, "tranthib")

    entries = actions.audit()
    assert [(e.action, e.target) for e in entries] == [
        ("cancel_silence", "unit:48"),
        ("silence", "rule:flood-alarm-3"),
        ("silence", "device:aq-0001"),
        ("silence", "unit:48"),
    ]
    assert entries[-1].detail["reason"] == "bảo trì trạm"
    assert entries[-1].detail["silence_id"] == city.id


@pytest.mark.parametrize(
    ("kind", "target", "hours", "reason", "message"),
    [
        ("street", "48", 1, "x", "kind must be unit, device or rule: 'street'"),
        ("unit", "48", 1, "   ", "a reason is required"),
        ("unit", "", 1, "x", "the silence target is required"),
        ("unit", "48", -1, "x", "the end must be after the start"),
        ("unit", "48", 0, "x", "the end must be after the start"),
        ("unit", "48", 24 * 91, "x", "90 days at most"),
    ],
)
def test_silence_refuses_bad_input(
    actions: AlertActions,
    engine: Engine,
    clock: FakeClock,
    kind: str,
    target: str,
    hours: int,
    reason: str,
    message: str,
) -> None:
    with pytest.raises(InvalidAction, match=message):
        actions.silence(kind, target, clock.now() + timedelta(hours=hours), reason, "root")
    assert count(engine, "alert_silences") == 0
    assert count(engine, "audit_log") == 0


def test_silence_end_before_its_own_start_and_naive_times(
    actions: AlertActions, clock: FakeClock
) -> None:
    now = clock.now()
    with pytest.raises(InvalidAction, match="after the start") as raised:
        actions.silence(
            "unit", "48", now + timedelta(hours=2), "x", "root", starts_at=now + timedelta(hours=3)
        )
    assert "giờ kết thúc phải sau giờ bắt đầu" in str(raised.value)
    with pytest.raises(InvalidAction, match="needs a time zone"):
        actions.silence("unit", "48", datetime(2026, 11, 3, 8, 0), "x", "root")


def test_audit_is_in_the_same_transaction(
    actions: AlertActions, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the audit row cannot be written, the action is not recorded either."""

    def broken_audit(*args: object, **kwargs: object) -> None:
        with engine.connect() as other:  # prove the insert was not committed on its own
            assert other.execute(select(func.count()).select_from(silences)).scalar_one() == 0
        raise RuntimeError("audit down")

    monkeypatch.setattr(actions, "_audit", broken_audit)
    with pytest.raises(RuntimeError, match="audit down"):
        actions.silence("unit", "48", datetime(2026, 11, 3, tzinfo=UTC), "x", "root")
    with pytest.raises(RuntimeError, match="audit down"):
        actions.acknowledge("pm25-bad", "20194", 1, "root")
    with pytest.raises(RuntimeError, match="audit down"):
        actions.add_note("pm25-bad", "20194", 1, "root", "đã xử lý")
    assert count(engine, "alert_silences") == 0
    assert count(engine, "alert_acknowledgements") == 0
    assert count(engine, "alert_notes") == 0
    assert count(engine, "audit_log") == 0


def test_two_migrators_at_once(url: str) -> None:
    engines = [make_engine(url) for _ in range(2)]
    drop_all(engines[0])
    start = threading.Barrier(len(engines))
    results: list[list[int] | BaseException] = []

    def run(engine: Engine) -> None:
        start.wait()
        try:
            results.append(AlertActions(engine).migrate())
        except BaseException as exc:  # reported below, not lost in the thread
            results.append(exc)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not [r for r in results if isinstance(r, BaseException)], results
        # Each step applied by one of them (each step takes the lock on its own, so one
        # may apply step 1 and the other step 2).
        applied = [version for done in results for version in done]  # type: ignore[union-attr]
        assert sorted(applied) == [1, 2]
        with engines[0].connect() as connection:
            versions = connection.execute(
                select(schema_migrations.c.version).where(
                    schema_migrations.c.component == "alert_actions"
                )
            ).scalars()
            assert sorted(versions) == [1, 2]  # each applied once
        # Both processes can work on the tables at once afterwards.
        AlertActions(engines[1]).acknowledge("pm25-bad", "20194", 1, "root")
        assert AlertActions(engines[0]).acks([("pm25-bad", "20194", 1)])
    finally:
        drop_all(engines[0])
        for engine in engines:
            engine.dispose()


def test_database_errors_are_retryable(tmp_path: Path, clock: FakeClock) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    actions = AlertActions(engine, clock)  # not migrated: the tables are missing
    with pytest.raises(RetryableError, match="could not read the silences"):
        actions.active_silences()
    with pytest.raises(RetryableError, match="could not record an acknowledgement"):
        actions.acknowledge("pm25-bad", "20194", 1, "root")
    with pytest.raises(RetryableError, match="could not record a note"):
        actions.add_note("pm25-bad", "20194", 1, "root", "x")
    with pytest.raises(RetryableError, match="could not read notes"):
        actions.notes([("pm25-bad", "20194", 1)])
    engine.dispose()


def test_history_and_silence_release_queries(
    engine: Engine, clock: FakeClock, actions: AlertActions
) -> None:
    """The console's history (a self-join of the log) and the release of held e-mails (row
    values IN) on this database."""
    repo_dir = Path(__file__).resolve().parents[2]
    settings = load_settings(repo_dir / "config.yaml", environ={})
    units = Hierarchy.from_csv(
        settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
    )
    AlertRepository(engine).create_schema()
    try:
        now = clock.now()
        add_state(engine, "pm25-bad", "20194", "firing", fired_at=now, episode=2)
        add_log(engine, "pm25-bad", "20194", 1, "firing", now - timedelta(hours=3))
        add_log(engine, "pm25-bad", "20194", 1, "resolved", now - timedelta(hours=2))
        add_log(engine, "pm25-bad", "20194", 2, "firing", now, status="silenced")
        add_log(engine, "pm25-bad", "20260", 1, "firing", now - timedelta(hours=1))
        source = AlertSource(engine, settings, units, clock, TZ)
        officer = Access(units, ["20194"], role="operator", username="hai-van")
        frame = alert_history(source, officer, HistoryFilter(unit="48"))
        assert list(zip(frame["episode"], frame["status"], strict=True)) == [
            (2, "open"),
            (1, "resolved"),
        ]
        assert frame["duration_s"].iloc[1] == 3600
        released = Silencing(engine, units, clock).release()
        assert released == {"pending": [3], "suppressed": []}  # no silence: it still fires
    finally:
        drop_all(engine)
