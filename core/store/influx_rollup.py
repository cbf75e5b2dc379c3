"""Hourly roll-ups and retention for :class:`core.store.influx.InfluxStore` (design 017).

At first use the store makes the raw retention policy (``store.influxdb.retention_policy``,
or ``raw``; duration ``raw_days``, the default), the ``rollup`` policy (``rollup_days``) and
one continuous query for every measurement::

    SELECT count(*), sum(*), min(*), max(*), last(*) INTO "<db>"."rollup".:MEASUREMENT
    FROM "<db>"."<raw>"./.*/ GROUP BY time(1h), *

which names the roll-up fields ``count_pm25``, ``sum_pm25`` … and keeps every tag.
``RESAMPLE EVERY 1h FOR 3h`` recomputes the last three hours, for readings a little late.
:meth:`InfluxRollups.downsample` runs the same SELECT INTO itself for the hours since its
last run and records the rolled-up edge in ``cityops_rollup_state`` (the window reads
roll-ups only below it); :meth:`InfluxRollups.backfill` does it for any past range. A
re-run writes the same points again (same series and hour), so nothing counts twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests

import core.store.influx as influx_module
from core.errors import PermanentError
from core.settings_retention import RetentionSettings
from core.store.downsample import (
    DAY_MS,
    assumed_edge,
    catch_up_end,
    floor_hour,
    hour_runs,
    late_hours,
    raw_prune_edge,
    recompute_from,
    slices,
)
from core.store.influx_rollup_read import ROLLUP_RP, RollupReads
from core.store.influx_setup import NotAuthorizedError
from core.store.rollup import epoch_ms

if TYPE_CHECKING:
    from core.settings import InfluxSettings
    from core.store.influx import InfluxStore

log = logging.getLogger("cityops.store")

DEFAULT_RAW_RP = "raw"
CQ_NAME = "cityops_rollup_1h"
STATE_MEASUREMENT = "cityops_rollup_state"
# Hours that late writes touched below the edge: a point per hour (at the hour, so a
# second mark of it replaces the first), recomputed and deleted by the next run.
DIRTY_MEASUREMENT = "cityops_rollup_dirty"
# A window reads the rolled-up edge at most this often: an older edge is still right (it
# only means fewer hours from the roll-ups), so another process's run shows up soon.
EDGE_CACHE_S = 30.0

Run = Callable[[str, str], dict[str, Any]]


def rollup_select(database: str, raw_rp: str) -> str:
    """The SELECT INTO of the continuous query and of every recompute (without its WHERE)."""
    q = influx_module.quote_ident
    return (
        "SELECT count(*), sum(*), min(*), max(*), last(*)"
        f" INTO {q(database)}.{q(ROLLUP_RP)}.:MEASUREMENT FROM {q(database)}.{q(raw_rp)}./.*/"
    )


def setup_statements(
    database: str, raw_rp: str, retention: RetentionSettings, existing: Iterable[str]
) -> list[str]:
    """Create or alter the two policies (an operator may change the days), then the CQ."""
    q = influx_module.quote_ident
    have = set(existing)
    statements = []
    for name, days, default in (
        (raw_rp, retention.raw_days, " DEFAULT"),
        (ROLLUP_RP, retention.rollup_days, ""),
    ):
        verb = "ALTER" if name in have else "CREATE"
        replication = "" if name in have else " REPLICATION 1"
        statements.append(
            f"{verb} RETENTION POLICY {q(name)} ON {q(database)}"
            f" DURATION {days}d{replication}{default}"
        )
    statements.append(
        f"CREATE CONTINUOUS QUERY {q(CQ_NAME)} ON {q(database)} RESAMPLE EVERY 1h FOR 3h BEGIN"
        f" {rollup_select(database, raw_rp)} GROUP BY time(1h), * END"
    )
    return statements


class InfluxRollups(RollupReads):
    """The retention part of one InfluxStore: ``store._query`` runs InfluxQL on the raw
    policy (after the setup below), ``admin`` runs a statement before the setup."""

    def __init__(self, store: InfluxStore, raw_rp: str, retention: RetentionSettings) -> None:
        self.store = store
        self.database = store.settings.database
        self.raw_rp = raw_rp
        self.retention = retention
        self._edge: tuple[float, int | None] | None = None  # (monotonic read time, edge)
        self._blind = False  # True once the server refused to show this user the edge
        self._prune_left_logged = False

    def setup(self, admin: Run) -> None:
        q = influx_module.quote_ident
        shown = admin(f"SHOW RETENTION POLICIES ON {q(self.database)}", "list retention policies")
        existing = [row[0] for series in shown.get("series", []) for row in series["values"]]
        *policies, create_cq = setup_statements(
            self.database, self.raw_rp, self.retention, existing
        )
        for statement in policies:  # the same statement twice is no error (several services)
            admin(statement, "set up the retention policies")
        try:
            admin(create_cq, "create the roll-up continuous query")
        except PermanentError as exc:
            if "already exists" not in str(exc):
                raise
            # Another definition (e.g. the raw policy was renamed): replace it.
            admin(f"DROP CONTINUOUS QUERY {q(CQ_NAME)} ON {q(self.database)}", "drop the old CQ")
            admin(create_cq, "create the roll-up continuous query")

    # -- roll-ups ----------------------------------------------------------------------

    def rolled_until(self, *, fresh: bool = False) -> int | None:
        now = time.monotonic()
        if not fresh and self._edge is not None and now - self._edge[0] < EDGE_CACHE_S:
            return self._edge[1]
        q = influx_module.quote_ident
        result = self.store._query(
            f'SELECT last("until_ms") FROM {q(self.database)}.{q(ROLLUP_RP)}.'
            f"{q(STATE_MEASUREMENT)}",
            "read the rolled-up edge",
        )
        values = [row[1] for series in result.get("series", []) for row in series["values"]]
        edge = int(values[0]) if values and values[0] is not None else None
        self._edge = (now, edge)
        return edge

    def recompute(self, start_ms: int, end_ms: int) -> int:
        select = rollup_select(self.database, self.raw_rp)
        hours = 0
        for first, last in slices(start_ms, end_ms):
            self.store._query(
                f"{select} WHERE time >= {first}ms AND time < {last}ms GROUP BY time(1h), *",
                "roll up the past",
            )
            hours += (last - first) // 3_600_000
        return hours

    def mark_late(self, ts_ms: list[int]) -> None:
        """Before a write: mark the hours of readings below the rolled-up edge (the edge
        read at most every 30 s: a mark missed just after the edge moved falls in the next
        run's 3-hour look-back). A WRITE-only user may not read it: :func:`assumed_edge`."""
        hours = late_hours(ts_ms, self._writer_edge())
        if hours:
            lines = "".join(f"{DIRTY_MEASUREMENT} hour_ms={float(h)!r} {h}\n" for h in hours)
            self.store._write_line(lines, ROLLUP_RP)

    def _writer_edge(self) -> int | None:
        if not self._blind:
            try:
                return self.rolled_until()
            except NotAuthorizedError:
                self._blind = True
                log.info("InfluxDB user may not read the rolled-up edge: late hours by clock")
        return assumed_edge(epoch_ms(datetime.now(UTC)))

    def _recompute_late(self) -> int:
        """The marked hours: each mark deleted before its hour is recomputed, so a write
        marking it again meanwhile is recomputed by the next run (marks put back on error)."""
        q = influx_module.quote_ident
        found = self.store._query(
            f'SELECT "hour_ms" FROM {q(self.database)}.{q(ROLLUP_RP)}.{q(DIRTY_MEASUREMENT)}',
            "read the hours written late",
        )
        hours = [int(row[0]) for series in found.get("series", []) for row in series["values"]]
        for hour in hours:
            self.store._query(
                f"DELETE FROM {q(DIRTY_MEASUREMENT)} WHERE time = {hour}ms", "forget a late hour"
            )
        try:
            for first, last in hour_runs(hours):
                self.recompute(first, last)
        except Exception:
            self.mark_late(hours)
            raise
        return len(hours)

    def downsample(self, now: datetime) -> int:
        """As SQLite's: at most :data:`CATCH_UP_MS` of a backlog per run, the edge moved to
        where it stopped (the first run starts ``raw_days`` back: older shards are gone)."""
        now_ms = epoch_ms(now)
        until = floor_hour(now_ms)
        edge = self.rolled_until(fresh=True)
        start = recompute_from(edge, now_ms - self.retention.raw_days * DAY_MS)
        end = until if start is None else catch_up_end(start, until)
        hours = self.recompute(start, end) if start is not None else 0
        hours += self._recompute_late()
        if edge is None or end > edge:
            line = f"{STATE_MEASUREMENT} until_ms={float(end)!r} {end}\n"
            self.store._write_line(line, ROLLUP_RP)
            self._edge = None
        return hours

    def backfill(self, start: datetime, end: datetime) -> int:
        return self.recompute(epoch_ms(start), epoch_ms(end))

    def prune(self, now: datetime) -> int:
        """Drop the shards past their policy's duration now (InfluxDB's retention service
        does the same on its own every 30 min); raw shards only once rolled up. SHOW and
        DROP SHARD need an admin: for any other user, 0 and that service does it."""
        now_ms = epoch_ms(now)
        raw_edge = raw_prune_edge(now_ms, self.retention.raw_days, self.rolled_until(fresh=True))
        rollup_edge = now_ms - self.retention.rollup_days * DAY_MS
        try:
            shards = self.store._query("SHOW SHARDS", "list shards")
        except NotAuthorizedError:
            if not self._prune_left_logged:
                self._prune_left_logged = True
                log.info(
                    "InfluxDB user is no admin: pruning is left to InfluxDB's retention"
                    " service (policies %r %dd, %r %dd)",
                    self.raw_rp,
                    self.retention.raw_days,
                    ROLLUP_RP,
                    self.retention.rollup_days,
                )
            return 0
        dropped = 0
        for series in shards.get("series", []):
            if series.get("name") != self.database:
                continue
            columns = series["columns"]
            for row in series["values"]:
                shard = dict(zip(columns, row, strict=True))
                end_ms = epoch_ms(datetime.fromisoformat(str(shard["end_time"])))
                edge = {self.raw_rp: raw_edge, ROLLUP_RP: rollup_edge}.get(
                    shard["retention_policy"]
                )
                if edge is not None and end_ms <= edge:
                    self.store._query(f"DROP SHARD {int(shard['id'])}", "drop an old shard")
                    dropped += 1
        return dropped

    # -- reads -------------------------------------------------------------------------


class InfluxRetention:
    """The retention methods of InfluxStore (see :class:`RetainingStore`)."""

    _rollups: InfluxRollups | None
    settings: InfluxSettings

    def _post(
        self, path: str, doing: str, *, params: dict[str, str], **kwargs: Any
    ) -> requests.Response:
        raise NotImplementedError

    def _write_line(self, line: str, rp: str) -> None:
        """One line of line protocol into policy ``rp`` (the rolled-up edge)."""
        doing = "record the rolled-up edge"
        params = {"db": self.settings.database, "precision": "ms", "rp": rp}
        response = self._post("/write", doing, params=params, data=line.encode())
        if response.status_code != 204:
            raise influx_module._http_error(response, doing)

    def _retention_part(self, doing: str) -> InfluxRollups:
        if self._rollups is None:
            raise PermanentError(f"InfluxDB store cannot {doing}: store.retention is not set")
        return self._rollups

    def downsample(self, now: datetime) -> int:
        """Roll up the completed hours since the last run; the hours recomputed."""
        return self._retention_part("roll up").downsample(now)

    def backfill(self, start: datetime, end: datetime) -> int:
        """Recompute the roll-ups of the whole hours in [start, end) (readings written late)."""
        return self._retention_part("roll up the past").backfill(start, end)

    def prune(self, now: datetime) -> int:
        """Drop raw shards older than raw_days (once rolled up), roll-up shards older than
        rollup_days; the number of shards dropped."""
        return self._retention_part("prune").prune(now)
