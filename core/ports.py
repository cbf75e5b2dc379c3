"""Ports: the interfaces between cityops parts. Adapters implement them; callers depend on them.

Each method says who calls it. Adapters live in ``core/store`` (stores), ``ingest``
(MQTT), ``alerts`` (SMTP); ``core/cli.py`` wires production, tests wire fakes or
real local servers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from core.types import (
    Aggregation,
    DeadLetter,
    MetricRef,
    Notification,
    Point,
    SeriesPoint,
    UnitRef,
    UnitValue,
)


class Clock(Protocol):
    """Time source. Called by alerts, ingest and the dashboard; tests pass a fake."""

    def now(self) -> datetime:
        """Timezone-aware UTC now."""
        ...


class Store(Protocol):
    """Time-series store (InfluxDB, SQLite).

    Writes are idempotent: a point with the same measurement, tags and timestamp
    replaces the earlier one (a replayed MQTT message does not duplicate).
    """

    def write(self, points: Sequence[Point]) -> None:
        """Called by the ingest worker with one batch. Raises RetryableError when the
        store cannot take it now (the caller keeps the batch), PermanentError when the
        data itself is refused."""
        ...

    def latest_by_unit(
        self,
        metric: MetricRef,
        level: str,
        *,
        since: datetime,
        parent: UnitRef | None = None,
        aggregation: Aggregation = "mean",
        until: datetime | None = None,
    ) -> list[UnitValue]:
        """Called by the dashboard map, the alert evaluator and the map at a past moment
        (dashboard/history.py, which passes ``until``).

        For every device with a value of ``metric`` at or after ``since`` (and before
        ``until`` when given: the window is [since, until)), take its last value in that
        window; group devices by their ``level`` tag (only those tagged ``parent.code``
        at ``parent.level`` when a parent is given) and combine with ``aggregation``.
        Units without data are absent. Sorted by code."""
        ...

    def window_by_unit(
        self,
        metric: MetricRef,
        level: str,
        *,
        start: datetime,
        end: datetime,
        aggregation: Aggregation,
        parent: UnitRef | None = None,
    ) -> list[UnitValue]:
        """Called by the alert rules (alerts/rules.py: a window's mean, a KPI's sums).

        ``aggregation`` over every reading in [start, end) of the devices tagged with each
        unit at ``level`` (``"device"``: each device on its own; only those tagged
        ``parent.code`` at ``parent.level`` when a parent is given). ``mean`` is the mean of
        all the readings, not of per-device means; ``last`` the newest reading. ``ts`` is
        the newest reading's time, ``devices`` the distinct devices. Units without
        readings are absent. Sorted by code."""
        ...

    def series(
        self,
        metric: MetricRef,
        unit: UnitRef,
        *,
        start: datetime,
        end: datetime,
        every: timedelta,
        aggregation: Aggregation = "mean",
    ) -> list[SeriesPoint]:
        """Called by the dashboard trend panel: all readings of the unit's devices in
        [start, end) grouped into buckets of ``every`` aligned to the Unix epoch;
        empty buckets are absent. Sorted by time."""
        ...

    def close(self) -> None:
        """Release connections. Called once by whoever built the store."""
        ...


class DeadLetterStore(Protocol):
    """Where messages that cannot be ingested are kept, with their reason."""

    def put(self, letter: DeadLetter) -> None:
        """Called by the ingest worker for each bad message."""
        ...

    def count(self) -> int:
        """Called by the dashboard and the CLI: how many letters are kept."""
        ...

    def recent(self, limit: int = 50) -> list[DeadLetter]:
        """Called by the dashboard and the CLI: newest first."""
        ...


class UnassignedDevices(Protocol):
    """Devices stored under the "unassigned" unit (unregistered without a position, or
    outside the map), kept so an operator can register them."""

    def seen(self, device_id: str, kind: str, why: str, at: datetime) -> None:
        """Called by the ingest Enricher for every reading of such a device, on the ingest
        thread: must be cheap (write rarely) and must not raise."""
        ...


class Notifier(Protocol):
    """Delivers a notification (e-mail). Called by the alert pipeline's send stage."""

    def send(self, notification: Notification) -> None:
        """Raises RetryableError (server unreachable, 4xx) or PermanentError (5xx)."""
        ...
