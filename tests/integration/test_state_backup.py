"""`cityops state backup|restore|upgrade|info` on a real SQLite file and a real PostgreSQL
database: state written through the project's own code comes back exactly, a backup taken
while a writer keeps inserting is consistent, an older backup is upgraded on restore, and
restore refuses what it must."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, MetaData, func, insert, inspect, select, text
from typer.testing import CliRunner

from alerts import delivery_tables
from alerts.evaluate import Result
from alerts.repository import AlertRepository
from alerts.state import AlertKey, transition
from core import backup as backup_module
from core.cli import app
from core.db import make_engine
from core.migrate import migrate
from core.types import DeadLetter
from dashboard import users as users_module
from dashboard.users import UserStore
from dashboard.wall_links import WallLinks
from ingest.deadletter import SqlDeadLetterStore, dead_letters

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "config.yaml")
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
PASSWORD = "mật-khẩu-đủ-dài-123"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'state.sqlite'}"
    found: str = request.getfixturevalue("postgres_url")
    # One database per module: each test starts from an empty one.
    engine = make_engine(found)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()
    return found


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    built = make_engine(url)
    yield built
    built.dispose()


def cityops(url: str, *args: str) -> tuple[int, str, str]:
    runner = CliRunner(env={"CITYOPS_DATABASE__URL": url})
    result = runner.invoke(app, [*args, "--config", CONFIG])
    return result.exit_code, result.stdout, result.stderr


def everything(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, by table name."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {
            name: sorted(tuple(row) for row in connection.execute(select(table)))
            for name, table in metadata.tables.items()
        }


def fill(engine: Engine) -> None:
    """Users (the store behind cityops users add), a dead letter, an alert state and a wall
    link. (Not the users command itself: it leaves its PostgreSQL connections open.)"""
    people = UserStore(engine)
    people.add("nguyenvana", PASSWORD, "operator", ["48"])
    people.add("root", PASSWORD, "admin", [])
    letters = SqlDeadLetterStore(engine)
    letters.put(DeadLetter(T0, "cityops/air/x1", b"\x00\xffnot json", "bad_json: line 1"))
    repository = AlertRepository(engine)
    repository.create_schema()
    moved = transition(None, Result("breach", 92.4), T0, 0, key=AlertKey("pm25-bad", "20194"))
    repository.save([moved], [], now=T0)
    links = WallLinks(engine)
    links.migrate()
    links.create("phong-dieu-hanh", "admin")


def test_backup_change_restore_gives_the_backed_up_rows(
    url: str, engine: Engine, tmp_path: Path
) -> None:
    fill(engine)
    saved = everything(engine)
    for name in ("users", "user_units", "dead_letters", "alert_states", "wall_links"):
        assert saved[name], f"{name} should have rows"
    backup_file = tmp_path / "backups" / "state.bak"

    code, out, err = cityops(url, "state", "backup", "--to", str(backup_file))
    assert code == 0, err
    assert "users 3, alerts 2, alert_actions 0, walls 1, reports 0" in out
    manifest = json.loads(backup_file.with_name("state.bak.json").read_text())
    assert manifest["engine"] == engine.dialect.name
    assert manifest["schema_versions"] == {"users": 3, "alerts": 2, "walls": 1}
    assert manifest["row_counts"]["users"] == 2
    assert manifest["row_counts"]["dead_letters"] == 1
    assert manifest["cityops_version"]
    assert datetime.fromisoformat(manifest["created_at"]).utcoffset() == timedelta(0)

    # Change, delete and add after the backup.
    assert UserStore(engine).disable("nguyenvana")
    UserStore(engine).add("tranthib", PASSWORD, "viewer", ["48"])
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM dead_letters"))
        connection.execute(text("UPDATE alert_states SET state = 'ok'"))
    assert everything(engine) != saved

    code, out, err = cityops(url, "state", "restore", "--from", str(backup_file), "--yes")
    assert code == 0, err
    assert "in the backup: users 3, alerts 2, alert_actions 0, walls 1, reports 0" in out
    assert "after upgrade: users 3, alerts 2, alert_actions 2, walls 1, reports 1" in out
    engine.dispose()
    restored = everything(engine)
    migrations = restored.pop("schema_migrations")
    assert {name: rows for name, rows in restored.items() if name in saved} == {
        name: rows for name, rows in saved.items() if name != "schema_migrations"
    }
    # The restore ran the migrations the backup did not have yet, and only those.
    assert {(c, v) for c, v, _ in migrations} - {
        (c, v) for c, v, _ in saved["schema_migrations"]
    } == {
        ("alert_actions", 1),
        ("alert_actions", 2),
        ("reports", 1),
    }
    # Sequences/autoincrement come back too: the next user does not collide.
    assert UserStore(engine).add("lethic", PASSWORD, "viewer", ["48"]).id == 3

    code, out, _ = cityops(url, "state", "info")
    assert code == 0
    assert f"engine: {engine.dialect.name}" in out
    assert "users 3, alerts 2, alert_actions 2, walls 1, reports 1" in out
    assert [line.split() for line in out.splitlines() if line.split()[:1] == ["users"]] == [
        ["users", "3"]
    ]


def test_restore_refuses_a_database_with_data_without_yes(
    url: str, engine: Engine, tmp_path: Path
) -> None:
    fill(engine)
    backup_file = tmp_path / "state.bak"
    assert cityops(url, "state", "backup", "--to", str(backup_file))[0] == 0
    UserStore(engine).add("tranthib", PASSWORD, "viewer", ["48"])
    before = everything(engine)

    code, out, err = cityops(url, "state", "restore", "--from", str(backup_file))
    assert code == 1
    assert "has 8 rows that the restore would replace: add --yes" in err
    replaced = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()[1:]}
    assert replaced == {
        "alert_states": 1,
        "dead_letters": 1,
        "user_units": 2,
        "users": 3,
        "wall_links": 1,
    }
    assert everything(engine) == before


def test_an_older_backup_is_upgraded_on_restore(url: str, engine: Engine, tmp_path: Path) -> None:
    # The release before: users and alerts at version 1 (no e-mail column, no outbox).
    migrate(engine, "users", users_module.MIGRATIONS[:1])
    migrate(engine, "alerts", delivery_tables.MIGRATIONS[:1])
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (username, password_hash, role, language, disabled, "
                "created_at) VALUES ('cu', 'x', 'admin', 'vi', false, '2025-01-02 03:04:05')"
            )
        )
    code, out, _ = cityops(url, "state", "upgrade", "--check")
    assert code == 1
    assert "users: 1 (pending 2, 3)" in out
    backup_file = tmp_path / "old.bak"
    assert cityops(url, "state", "backup", "--to", str(backup_file))[0] == 0
    # Then the new release is installed and upgraded (alert_deliveries now refers to
    # notification_log), and the old backup is restored over it.
    code, out, err = cityops(url, "state", "upgrade")
    assert code == 0, err
    assert "users: 1 → 3 (applied 2, 3)" in out
    assert cityops(url, "state", "upgrade", "--check")[0] == 0
    fill(engine)

    code, out, err = cityops(url, "state", "restore", "--from", str(backup_file), "--yes")
    assert code == 0, err
    assert "in the backup: users 1, alerts 1, alert_actions 0, walls 0, reports 0" in out
    assert "after upgrade: users 3, alerts 2, alert_actions 2, walls 1, reports 1" in out
    engine.dispose()
    found = inspect(engine)
    assert "email" in {column["name"] for column in found.get_columns("users")}
    assert "alert_emails" in found.get_table_names()
    rows = everything(engine)
    assert [(row[1], row[-1]) for row in rows["users"]] == [("cu", None)]  # email added, empty
    # Exactly the backup: tables it did not have are gone (the services create
    # dead_letters again when they start), the migrated ones are new and empty.
    assert "dead_letters" not in rows
    assert rows["wall_links"] == []


def test_backup_while_a_writer_inserts_is_consistent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    engine = make_engine(url)
    store = SqlDeadLetterStore(engine)
    payload = bytes(range(256)) * 8
    with engine.begin() as connection:  # ~40 MB, so the copy takes a while
        connection.execute(
            insert(dead_letters),
            [
                {"received_at": T0, "topic": f"t/{i}", "payload": payload, "reason": "seed"}
                for i in range(20_000)
            ],
        )
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        while not stop.is_set():
            store.put(DeadLetter(T0, f"w/{len(written)}", payload, "during backup"))
            written.append(1)

    def count() -> int:
        with engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(dead_letters)).scalar_one()
            )

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while not written:
            stop.wait(0.01)
        before = count()
        code, _, err = cityops(url, "state", "backup", "--to", str(tmp_path / "hot.bak"))
        after = count()
    finally:
        stop.set()
        thread.join()
    engine.dispose()
    assert code == 0, err
    assert after > before  # the writer went on while the backup ran
    with sqlite3.connect(tmp_path / "hot.bak") as copy:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        in_copy = copy.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert before <= in_copy <= after
    manifest = json.loads((tmp_path / "hot.bak.json").read_text())
    assert manifest["row_counts"]["dead_letters"] == in_copy


def test_restore_refuses_a_postgresql_dump_into_sqlite(postgres_url: str, tmp_path: Path) -> None:
    engine = make_engine(postgres_url)
    SqlDeadLetterStore(engine).put(DeadLetter(T0, "t", b"x", "r"))
    engine.dispose()
    dump = tmp_path / "pg.dump"
    code, _, err = cityops(postgres_url, "state", "backup", "--to", str(dump))
    assert code == 0, err
    sqlite_url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    code, _, err = cityops(sqlite_url, "state", "restore", "--from", str(dump), "--yes")
    assert code == 1
    assert f"{dump} is a postgresql backup but database.url is sqlite" in err
    assert not (tmp_path / "state.sqlite").exists() or everything(make_engine(sqlite_url)) == {}


def test_bad_from_path_exits_1_naming_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    missing = tmp_path / "khong-co" / "state.bak"
    code, _, err = cityops(url, "state", "restore", "--from", str(missing), "--yes")
    assert code == 1
    assert f"no backup file at {missing}" in err
    assert len(err.strip().splitlines()) == 1
    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello")
    code, _, err = cityops(url, "state", "restore", "--from", str(not_a_backup), "--yes")
    assert code == 1
    assert f"{not_a_backup} is neither an SQLite database nor a pg_dump custom archive" in err


def test_the_password_goes_to_pg_dump_in_the_environment_only(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shutil.which("pg_dump")
    assert real is not None
    spy = tmp_path / "bin" / "pg_dump"
    spy.parent.mkdir()
    spy.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$@\" >> {tmp_path}/argv\n"
        f"printf '%s' \"$PGPASSWORD\" > {tmp_path}/password\n"
        f'exec {real} "$@"\n'
    )
    spy.chmod(0o755)
    monkeypatch.setenv("PATH", f"{spy.parent}{os.pathsep}{os.environ['PATH']}")
    password = quote("Bi-mật-42", safe="")
    with_password = postgres_url.replace("://postgres@", f"://postgres:{password}@")
    code, out, err = cityops(with_password, "state", "backup", "--to", str(tmp_path / "pg.dump"))
    assert code == 0, err
    assert "Bi-mật-42" not in out + err
    assert "postgres:***@" in out
    assert (tmp_path / "password").read_text() == "Bi-mật-42"
    argv = (tmp_path / "argv").read_text()
    assert "--format=custom" in argv
    assert "Bi-m" not in argv


def test_a_pg_dump_older_than_the_server_is_refused(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "bin" / "pg_dump"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    old.chmod(0o755)
    monkeypatch.setenv("PATH", str(old.parent))
    monkeypatch.setattr(backup_module, "PG_LIB", tmp_path / "no-lib")
    code, _, err = cityops(postgres_url, "state", "backup", "--to", str(tmp_path / "pg.dump"))
    assert code == 1
    assert "pg_dump is older than the PostgreSQL server" in err
    assert "(9)" in err
    assert "install postgresql-client-" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pg.dump").exists()


def test_info_on_a_mistyped_sqlite_path_fails_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "stat.sqlite"  # "state" mistyped
    code, _, err = cityops(f"sqlite:///{missing}", "state", "info")
    assert code == 1
    assert f"{missing}: no such database file" in err
    assert not missing.exists()
