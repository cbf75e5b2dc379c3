"""Signed, revocable wall links: a wall screen opens without a keyboard (issue #7).

``cityops wall link`` makes a random 32-byte token and prints the URL
``<public_url>/wall/<name>?key=<token>`` once; the table ``wall_links`` keeps only the
token's SHA-256 (component ``"walls"`` of the migration runner, docs/design/011):

    version 1  wall_links (id, wall, token_hash, created_by, created_at, revoked_at,
               last_seen)

Opening the link gives the browser a wall session (the dashboard's signed cookie, no idle
timeout) for that wall only: role viewer, the wall's units. :class:`WallGate` is called by
the sign-in gate (dashboard/auth.py) on every request; it re-reads the link every
:data:`RECHECK_S` seconds, so a revoked link ends the session at the next check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    insert,
    inspect,
    select,
    update,
)

from core.db import UtcDateTime
from core.errors import RetryableError
from core.migrate import MigratedTables, Step

log = logging.getLogger("cityops.dashboard")

COMPONENT: Final = "walls"
RECHECK_S: Final = 30.0  # a revoked link ends its sessions within this time
SEEN_EVERY_S: Final = 60.0  # last_seen is written at most this often per link
TOKEN_BYTES: Final = 32
WALL_PREFIX: Final = "wall/"
# What a wall's page loads from outside its own path: the map geometry and plotly.js's geo
# bundle (the same bytes for everyone: nothing of a user's).
SHARED: Final = ("geo/", "_cityops/plotly-geo", "_favicon.ico")

metadata = MetaData()

wall_links = Table(
    "wall_links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("wall", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("created_by", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("last_seen", UtcDateTime, nullable=True),
)


def _v1_wall_links(connection: Connection) -> None:
    v1 = MetaData()  # spelled out: a released step never changes (docs/design/011)
    table = Table(
        "wall_links",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("wall", Text, nullable=False),
        Column("token_hash", Text, nullable=False, unique=True),
        Column("created_by", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("revoked_at", UtcDateTime, nullable=True),
        Column("last_seen", UtcDateTime, nullable=True),
    )
    Index("wall_links_wall", table.c.wall)
    v1.create_all(connection)


MIGRATIONS: Final[tuple[Step, ...]] = (_v1_wall_links,)


def hash_token(token: str) -> str:
    """The SHA-256 of a link's token, hex: what the table keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def wall_url(public_url: str, wall: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/{WALL_PREFIX}{wall}?key={token}"


@dataclass(frozen=True, slots=True)
class WallLink:
    id: int
    wall: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_seen: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class WallLinks(MigratedTables):
    """The ``wall_links`` table. Database errors become RetryableError."""

    component = COMPONENT
    migrations = MIGRATIONS
    what = "wall_links table"

    def create(self, wall: str, created_by: str) -> tuple[WallLink, str]:
        """A new link for ``wall``: the row and the token (shown once, never stored)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock.now()
        with self._transaction("create a wall link") as connection:
            new_id = connection.execute(
                insert(wall_links).returning(wall_links.c.id),
                {
                    "wall": wall,
                    "token_hash": hash_token(token),
                    "created_by": created_by,
                    "created_at": now,
                },
            ).scalar_one()
            _audit(connection, now, created_by, "wall_link_create", f"wall_link:{new_id}", wall)
        return WallLink(int(new_id), wall, created_by, now, None, None), token

    def all(self) -> list[WallLink]:
        with self._transaction("list the wall links") as connection:
            rows = connection.execute(select(wall_links).order_by(wall_links.c.id)).mappings()
            return [_link(row) for row in rows]

    def revoke(self, link_id: int, by: str) -> WallLink | None:
        """Revoke link ``link_id`` (again: no change); None when there is no such link."""
        now = self._clock.now()
        with self._transaction("revoke a wall link") as connection:
            row = (
                connection.execute(select(wall_links).where(wall_links.c.id == link_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            if row["revoked_at"] is None:
                connection.execute(
                    update(wall_links).where(wall_links.c.id == link_id).values(revoked_at=now)
                )
                _audit(connection, now, by, "wall_link_revoke", f"wall_link:{link_id}", row["wall"])
            found = (
                connection.execute(select(wall_links).where(wall_links.c.id == link_id))
                .mappings()
                .one()
            )
            return _link(found)

    def by_token(self, token: str) -> WallLink | None:
        """The link whose token this is (revoked or not), or None."""
        return self._one(wall_links.c.token_hash == hash_token(token))

    def get(self, link_id: int) -> WallLink | None:
        return self._one(wall_links.c.id == link_id)

    def _one(self, where: Any) -> WallLink | None:
        with self._transaction("read a wall link") as connection:
            row = connection.execute(select(wall_links).where(where)).mappings().first()
            return None if row is None else _link(row)

    def seen(self, link_id: int) -> None:
        with self._transaction("note a wall link's last visit") as connection:
            connection.execute(
                update(wall_links)
                .where(wall_links.c.id == link_id)
                .values(last_seen=self._clock.now())
            )


def _link(row: Any) -> WallLink:
    return WallLink(
        id=int(row["id"]),
        wall=str(row["wall"]),
        created_by=str(row["created_by"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_seen=row["last_seen"],
    )


def _audit(
    connection: Connection, at: datetime, actor: str, action: str, target: str, wall: str
) -> None:
    """Into the alert actions' audit_log when it exists (the alert tables are migrated by
    the dashboard and the alert engine); a wall link is never refused for want of it."""
    if not inspect(connection).has_table("audit_log"):
        return
    from alerts.action_tables import audit_log

    detail = json.dumps({"wall": wall}, ensure_ascii=False, sort_keys=True)
    connection.execute(
        insert(audit_log),
        {"at": at, "actor": actor, "action": action, "target": target, "detail": detail},
    )


# ---------------------------------------------------------------------------- the session


@dataclass(frozen=True, slots=True)
class WallVerdict:
    """What the gate does with a request of a wall session: ``wall`` and ``units`` to let
    it in as; or ``refuse`` (403 other page, 410 revoked) with why."""

    wall: str | None = None
    units: tuple[str, ...] = ()
    refuse: int = 0
    revoked: bool = False


class WallGate:
    """Wall sessions: a ``?key=`` on ``wall/<name>/`` starts one; each later request of
    the session is let in (its wall only) or refused. The session keys are ``wall``,
    ``wl`` (link id) and ``wc`` (monotonic time of the last check)."""

    def __init__(
        self,
        links: WallLinks,
        walls: Mapping[str, tuple[str, ...]],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.links = links
        self.walls = dict(walls)  # name -> units
        self._monotonic = monotonic
        self._checked: dict[int, tuple[float, bool]] = {}  # link id -> (when, active)
        self._seen: dict[int, float] = {}

    def wall_of_path(self, rest: str) -> str | None:
        """The wall named by a path below the prefix (``wall/<name>``, ``wall/<name>/…``)."""
        if not rest.startswith(WALL_PREFIX):
            return None
        name = rest[len(WALL_PREFIX) :].split("/", 1)[0]
        return name if name in self.walls else None

    def start(self, rest: str, key: str | None, session: Any) -> bool:
        """A link opened: when ``key`` is a live link of the wall in ``rest``, make the
        session that wall's (a new session: nothing carries over). False otherwise."""
        wall = self.wall_of_path(rest)
        if wall is None or not key:
            return False
        try:
            link = self.links.by_token(key)
        except RetryableError as exc:
            log.warning("wall link not checked: %s", exc)
            return False
        if link is None or not link.active or link.wall != wall:
            return False
        session.clear()
        session.update(wall=wall, wl=link.id, csrf=secrets.token_urlsafe(32))
        self._checked[link.id] = (self._monotonic(), True)
        self._touch(link.id)
        log.info("wall %s opened with link %s", wall, link.id)
        return True

    def check(self, rest: str, session: Mapping[str, Any]) -> WallVerdict | None:
        """None: not a wall session. Else let in as the wall, or refuse."""
        wall = session.get("wall")
        link_id = session.get("wl")
        if not isinstance(wall, str) or not isinstance(link_id, int):
            return None
        if wall not in self.walls or not self._active(link_id):
            return WallVerdict(refuse=410, revoked=True)
        if self.wall_of_path(rest) != wall and not rest.startswith(SHARED):
            return WallVerdict(refuse=403)
        self._touch(link_id)
        return WallVerdict(wall=wall, units=self.walls[wall])

    def _active(self, link_id: int) -> bool:
        now = self._monotonic()
        hit = self._checked.get(link_id)
        if hit is not None and now - hit[0] < RECHECK_S:
            return hit[1]
        try:
            link = self.links.get(link_id)
        except RetryableError as exc:  # the database is down: the last answer stands
            log.warning("wall link %s not re-checked: %s", link_id, exc)
            return hit[1] if hit is not None else False
        active = link is not None and link.active
        self._checked[link_id] = (now, active)
        return active

    def _touch(self, link_id: int) -> None:
        now = self._monotonic()
        if now - self._seen.get(link_id, -SEEN_EVERY_S) < SEEN_EVERY_S:
            return
        self._seen[link_id] = now
        try:
            self.links.seen(link_id)
        except RetryableError as exc:
            log.warning("wall link %s last_seen not written: %s", link_id, exc)
