"""core/backup.py on real SQLite files and small stand-in PostgreSQL tools: the manifest
and its checks, pending migrations, finding pg_dump of the right version."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine

from core import backup as backup_module
from core.backup import (
    BackupError,
    Manifest,
    backup,
    find_pg_tool,
    manifest_path,
    pending,
    read_backup,
    upgrade,
)
from core.db import make_engine
from core.migrate import MigrationError, migrate
from dashboard import users
from tests.conftest import FakeClock

MIGRATIONS = {"users": users.MIGRATIONS}
NEWEST = len(users.MIGRATIONS)  # the users component's newest version


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")


def test_backup_writes_the_file_and_its_manifest(
    engine: Engine, tmp_path: Path, clock: FakeClock
) -> None:
    upgrade(engine, MIGRATIONS, clock)
    target = tmp_path / "b" / "c" / "state.bak"
    written = backup(engine, target, "9.9.9", clock)
    engine.dispose()
    assert target.read_bytes().startswith(b"SQLite format 3\x00")
    assert not list(target.parent.glob(".*partial"))
    on_disk = json.loads(manifest_path(target).read_text())
    assert on_disk["created_at"] == "2026-11-02T01:00:00+00:00"
    assert on_disk["schema_versions"] == {"users": NEWEST}
    assert on_disk["cityops_version"] == "9.9.9"
    assert read_backup(target) == written
    assert Manifest.from_json(written.to_json(), target) == written


def test_read_backup_checks_the_file_against_its_manifest(engine: Engine, tmp_path: Path) -> None:
    upgrade(engine, MIGRATIONS)
    target = tmp_path / "state.bak"
    backup(engine, target, "0.1.0")
    engine.dispose()
    sidecar = manifest_path(target)
    data = json.loads(sidecar.read_text())

    sidecar.write_text(json.dumps({**data, "engine": "postgresql"}))
    with pytest.raises(BackupError, match=r"says postgresql but .*state\.bak is a sqlite backup"):
        read_backup(target)
    sidecar.write_text(json.dumps({**data, "format_version": 7}))
    with pytest.raises(BackupError, match=r"format_version must be 1 .*: 7"):
        read_backup(target)
    sidecar.write_text(json.dumps({k: v for k, v in data.items() if k != "sha256"}))
    with pytest.raises(BackupError, match="missing or bad key 'sha256'"):
        read_backup(target)
    sidecar.write_text("{not json")
    with pytest.raises(BackupError, match=r"state\.bak\.json is not JSON"):
        read_backup(target)

    sidecar.write_text(json.dumps(data))
    with target.open("ab") as file:
        file.write(b"\x00")
    with pytest.raises(BackupError, match=r"does not match the SHA-256 .* damaged or changed"):
        read_backup(target)

    sidecar.unlink()  # without a manifest: the engine from the file, nothing checked
    found = read_backup(target)
    assert (found.engine, found.sha256, found.schema_versions) == ("sqlite", "", {})


def test_a_missing_database_file_is_named(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'none' / 'state.sqlite'}")
    with pytest.raises(BackupError, match=r"the SQLite database .*none/state\.sqlite does not"):
        backup(engine, tmp_path / "x.bak", "0.1.0")
    assert not (tmp_path / "x.bak").exists()
    assert not manifest_path(tmp_path / "x.bak").exists()


def test_pending_lists_missing_versions_and_refuses_a_newer_database(engine: Engine) -> None:
    assert pending(engine, MIGRATIONS) == {"users": list(range(1, NEWEST + 1))}
    migrate(engine, "users", users.MIGRATIONS[:1])
    assert pending(engine, MIGRATIONS) == {"users": list(range(2, NEWEST + 1))}
    assert upgrade(engine, MIGRATIONS) == {"users": list(range(2, NEWEST + 1))}
    assert pending(engine, MIGRATIONS) == {"users": []}
    with pytest.raises(
        MigrationError, match=f"users schema version {NEWEST} but this cityops knows only 1"
    ):
        pending(engine, {"users": users.MIGRATIONS[:1]})
    engine.dispose()


def fake_tool(folder: Path, name: str, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool


def test_find_pg_tool_takes_a_new_enough_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "lib"
    monkeypatch.setattr(backup_module, "PG_LIB", lib)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(BackupError, match=r"pg_dump not found on PATH or in .*lib/\*/bin"):
        find_pg_tool("pg_dump", 15)

    on_path = fake_tool(tmp_path / "bin", "pg_dump", "13.4 (Debian 13.4-1)")
    with pytest.raises(BackupError, match=r"older than the PostgreSQL server 15 .*\(13\)"):
        find_pg_tool("pg_dump", 15)
    fake_tool(lib / "14" / "bin", "pg_dump", "14.9")
    newest = fake_tool(lib / "16" / "bin", "pg_dump", "16.1")
    assert find_pg_tool("pg_dump", 15) == newest
    assert find_pg_tool("pg_dump", 13) == on_path
    assert os.access(newest, os.X_OK)
