"""`cityops users add|list|disable`: dashboard users, their roles and units (issue #5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.cli import ConfigOption, build_engine, settings_or_exit
from core.errors import ConfigError, RetryableError

users_app = typer.Typer(
    help="Người dùng / dashboard users: roles and the units each may see (issue #5).",
    no_args_is_help=True,
)

NEW_PASSWORD_ENV = "CITYOPS_NEW_PASSWORD"


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Sign-in name (lower case).")],
    role: Annotated[str, typer.Option(help="admin, operator, leader or viewer.")],
    unit: Annotated[
        list[str] | None,
        typer.Option("--unit", help="A unit code the user may see (with its descendants)."),
    ] = None,
    lang: Annotated[str, typer.Option(help="Language of the dashboard: vi or en.")] = "vi",
    email: Annotated[
        str | None, typer.Option(help="E-mail address (a leader's weekly report goes here).")
    ] = None,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Add a user. The password is asked twice (hidden), or read from CITYOPS_NEW_PASSWORD.
    Exit 0 added, 1 the name is taken or the database is unreachable, 2 a bad value."""
    import os

    from dashboard.users import LANGUAGES, ROLES, UserExistsError, UserStore, normalise_username
    from layers.levels import Hierarchy

    def refuse(message: str) -> typer.Exit:
        typer.echo(f"lỗi / error: {message}", err=True)
        return typer.Exit(code=2)

    codes = [code.strip() for code in unit or []]
    if role not in ROLES:
        raise refuse(f"--role must be one of {', '.join(ROLES)}: {role!r}")
    if lang not in LANGUAGES:
        raise refuse(f"--lang must be one of {', '.join(LANGUAGES)}: {lang!r}")
    try:
        normalise_username(username)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    if not codes and role != "admin":
        raise refuse(f"a {role} needs at least one --unit CODE")
    settings = settings_or_exit(config)
    try:
        hierarchy = Hierarchy.from_csv(
            settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
        )
    except ConfigError as exc:
        raise refuse(str(exc)) from None
    for code in codes:
        if hierarchy.get(code) is None:
            raise refuse(f"--unit must be a unit code of {settings.hierarchy.units_file}: {code!r}")
    password = os.environ.get(NEW_PASSWORD_ENV)
    if password is None:
        password = typer.prompt("Mật khẩu / password", hide_input=True, confirmation_prompt=True)
    try:
        user = UserStore(build_engine(settings)).add(username, password, role, codes, lang, email)
    except UserExistsError as exc:
        typer.echo(f"lỗi / error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except RetryableError as exc:
        typer.echo(f"lỗi / error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except ValueError as exc:  # the password is too short
        raise refuse(str(exc)) from None
    shown = ", ".join(user.units) or "all units"
    typer.echo(f"added {user.username} ({user.role}; {shown})")


@users_app.command("list")
def users_list(config: ConfigOption = Path("config.yaml")) -> None:
    """Every user: username, role, units, disabled."""
    settings = settings_or_exit(config)
    from dashboard.users import UserStore

    try:
        users = UserStore(build_engine(settings)).list()
    except RetryableError as exc:
        typer.echo(f"lỗi / error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if not users:
        typer.echo("no users")
        return
    rows = [("username", "role", "units", "email", "disabled")]
    for user in users:
        units = " ".join(user.units) or "*"
        shown = (user.username, user.role, units, user.email or "-")
        rows.append((*shown, "yes" if user.disabled else "no"))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    typer.echo(f"{len(users)} users")


@users_app.command("disable")
def users_disable(
    username: Annotated[str, typer.Argument(help="The user to disable (kept for the record).")],
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Disable a user: they can no longer sign in. Exit 1 when there is no such user."""
    settings = settings_or_exit(config)
    from dashboard.users import UserStore

    try:
        found = UserStore(build_engine(settings)).disable(username)
    except RetryableError as exc:
        typer.echo(f"lỗi / error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if not found:
        typer.echo(f"lỗi / error: no user named {username!r}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"disabled {username}")
