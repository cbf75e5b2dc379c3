"""`cityops wall link|links|revoke`: signed, revocable links that open a wall screen
without a keyboard (issue #7, dashboard/wall_links.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.cli import ConfigOption, build_engine, settings_or_exit
from core.errors import RetryableError

wall_app: typer.Typer = typer.Typer(
    help="Màn hình tường / wall screens: links that open /wall/<name> (issue #7).",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"lỗi / error: {message}", err=True)
    return typer.Exit(code=code)


@wall_app.command("link")
def wall_link(
    wall: Annotated[str, typer.Option("--wall", help="A wall of dashboard.walls.")],
    by: Annotated[str, typer.Option("--by", help="Who makes the link (for the record).")],
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Make a link and print its full URL, once (only its hash is kept). Exit 2 for a
    wall that is not configured, 1 when the database is unreachable."""
    settings = settings_or_exit(config)
    from dashboard.wall_links import WallLinks, wall_url

    if wall not in settings.dashboard.walls:
        known = ", ".join(sorted(settings.dashboard.walls)) or "none configured"
        raise _fail(f"--wall must be one of dashboard.walls ({known}): {wall!r}", code=2)
    if not by.strip():
        raise _fail("--by must name who makes the link", code=2)
    try:
        links = WallLinks(build_engine(settings))
        links.migrate()
        link, token = links.create(wall, by.strip())
    except RetryableError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"wall link {link.id} for {wall} (shown once, keep it safe):")
    typer.echo(wall_url(settings.dashboard.public_url, wall, token))


@wall_app.command("links")
def wall_links_list(config: ConfigOption = Path("config.yaml")) -> None:
    """Every wall link: id, wall, made by and when, revoked, last seen (local time)."""
    settings = settings_or_exit(config)
    from core.clock import to_local
    from dashboard.wall_links import WallLinks

    try:
        links = WallLinks(build_engine(settings))
        links.migrate()
        found = links.all()
    except RetryableError as exc:
        raise _fail(str(exc)) from None
    if not found:
        typer.echo("no wall links")
        return
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(settings.site.timezone)

    def when(value: object) -> str:
        from datetime import datetime

        if not isinstance(value, datetime):
            return "-"
        return to_local(value, tz).strftime("%Y-%m-%d %H:%M")

    rows = [("id", "wall", "created_by", "created", "revoked", "last_seen")]
    for link in found:
        rows.append(
            (
                str(link.id),
                link.wall,
                link.created_by,
                when(link.created_at),
                when(link.revoked_at),
                when(link.last_seen),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


@wall_app.command("revoke")
def wall_revoke(
    link_id: Annotated[int, typer.Argument(help="The link's id (cityops wall links).")],
    by: Annotated[str, typer.Option("--by", help="Who revokes it (for the record).")],
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Revoke a link: screens using it show "Liên kết đã bị thu hồi" within 30 s. Exit 1
    when there is no such link or the database is unreachable."""
    settings = settings_or_exit(config)
    from dashboard.wall_links import WallLinks

    if not by.strip():
        raise _fail("--by must name who revokes the link", code=2)
    try:
        links = WallLinks(build_engine(settings))
        links.migrate()
        link = links.revoke(link_id, by.strip())
    except RetryableError as exc:
        raise _fail(str(exc)) from None
    if link is None:
        raise _fail(f"no wall link {link_id}")
    typer.echo(f"revoked wall link {link.id} ({link.wall})")
