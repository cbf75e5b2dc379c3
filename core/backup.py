"""Backup, restore and upgrade of the SQL state database (``cityops state``).

SQLite: sqlite3's online backup API in one step, so the copy is one consistent snapshot
while the services keep writing (WAL), then ``PRAGMA integrity_check`` on the copy.
PostgreSQL: ``pg_dump --format=custom`` inside an exported snapshot, so the schema
versions and row counts written beside it describe exactly what the dump holds.

Each backup FILE has a manifest FILE.json (engine, schema versions per component, row
counts, cityops version, UTC time, SHA-256) that restore checks. Restore replaces the
whole database with the backup; the caller then runs the migrations (``upgrade``) so an
older backup is brought up to this cityops. The migrations are passed in (core imports no
component): ``core/cli_state.py`` lists them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, func, inspect, select, table, text
from sqlalchemy.pool import NullPool

from core.clock import SystemClock
from core.errors import CityOpsError
from core.migrate import MigrationError, Step, migrate, schema_migrations
from core.ports import Clock

Migrations = Mapping[str, Sequence[Step]]

FORMAT = "cityops-state-backup"
FORMAT_VERSION = 1
PG_LIB = Path("/usr/lib/postgresql")
_MAGIC = {b"SQLite format 3\x00": "sqlite", b"PGDMP": "postgresql"}
_TOOL_TIMEOUT_S = 3600


class BackupError(CityOpsError):
    """A backup or restore cannot be done; the message is one line saying why."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a backup file is: written beside it as FILE.json, checked by restore."""

    engine: str  # "sqlite" or "postgresql"
    schema_versions: dict[str, int]
    row_counts: dict[str, int]
    cityops_version: str
    created_at: str  # ISO 8601, UTC
    sha256: str  # of the backup file; "" when no manifest was found
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text_: str, where: Path) -> Manifest:
        try:
            data = json.loads(text_)
        except ValueError as exc:
            raise BackupError(f"{where} is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BackupError(f"{where}: format must be {FORMAT!r}: {_get(data, 'format')!r}")
        if data.get("format_version") != FORMAT_VERSION:
            raise BackupError(
                f"{where}: format_version must be {FORMAT_VERSION} (a newer cityops made this "
                f"backup?): {data.get('format_version')!r}"
            )
        try:
            return cls(
                engine=str(data["engine"]),
                schema_versions={str(k): int(v) for k, v in data["schema_versions"].items()},
                row_counts={str(k): int(v) for k, v in data["row_counts"].items()},
                cityops_version=str(data["cityops_version"]),
                created_at=str(data["created_at"]),
                sha256=str(data["sha256"]),
            )
        except (KeyError, AttributeError, TypeError, ValueError) as exc:
            raise BackupError(f"{where}: missing or bad key {exc}") from exc


def _get(data: object, key: str) -> object:
    return data.get(key) if isinstance(data, dict) else None


def manifest_path(backup_file: Path) -> Path:
    return backup_file.with_name(backup_file.name + ".json")


def display_url(engine: Engine) -> str:
    """The database URL with the password hidden."""
    return engine.url.render_as_string(hide_password=True)


# -- what a database holds ---------------------------------------------------------------


def versions_of(connection: Connection) -> dict[str, int]:
    """The schema version of each component (empty for a database never migrated).
    Reads only: unlike ``core.migrate.applied_versions`` it creates nothing."""
    if not inspect(connection).has_table("schema_migrations"):
        return {}
    c = schema_migrations.c
    rows = connection.execute(select(c.component, func.max(c.version)).group_by(c.component))
    return {str(component): int(version) for component, version in rows}


def counts_of(connection: Connection) -> dict[str, int]:
    """Rows of every table, by table name."""
    names = sorted(inspect(connection).get_table_names())
    query = select(func.count())
    return {
        name: int(connection.execute(query.select_from(table(name))).scalar_one()) for name in names
    }


def describe(engine: Engine) -> tuple[dict[str, int], dict[str, int]]:
    """(schema versions, row counts) of the database, read in one transaction."""
    with engine.connect() as connection:
        return versions_of(connection), counts_of(connection)


def data_rows(counts: Mapping[str, int]) -> dict[str, int]:
    """The tables that hold data (the migrations' own table does not count)."""
    return {name: n for name, n in counts.items() if n and name != "schema_migrations"}


def pending(engine: Engine, migrations: Migrations) -> dict[str, list[int]]:
    """The versions each component still needs; raises MigrationError for a database
    newer than this cityops (as the migration runner would)."""
    with engine.connect() as connection:
        current = versions_of(connection)
    missing: dict[str, list[int]] = {}
    for component, steps in migrations.items():
        have = current.get(component, 0)
        if have > len(steps):
            raise MigrationError(
                f"the database has {component} schema version {have} but this cityops "
                f"knows only {len(steps)}: upgrade cityops, do not downgrade"
            )
        missing[component] = list(range(have + 1, len(steps) + 1))
    return missing


def upgrade(
    engine: Engine, migrations: Migrations, clock: Clock | None = None
) -> dict[str, list[int]]:
    """Run every component's migrations (core.migrate); the versions applied now."""
    return {c: migrate(engine, c, steps, clock) for c, steps in migrations.items()}


# -- backup --------------------------------------------------------------------------------


def backup(engine: Engine, to: Path, cityops_version: str, clock: Clock | None = None) -> Manifest:
    """Write a backup of the database to ``to`` and its manifest to ``to``.json. Both are
    written under temporary names and renamed at the end: a failed backup leaves no file
    that looks good."""
    now = (clock or SystemClock()).now()
    to.parent.mkdir(parents=True, exist_ok=True)
    partial = to.with_name(f".{to.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        if engine.dialect.name == "sqlite":
            versions, counts = _backup_sqlite(sqlite_path(engine), partial)
        elif engine.dialect.name == "postgresql":
            versions, counts = _backup_postgres(engine, partial)
        else:
            raise BackupError(f"database.url must be sqlite or postgresql: {engine.dialect.name}")
        manifest = Manifest(
            engine=engine.dialect.name,
            schema_versions=versions,
            row_counts=counts,
            cityops_version=cityops_version,
            created_at=now.isoformat(timespec="seconds"),
            sha256=_sha256(partial),
        )
        sidecar = manifest_path(to)
        sidecar_partial = sidecar.with_name(f".{sidecar.name}.partial")
        sidecar_partial.write_text(manifest.to_json(), encoding="utf-8")
        os.replace(partial, to)
        os.replace(sidecar_partial, sidecar)
    finally:
        partial.unlink(missing_ok=True)
    return manifest


def sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise BackupError("database.url is an in-memory SQLite database: there is no file")
    return Path(database)


def _integrity(connection: sqlite3.Connection, what: Path) -> None:
    problems = [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupError(f"PRAGMA integrity_check of {what} failed: {problems[0]}")


def _backup_sqlite(source: Path, copy: Path) -> tuple[dict[str, int], dict[str, int]]:
    if not source.is_file():
        raise BackupError(f"the SQLite database {source} does not exist (database.url)")
    try:
        with (
            closing(sqlite3.connect(source, timeout=30)) as src,
            closing(sqlite3.connect(copy)) as dst,
        ):
            # pages=-1: the whole database in one step, in one read transaction, so the
            # copy is one snapshot; in WAL mode writers go on meanwhile.
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            _integrity(dst, copy)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {source} failed: {exc}") from exc
    engine = create_engine(f"sqlite:///{copy}", poolclass=NullPool)
    try:
        return describe(engine)
    finally:
        engine.dispose()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- PostgreSQL tools ---------------------------------------------------------------------


def server_major(engine: Engine) -> int:
    with engine.connect() as connection:
        number = int(connection.execute(text("SHOW server_version_num")).scalar_one())
    return number // 10000


def _tool_major(path: Path) -> int | None:
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\)\s+(\d+)", done.stdout) or re.search(r"(\d+)\.\d+", done.stdout)
    return int(found[1]) if found else None


def find_pg_tool(name: str, min_major: int) -> Path:
    """``name`` (pg_dump, pg_restore, psql) of major version ``min_major`` or newer: the
    one on PATH, else the newest in /usr/lib/postgresql/*/bin."""
    on_path = shutil.which(name)
    versioned = sorted(
        PG_LIB.glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
        reverse=True,
    )
    candidates = ([Path(on_path)] if on_path else []) + versioned
    if not candidates:
        raise BackupError(
            f"{name} not found on PATH or in {PG_LIB}/*/bin: install postgresql-client-{min_major}"
        )
    found: list[str] = []
    for candidate in candidates:
        major = _tool_major(candidate)
        if major is not None and major >= min_major:
            return candidate
        found.append(f"{candidate} ({major or '?'})")
    raise BackupError(
        f"{name} is older than the PostgreSQL server {min_major} ({', '.join(found)}): "
        f"install postgresql-client-{min_major}"
    )


def _pg_env(engine: Engine) -> dict[str, str]:
    """libpq environment for the configured database: the password goes in PGPASSWORD,
    never on a command line (``ps`` shows those to every user)."""
    url = engine.url
    env = dict(os.environ)
    values: dict[str, Any] = {
        "PGHOST": url.query.get("host") or url.host,
        "PGPORT": url.port,
        "PGUSER": url.username,
        "PGDATABASE": url.database,
        "PGPASSWORD": url.password,
        "PGSSLMODE": url.query.get("sslmode"),
    }
    env.update({key: str(value) for key, value in values.items() if value})
    return env


def _run(command: list[str], env: dict[str, str], what: str, **kwargs: Any) -> None:
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S, **kwargs
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        raise BackupError(f"{what} failed (exit {done.returncode}): {_last_line(done.stderr)}")


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no message"])[0]


def _backup_postgres(engine: Engine, dump: Path) -> tuple[dict[str, int], dict[str, int]]:
    pg_dump = find_pg_tool("pg_dump", server_major(engine))
    with engine.connect() as connection:
        repeatable = connection.execution_options(isolation_level="REPEATABLE READ")
        with repeatable.begin():
            # The dump reads the snapshot this transaction reads: versions and counts
            # below describe exactly the rows in the dump.
            snapshot = str(repeatable.execute(text("SELECT pg_export_snapshot()")).scalar_one())
            versions, counts = versions_of(repeatable), counts_of(repeatable)
            command = [
                str(pg_dump),
                "--format=custom",
                "--no-password",
                f"--snapshot={snapshot}",
                f"--file={dump}",
            ]
            _run(command, _pg_env(engine), "pg_dump")
    return versions, counts


# -- restore -------------------------------------------------------------------------------


def read_backup(path: Path) -> Manifest:
    """The manifest of a backup file, checked against the file (engine by its first bytes,
    SHA-256). Without FILE.json the engine comes from the file alone and ``sha256`` is ""."""
    if not path.is_file():
        raise BackupError(f"no backup file at {path}")
    with path.open("rb") as file:
        head = file.read(16)
    engine = next((name for magic, name in _MAGIC.items() if head.startswith(magic)), None)
    if engine is None:
        raise BackupError(
            f"{path} is neither an SQLite database nor a pg_dump custom archive: not a backup"
        )
    sidecar = manifest_path(path)
    if not sidecar.is_file():
        return Manifest(engine, {}, {}, "?", "?", "")
    manifest = Manifest.from_json(sidecar.read_text(encoding="utf-8"), sidecar)
    if manifest.engine != engine:
        raise BackupError(f"{sidecar} says {manifest.engine} but {path} is a {engine} backup")
    if _sha256(path) != manifest.sha256:
        raise BackupError(f"{path} does not match the SHA-256 in {sidecar}: damaged or changed")
    return manifest


def check_engine(engine: Engine, path: Path, manifest: Manifest) -> None:
    """Refuse a backup of the other engine (a pg_dump archive into SQLite, or the reverse)."""
    target = engine.dialect.name
    if manifest.engine != target:
        raise BackupError(
            f"{path} is a {manifest.engine} backup but database.url is {target}: restore it "
            f"with a config whose database.url is a {manifest.engine} database"
        )


def restore(engine: Engine, path: Path, manifest: Manifest) -> None:
    """Replace the whole database with the backup (services must be stopped). On failure
    the database is as it was (SQLite: one backup step; PostgreSQL: one transaction)."""
    check_engine(engine, path, manifest)
    if engine.dialect.name == "sqlite":
        engine.dispose()
        _restore_sqlite(path, sqlite_path(engine))
    else:
        _restore_postgres(engine, path)


def _restore_sqlite(path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as src:
            _integrity(src, path)
            with closing(sqlite3.connect(target, timeout=30)) as dst:
                src.backup(dst, pages=-1)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite restore into {target} failed: {exc}") from exc


def _restore_postgres(engine: Engine, dump: Path) -> None:
    major = server_major(engine)
    pg_restore = find_pg_tool("pg_restore", major)
    psql = find_pg_tool("psql", 0)
    with engine.connect() as connection:
        tables = sorted(inspect(connection).get_table_names())
    engine.dispose()
    quote = engine.dialect.identifier_preparer.quote
    # Tables the backup does not have (a newer schema's) would stay behind, and their
    # foreign keys would stop --clean from dropping the backup's tables: drop every table
    # first, in the same transaction as the restore (psql --single-transaction).
    drops = "".join(f"DROP TABLE IF EXISTS {quote(name)} CASCADE;" for name in tables)
    # The script goes to a file first: psql must not commit half a script when
    # pg_restore stops midway.
    with tempfile.TemporaryDirectory(prefix="cityops-restore-") as folder:
        script = Path(folder) / "restore.sql"
        command = [str(pg_restore), "--clean", "--if-exists", "--no-owner", f"--file={script}"]
        _run([*command, str(dump)], dict(os.environ), "pg_restore")
        command = [str(psql), "--no-psqlrc", "--quiet", "--single-transaction"]
        command += ["--set=ON_ERROR_STOP=1", "--no-password"]
        if drops:
            command.append(f"--command={drops}")
        command.append(f"--file={script}")
        _run(command, _pg_env(engine), "restore (psql)")
