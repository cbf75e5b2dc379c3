"""The migration runner and UserStore on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, func, select, text

from core.db import make_engine
from core.migrate import MigrationError, applied_versions, migrate, schema_migrations
from dashboard import users as users_module
from dashboard.users import MIGRATIONS, PasswordTooShortError, UserExistsError, UserStore
from tests.conftest import FakeClock

pytestmark = pytest.mark.integration

PASSWORD = "một-mật-khẩu-dài"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    found: str = request.getfixturevalue("postgres_url")
    return found


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    yield engine
    with engine.begin() as connection:
        for table in ("user_units", "users", "schema_migrations", "widgets"):
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    engine.dispose()


def create_widgets(connection: Connection) -> None:
    connection.exec_driver_sql("CREATE TABLE widgets (id INTEGER PRIMARY KEY)")


def add_colour(connection: Connection) -> None:
    connection.exec_driver_sql("ALTER TABLE widgets ADD COLUMN colour TEXT")


def versions(engine: Engine, component: str) -> list[tuple[int, int]]:
    """(version, how many rows) for a component."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(schema_migrations.c.version, func.count())
            .where(schema_migrations.c.component == component)
            .group_by(schema_migrations.c.version)
            .order_by(schema_migrations.c.version)
        )
        return [(int(version), int(count)) for version, count in rows]


def test_migrate_applies_missing_steps_once(engine: Engine, clock: FakeClock) -> None:
    assert migrate(engine, "widgets", [create_widgets], clock) == [1]
    assert migrate(engine, "widgets", [create_widgets], clock) == []  # no-op
    assert migrate(engine, "widgets", [create_widgets, add_colour], clock) == [2]
    assert migrate(engine, "widgets", [create_widgets, add_colour], clock) == []
    assert versions(engine, "widgets") == [(1, 1), (2, 1)]
    assert applied_versions(engine, "widgets") == [1, 2]
    assert applied_versions(engine, "other") == []
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO widgets (id, colour) VALUES (1, 'đỏ')")
        applied_at = connection.execute(select(schema_migrations.c.applied_at)).scalars().first()
    assert applied_at == clock.now()


def test_a_failing_step_leaves_neither_its_change_nor_its_row(engine: Engine) -> None:
    def half_then_fail(connection: Connection) -> None:
        connection.exec_driver_sql("ALTER TABLE widgets ADD COLUMN colour TEXT")
        raise RuntimeError("boom")

    migrate(engine, "widgets", [create_widgets])
    with pytest.raises(RuntimeError, match="boom"):
        migrate(engine, "widgets", [create_widgets, half_then_fail])
    assert applied_versions(engine, "widgets") == [1]
    # The column was rolled back with the step, so the real step 2 applies cleanly.
    assert migrate(engine, "widgets", [create_widgets, add_colour]) == [2]


def test_a_database_newer_than_the_code_is_refused(engine: Engine) -> None:
    migrate(engine, "widgets", [create_widgets, add_colour])
    with pytest.raises(MigrationError, match="version 2 but this cityops knows only 1"):
        migrate(engine, "widgets", [create_widgets])


def test_user_store_round_trip(engine: Engine, clock: FakeClock) -> None:
    store = UserStore(engine, clock)
    added = store.add("NguyenVanA", PASSWORD, "operator", ["48", "20194", "48"], "en")
    assert added.username == "nguyenvana"
    assert added.units == ("20194", "48")
    store.add("tranthib", PASSWORD + "2", "viewer", ["01"])
    store.add("root", PASSWORD + "3", "admin", [])
    got = store.get("nguyenvana")
    assert got == added
    assert got is not None
    assert got.created_at == clock.now()
    assert [(u.username, u.role, u.units, u.language) for u in store.list()] == [
        ("nguyenvana", "operator", ("20194", "48"), "en"),
        ("root", "admin", (), "vi"),
        ("tranthib", "viewer", ("01",), "vi"),
    ]
    with pytest.raises(UserExistsError, match="nguyenvana"):
        store.add("nguyenvana", PASSWORD, "viewer", ["01"])
    with pytest.raises(ValueError, match=r"role must be one of .*: 'boss'"):
        store.add("x1", PASSWORD, "boss", ["01"])
    with pytest.raises(ValueError, match="needs at least one unit"):
        store.add("x2", PASSWORD, "viewer", [])
    with pytest.raises(PasswordTooShortError):
        store.add("x3", "short", "viewer", ["01"])
    assert [u.username for u in store.list()] == ["nguyenvana", "root", "tranthib"]
    # Stored hashed, never in clear.
    with engine.connect() as connection:
        hashes = connection.execute(text("SELECT password_hash FROM users")).scalars().all()
    assert all(h.startswith("scrypt$16384$8$1$") and PASSWORD not in h for h in hashes)


def test_verify_and_disable(engine: Engine) -> None:
    store = UserStore(engine)
    store.add("nguyenvana", PASSWORD, "leader", ["48"])
    verified = store.verify("NguyenVanA ", PASSWORD)
    assert verified is not None
    assert verified.role == "leader"
    assert store.verify("nguyenvana", PASSWORD + "!") is None
    assert store.verify("nobody", PASSWORD) is None
    assert store.verify("", PASSWORD) is None
    assert store.disable("nguyenvana") is True
    assert store.verify("nguyenvana", PASSWORD) is None
    disabled = store.get("nguyenvana")
    assert disabled is not None
    assert disabled.disabled
    assert store.disable("nobody") is False


def test_unknown_and_disabled_users_cost_a_hash_too(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = UserStore(engine)
    store.add("nguyenvana", PASSWORD, "leader", ["48"])
    store.add("tranthib", PASSWORD, "leader", ["48"])
    store.disable("tranthib")
    checked: list[str] = []
    real = users_module.verify_password

    def counting(password: str, encoded: str) -> bool:
        checked.append(encoded.split("$")[0])
        return real(password, encoded)

    monkeypatch.setattr(users_module, "verify_password", counting)
    for name in ("nguyenvana", "nobody", "tranthib", "not a valid name!"):
        store.verify(name, PASSWORD)
    assert checked == ["scrypt"] * 4


def test_user_store_migrates_once_across_restarts(engine: Engine) -> None:
    UserStore(engine).add("nguyenvana", PASSWORD, "viewer", ["48"])
    again = UserStore(engine)  # a restart: the migration is a no-op, the data stays
    assert [u.username for u in again.list()] == ["nguyenvana"]
    assert versions(engine, "users") == [(v, 1) for v in range(1, len(MIGRATIONS) + 1)]


def test_two_processes_migrating_at_once_both_succeed(url: str) -> None:
    engines = [make_engine(url) for _ in range(4)]
    start = threading.Barrier(len(engines))
    results: list[list[int] | BaseException] = []

    def slow_create(connection: Connection) -> None:
        # Long enough that the other migrators certainly arrive while it holds the lock.
        time.sleep(0.3)
        create_widgets(connection)

    def run(engine: Engine) -> None:
        start.wait()
        try:
            results.append(migrate(engine, "widgets", [slow_create, add_colour]))
        except BaseException as exc:  # reported below, not lost in the thread
            results.append(exc)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not [r for r in results if isinstance(r, BaseException)], results
        # Each step is its own transaction, so two migrators may share the work: what
        # matters is that every version is applied exactly once.
        applied = [version for result in results if isinstance(result, list) for version in result]
        assert sorted(applied) == [1, 2]
        assert versions(engines[0], "widgets") == [(1, 1), (2, 1)]
    finally:
        with engines[0].begin() as connection:
            for table in ("widgets", "schema_migrations"):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        for engine in engines:
            engine.dispose()


def test_a_leader_has_an_email_address_for_the_weekly_report(engine: Engine) -> None:
    store = UserStore(engine)
    store.add("lanh-dao", PASSWORD, "leader", ["48"], email="lanhdao@danang.gov.vn")
    store.add("nguyenvana", PASSWORD, "viewer", ["48"])
    assert {u.username: u.email for u in store.list()} == {
        "lanh-dao": "lanhdao@danang.gov.vn",
        "nguyenvana": None,
    }
    with pytest.raises(ValueError, match="email must be an e-mail address"):
        store.add("tranthib", PASSWORD, "leader", ["48"], email="not-an-address")
