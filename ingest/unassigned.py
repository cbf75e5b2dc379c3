"""The registry of unassigned devices in the SQL state database (beside the dead letters).

A device the ingest cannot place (not registered and no lat/lon, or placed outside every
unit) is stored under the "unassigned" unit and recorded here: id, kind, why, first and
last seen, message count. Writes are rare: on first sight, then at most once per
``write_every_s`` per device (the count in between is added up in memory), and the
table keeps at most ``max_devices`` rows (the least recently seen go first). A database
error is logged and the counts stay in memory for the next write: a sighting never costs
a message.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    case,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.expression import Executable

from core.db import UtcDateTime
from core.errors import RetryableError

log = logging.getLogger("cityops.ingest")

WRITE_EVERY_S = 60.0
MAX_DEVICES = 10_000
# why a device is unassigned
NO_POSITION = "no_position"
OUTSIDE_MAP = "outside_map"

metadata = MetaData()

unassigned_devices = Table(
    "unassigned_devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("why", String(32), nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False, index=True),
    Column("count", Integer, nullable=False),
)


@dataclass(frozen=True, slots=True)
class UnassignedDevice:
    device_id: str
    kind: str
    why: str
    first_seen: datetime
    last_seen: datetime
    count: int


@dataclass(slots=True)
class _Sighting:
    kind: str
    why: str
    first_seen: datetime
    last_seen: datetime
    pending: int  # messages since the last write
    written_at: datetime | None  # None: never written (first sight)


class SqlUnassignedDevices:
    """core.ports.UnassignedDevices on an SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_devices: int = MAX_DEVICES,
        write_every_s: float = WRITE_EVERY_S,
    ) -> None:
        self._engine = engine
        self._max_devices = max_devices
        self._write_every_s = write_every_s
        self._memory: OrderedDict[str, _Sighting] = OrderedDict()
        self.write_errors = 0
        try:
            metadata.create_all(engine)
            with engine.connect() as connection:
                self._rows = int(
                    connection.execute(
                        select(func.count()).select_from(unassigned_devices)
                    ).scalar_one()
                )
        except SQLAlchemyError as exc:
            raise RetryableError(f"unassigned-devices table could not be created: {exc}") from exc

    # -- ingest side ---------------------------------------------------------------------

    def seen(self, device_id: str, kind: str, why: str, at: datetime) -> None:
        if self._max_devices == 0:
            return
        sighting = self._memory.get(device_id)
        if sighting is None:
            sighting = _Sighting(kind, why, at, at, 0, None)
            self._memory[device_id] = sighting
            while len(self._memory) > self._max_devices:
                self._memory.popitem(last=False)
        else:
            self._memory.move_to_end(device_id)
            sighting.kind, sighting.why = kind, why
            sighting.last_seen = max(sighting.last_seen, at)
        sighting.pending += 1
        due = (
            sighting.written_at is None
            or (at - sighting.written_at).total_seconds() >= self._write_every_s
        )
        if due:
            self._write(device_id, sighting, at)

    def _write(self, device_id: str, sighting: _Sighting, at: datetime) -> None:
        row = {
            "device_id": device_id,
            "kind": sighting.kind,
            "why": sighting.why,
            "first_seen": sighting.first_seen,
            "last_seen": sighting.last_seen,
            "count": sighting.pending,
        }
        first = sighting.written_at is None
        try:
            with self._engine.begin() as connection:
                if first and self._rows >= self._max_devices:
                    self._make_room(connection)
                connection.execute(self._upsert(), row)
        except SQLAlchemyError as exc:
            self.write_errors += 1
            sighting.written_at = at  # try again after write_every_s, not on every message
            log.warning("unassigned device %s not recorded (%s); kept in memory", device_id, exc)
            return
        if first:
            self._rows += 1
        sighting.pending = 0
        sighting.written_at = at

    def _make_room(self, connection: Connection) -> None:
        oldest = (
            select(unassigned_devices.c.device_id)
            .order_by(unassigned_devices.c.last_seen)
            .limit(max(1, self._rows - self._max_devices + 1))
        )
        result = connection.execute(
            delete(unassigned_devices).where(unassigned_devices.c.device_id.in_(oldest))
        )
        self._rows -= int(result.rowcount)

    def _upsert(self) -> Executable:
        table = unassigned_devices
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table)
        excluded = statement.excluded
        upsert: Executable = statement.on_conflict_do_update(
            index_elements=[table.c.device_id],
            set_={
                "kind": excluded.kind,
                "why": excluded.why,
                "first_seen": case(
                    (excluded.first_seen < table.c.first_seen, excluded.first_seen),
                    else_=table.c.first_seen,
                ),
                "last_seen": case(
                    (excluded.last_seen > table.c.last_seen, excluded.last_seen),
                    else_=table.c.last_seen,
                ),
                "count": table.c.count + excluded.count,
            },
        )
        return upsert

    # -- operator side -------------------------------------------------------------------

    def recent(self, limit: int = 1000) -> list[UnassignedDevice]:
        """Most recently seen first."""
        query = (
            select(unassigned_devices)
            .order_by(unassigned_devices.c.last_seen.desc(), unassigned_devices.c.device_id)
            .limit(max(limit, 0))
        )
        try:
            with self._engine.connect() as connection:
                rows = connection.execute(query).all()
        except SQLAlchemyError as exc:
            raise RetryableError(f"unassigned devices could not be read: {exc}") from exc
        return [
            UnassignedDevice(
                row.device_id, row.kind, row.why, row.first_seen, row.last_seen, row[5]
            )
            for row in rows
        ]
