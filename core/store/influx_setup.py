"""The admin side of :class:`core.store.influx.InfluxStore`: ``cityops store setup`` and
the check a least-privilege service makes instead (design 017, "Least privilege").

On InfluxDB 1.x only an admin may create a database, a retention policy or a continuous
query, or list and drop shards. Seen on influxd 1.6.7 with auth: a READ user may run
SHOW RETENTION POLICIES, SHOW CONTINUOUS QUERIES and SELECT; a WRITE user only SHOW
DATABASES (besides /write and DELETE); a READ+WRITE user also SELECT … INTO. So an
operator runs the setup once as an admin, and each service only checks what it can.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

import core.store.influx as influx_module
from core.errors import PermanentError, RetryableError
from core.store.influx_rollup_read import ROLLUP_RP

if TYPE_CHECKING:
    from core.settings import InfluxSettings
    from core.store.influx_rollup import InfluxRollups

log = logging.getLogger("cityops.store")

SETUP_HINT = (
    'run "cityops store setup" once with an InfluxDB admin\'s credentials (docs/operations.md)'
)


class NotAuthorizedError(PermanentError):
    """InfluxDB refused a statement or write to this user (HTTP 403): a privilege it lacks."""


@dataclass(frozen=True, slots=True)
class Policy:
    """One retention policy as SHOW RETENTION POLICIES gives it (duration "0s": forever)."""

    name: str
    duration: str
    default: bool


@dataclass(frozen=True, slots=True)
class SetupState:
    """What exists on the server for the store's database: its policies and CQs."""

    database: str
    exists: bool
    policies: tuple[Policy, ...]
    queries: tuple[tuple[str, str], ...]  # (name, CREATE CONTINUOUS QUERY …)


def _rows(result: dict[str, Any]) -> list[list[Any]]:
    return [row for series in result.get("series", []) for row in series.get("values") or []]


class InfluxAdmin:
    """The setup methods of InfluxStore."""

    settings: InfluxSettings
    _rollups: InfluxRollups | None
    _database_ready: bool

    def _post(
        self, path: str, doing: str, *, params: dict[str, str], **kwargs: Any
    ) -> requests.Response:
        raise NotImplementedError

    def _admin(self, q: str, doing: str) -> dict[str, Any]:
        """One statement outside the database (setup, checks); its result."""
        response = self._post("/query", doing, params={}, data={"q": q})
        if response.status_code != 200:
            raise influx_module._http_error(response, doing)
        try:
            result: dict[str, Any] = response.json()["results"][0]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RetryableError(f"InfluxDB could not {doing}: unreadable answer") from exc
        if result.get("error"):  # e.g. "invalid name"
            raise PermanentError(f"InfluxDB could not {doing}: {result['error']}")
        return result

    def setup(self) -> None:
        """Everything an InfluxDB admin makes, with this store's credentials and whatever
        ``create_database`` says: the database if missing and, with ``store.retention``,
        the raw and ``rollup`` policies and the roll-up CQ. Safe to run again."""
        if self.settings.api != "v1":
            raise PermanentError(
                "cityops store setup is for store.influxdb.api v1: on InfluxDB 2.x make the"
                f" bucket {self.settings.bucket or self.settings.database!r} there"
            )
        database = self.settings.database
        q = influx_module.quote_ident
        self._admin(f"CREATE DATABASE {q(database)}", f"create database {database!r}")
        if self._rollups is not None:
            self._rollups.setup(self._admin)  # policies and the CQ (design 017)
        self._database_ready = True

    def describe(self) -> SetupState:
        """The database, its retention policies and its continuous queries now (needs READ
        on the database, or admin)."""
        database = self.settings.database
        q = influx_module.quote_ident
        names = {row[0] for row in _rows(self._admin("SHOW DATABASES", "list databases"))}
        if database not in names:
            return SetupState(database, False, (), ())
        shown = self._admin(f"SHOW RETENTION POLICIES ON {q(database)}", "list policies")
        policies = tuple(Policy(str(r[0]), str(r[1]), bool(r[-1])) for r in _rows(shown))
        cqs = self._admin("SHOW CONTINUOUS QUERIES", "list continuous queries")
        queries = tuple(
            (str(row[0]), str(row[1]))
            for series in cqs.get("series", [])
            if series.get("name") == database
            for row in series.get("values") or []
        )
        return SetupState(database, True, policies, queries)

    def _check_setup(self) -> None:
        """With ``store.retention`` and ``create_database: false``: the two policies must
        exist (SHOW RETENTION POLICIES needs READ). A WRITE-only user may not look; its
        writes name the raw policy, which the server refuses if it is missing."""
        if self._rollups is None:
            return
        database = self.settings.database
        q = influx_module.quote_ident
        try:
            shown = self._admin(
                f"SHOW RETENTION POLICIES ON {q(database)}", "check the retention policies"
            )
        except NotAuthorizedError:
            log.info(
                "InfluxDB user %r may not list the retention policies of %r (WRITE only):"
                " not checked; writes go to policy %r",
                self.settings.username,
                database,
                self._rollups.raw_rp,
            )
            return
        except PermanentError as exc:
            if "database not found" not in str(exc):
                raise
            raise PermanentError(
                f"store.retention is set but InfluxDB database {database!r} does not exist:"
                f" {SETUP_HINT}"
            ) from exc
        have = {str(row[0]) for row in _rows(shown)}
        for name in (self._rollups.raw_rp, ROLLUP_RP):
            if name not in have:
                raise PermanentError(
                    f"store.retention is set but InfluxDB database {database!r} has no"
                    f" retention policy {name!r}: {SETUP_HINT}"
                )
