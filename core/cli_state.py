"""`cityops state backup|restore|upgrade|info`: the SQL state database (users, alert
states and e-mails, silences, audit log, dead letters, wall links, report runs …) for the
provincial IT team. The logic is in core/backup.py; this module lists the migrations of
every component and prints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core.cli import ConfigOption, build_engine, settings_or_exit

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from core.backup import Migrations

state_app: typer.Typer = typer.Typer(
    help="Cơ sở dữ liệu trạng thái / state database: backup, restore, upgrade, info.",
    no_args_is_help=True,
)


def migrations() -> Migrations:
    """Every component's migrations, in the order they are applied (users first: later
    components may refer to users)."""
    from alerts import action_tables, delivery_tables
    from dashboard import users, wall_links
    from reports import schedule

    return {
        users.COMPONENT: users.MIGRATIONS,
        delivery_tables.COMPONENT: delivery_tables.MIGRATIONS,
        action_tables.COMPONENT: action_tables.MIGRATIONS,
        wall_links.COMPONENT: wall_links.MIGRATIONS,
        schedule.COMPONENT: schedule.MIGRATIONS,
    }


def cityops_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cityops")
    except PackageNotFoundError:
        return "unknown"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"lỗi / error: {message}", err=True)
    return typer.Exit(code=1)


def _one_line(exc: Exception) -> str:
    """A database error's first line, without SQLAlchemy's SQL and background link."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _errors() -> tuple[type[Exception], ...]:
    from sqlalchemy.exc import SQLAlchemyError

    from core.errors import CityOpsError

    return (CityOpsError, SQLAlchemyError, OSError)


def _versions(versions: Mapping[str, int], known: Mapping[str, Sequence[object]]) -> str:
    names = list(known) + sorted(set(versions) - set(known))
    return ", ".join(f"{name} {versions.get(name, 0)}" for name in names)


def _print_counts(counts: Mapping[str, int], indent: str = "  ") -> None:
    if not counts:
        typer.echo(f"{indent}(không có bảng / no tables)")
        return
    width = max(len(name) for name in counts)
    for name, rows in counts.items():
        typer.echo(f"{indent}{name.ljust(width)}  {rows:>9}")


def _engine(config: Path) -> Engine:
    return build_engine(settings_or_exit(config))


@state_app.command("backup")
def state_backup(
    to: Annotated[Path, typer.Option("--to", help="The backup file to write (and FILE.json).")],
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Back up the state database while the services run. SQLite: online backup API, then
    integrity_check of the copy; PostgreSQL: pg_dump --format=custom (password through
    PGPASSWORD). FILE.json beside it records engine, schema versions, row counts, cityops
    version and UTC time. Exit 0 written, 1 failed (one line saying why)."""
    from core.backup import backup, display_url

    engine = _engine(config)
    try:
        manifest = backup(engine, to, cityops_version())
    except _errors() as exc:
        raise _fail(f"backup of {display_url(engine)} to {to} failed: {_one_line(exc)}") from None
    finally:
        engine.dispose()
    rows = sum(manifest.row_counts.values())
    typer.echo(
        f"đã sao lưu / backed up {manifest.engine} {display_url(engine)} → {to} "
        f"({to.stat().st_size} bytes, {rows} rows in {len(manifest.row_counts)} tables)"
    )
    typer.echo(f"schema: {_versions(manifest.schema_versions, migrations())}")
    typer.echo(f"manifest: {to}.json (sha256 {manifest.sha256[:16]}…)")


@state_app.command("restore")
def state_restore(
    from_: Annotated[
        Path, typer.Option("--from", help="A backup file written by cityops state backup.")
    ],
    config: ConfigOption = Path("config.yaml"),
    yes: Annotated[bool, typer.Option("--yes", help="Replace a database that has data.")] = False,
) -> None:
    """Khôi phục từ bản sao lưu — DỪNG CÁC DỊCH VỤ TRƯỚC. Replace the state database with
    a backup, then run the migrations (an older backup is upgraded). STOP THE SERVICES
    FIRST (cityops ingest, alerts, dashboard): with SQLite the file is overwritten under
    them. Refuses without --yes when the database has data, and refuses a backup of the
    other engine. Exit 0 restored, 1 refused or failed."""
    from core.backup import (
        check_engine,
        data_rows,
        describe,
        display_url,
        read_backup,
        restore,
        upgrade,
    )

    known = migrations()
    engine = _engine(config)
    try:
        manifest = read_backup(from_)
        check_engine(engine, from_, manifest)
        _, counts = describe(engine)
        replaced = data_rows(counts)
        if replaced and not yes:
            typer.echo("cơ sở dữ liệu đích có dữ liệu / the target database has data:")
            _print_counts(replaced)
            raise _fail(
                f"{display_url(engine)} has "
                f"{sum(replaced.values())} rows that the restore would replace: add --yes"
            )
        if not manifest.sha256:
            typer.echo(f"cảnh báo / warning: no {from_}.json beside the backup: not checked")
        else:
            typer.echo(
                f"backup: {manifest.engine}, cityops {manifest.cityops_version}, "
                f"{manifest.created_at} UTC"
            )
        typer.echo(
            "các dịch vụ phải dừng trong khi khôi phục / the services (ingest, alerts, "
            "dashboard) must be stopped during a restore"
        )
        restore(engine, from_, manifest)
        before, _ = describe(engine)
        typer.echo(f"schema trong bản sao lưu / in the backup: {_versions(before, known)}")
        upgrade(engine, known)
        after, restored = describe(engine)
    except typer.Exit:
        raise
    except _errors() as exc:
        raise _fail(f"restore from {from_}: {_one_line(exc)}") from None
    finally:
        engine.dispose()
    typer.echo(f"schema sau nâng cấp / after upgrade: {_versions(after, known)}")
    typer.echo(
        f"đã khôi phục / restored {sum(restored.values())} rows in {len(restored)} tables "
        f"from {from_}"
    )


@state_app.command("upgrade")
def state_upgrade(
    config: ConfigOption = Path("config.yaml"),
    check: Annotated[
        bool, typer.Option("--check", help="Apply nothing; exit 1 if a migration is pending.")
    ] = False,
) -> None:
    """Run the schema migrations of every component now (after installing a new cityops,
    with the services stopped) and print the versions. Exit 0 up to date, 1 failed (or,
    with --check, a migration is pending)."""
    from core.backup import describe, pending, upgrade

    known = migrations()
    engine = _engine(config)
    try:
        before, _ = describe(engine)
        missing = pending(engine, known)
        if check:
            for component, versions in missing.items():
                state = f"pending {', '.join(map(str, versions))}" if versions else "up to date"
                typer.echo(f"{component}: {before.get(component, 0)} ({state})")
            waiting = sum(len(versions) for versions in missing.values())
            if waiting:
                raise _fail(f"{waiting} migrations pending: run cityops state upgrade")
            return
        applied = upgrade(engine, known)
        after, _ = describe(engine)
    except typer.Exit:
        raise
    except _errors() as exc:
        raise _fail(f"upgrade: {_one_line(exc)}") from None
    finally:
        engine.dispose()
    for component in known:
        done = applied.get(component) or []
        note = f"applied {', '.join(map(str, done))}" if done else "up to date"
        typer.echo(f"{component}: {before.get(component, 0)} → {after.get(component, 0)} ({note})")


@state_app.command("info")
def state_info(config: ConfigOption = Path("config.yaml")) -> None:
    """Engine, URL (no password), schema versions and the rows of every table."""
    from core.backup import describe, display_url

    known = migrations()
    engine = _engine(config)
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if database and database != ":memory:" and not Path(database).exists():
        engine.dispose()  # opening it would create an empty file at a mistyped path
        raise _fail(f"{database}: no such database file / không có tệp cơ sở dữ liệu")
    try:
        versions, counts = describe(engine)
    except _errors() as exc:
        raise _fail(f"{display_url(engine)}: {_one_line(exc)}") from None
    finally:
        engine.dispose()
    typer.echo(f"engine: {engine.dialect.name}")
    typer.echo(f"url: {display_url(engine)}")
    typer.echo(f"schema: {_versions(versions, known)}")
    typer.echo("rows / số dòng:")
    _print_counts(counts)
