"""Derived metrics: VN_AQI per administrative unit, written back to the store.

Once per local hour the job (run by the active alert evaluator, alerts/service.py ``jobs``)
computes, for every unit of every hierarchy level that has PM readings, the hourly VN_AQI
of the last complete local hour, and after local midnight the daily VN_AQI of the day
before (core/aqi.py, Decision 1459/QĐ-TCMT). A unit's input is the hourly mean of all its
devices' readings (``Store.window_by_unit``, one query per pollutant, level and hour).

Each value is a Point like a public-service counter (ingest/contracts/gov.py): measurement
``aqi``, field ``hourly`` or ``daily``, timestamp = the start of the hour or day, tags =
the unit's code at its level and every level above, and ``device`` = ``unit-<code>``. So
``latest_by_unit(aqi.hourly, level)`` rolls every index written inside a unit up with the
metric's aggregation (``max`` in the catalogue: a province shows the worst of its own
index and its communes').

Rewriting a point is harmless (the store replaces it). The first run backfills 48 hours
and 2 days; later runs do only what became due since (nothing at all within an hour).
Hourly means are kept in memory while a later hour's NowCast still needs them, so a run
reads each (pollutant, level, hour) once; a reading that arrives after its hour was read
does not change that hour's index.
"""

from __future__ import annotations

import logging
import math
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.aqi import GASES, NOWCAST_HOURS, PM, POLLUTANTS, AqiResult, daily_aqi, hourly_aqi
from core.clock import SystemClock
from core.errors import ConfigError
from core.ports import Clock, Store
from core.settings import Settings
from core.types import MetricRef, Point
from layers.levels import Hierarchy

log = logging.getLogger("cityops.alerts.derive")

AQI_MEASUREMENT = "aqi"
HOURLY_FIELD = "hourly"
DAILY_FIELD = "daily"
SOURCE_PREFIX = "unit-"  # as ingest/contracts/gov.py: one source per unit
BACKFILL_HOURS = 48
BACKFILL_DAYS = 2
HOUR = timedelta(hours=1)
WRITE_BATCH = 1000
_MICROGRAMS = unicodedata.normalize("NFKC", "µg/m³")

Means = dict[str, float]  # unit code → the hourly mean of its readings


class AqiDeriver:
    """``run(now)`` writes the VN_AQI points that became due and returns how many. Reads the
    catalogue metrics named pm25, pm10, o3, co, so2, no2 that exist (each in µg/m³)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        hierarchy: Hierarchy,
        clock: Clock | None = None,
        *,
        settle: timedelta = timedelta(minutes=1),
    ) -> None:
        self._store = store
        self._hierarchy = hierarchy
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._tz = ZoneInfo(settings.site.timezone)
        # An hour is read this long after it ends, so readings in flight have landed.
        self._settle = settle
        self._inputs: dict[str, MetricRef] = {}
        for pollutant in POLLUTANTS:
            metric = settings.metrics.get(pollutant)
            if metric is None:
                continue
            if unicodedata.normalize("NFKC", metric.unit) != _MICROGRAMS:
                raise ConfigError(
                    f"metrics.{pollutant}.unit", metric.unit, "must be µg/m³ for VN_AQI"
                )
            self._inputs[pollutant] = metric.ref
        self._means: dict[tuple[str, str, datetime], Means] = {}
        self._hour_done: datetime | None = None
        self._day_done: datetime | None = None

    @property
    def pollutants(self) -> tuple[str, ...]:
        return tuple(self._inputs)

    def run(self, now: datetime | None = None) -> int:
        """Write what is due at ``now`` (aware; the clock's time when None). Raises the
        store's CityOpsError (nothing is marked done then, so the next run tries again)."""
        if now is None:
            now = self._clock.now()
        if now.tzinfo is None:
            raise ValueError(f"AqiDeriver.run needs an aware datetime: {now!r}")
        if not any(pollutant in self._inputs for pollutant in PM):
            return 0  # no PM in the catalogue: no VN_AQI can exist
        last_hour = self.hour_start(now - self._settle) - HOUR
        last_day = self.day_start(now - self._settle) - timedelta(days=1)
        first_hour = last_hour - (BACKFILL_HOURS - 1) * HOUR
        first_day = self.day_start(last_day - timedelta(days=BACKFILL_DAYS - 1, hours=-12))
        hours = _due(self._hour_done, first_hour, last_hour, self._step_hour)
        days = _due(self._day_done, first_day, last_day, self._step_day)
        if not hours and not days:
            return 0
        points: list[Point] = []
        for level in self._hierarchy.levels:
            for hour in hours:
                points.extend(self._hourly_points(level, hour))
            for day in days:
                points.extend(self._daily_points(level, day))
        for start in range(0, len(points), WRITE_BATCH):
            self._store.write(points[start : start + WRITE_BATCH])
        self._hour_done, self._day_done = last_hour, last_day
        # Keep what the next hour's NowCast and the day in progress will read again.
        self._forget_before(min(last_hour - (NOWCAST_HOURS - 2) * HOUR, self._step_day(last_day)))
        if points:
            log.info(
                "VN_AQI: %d points (%d hours, %d days) up to %s",
                len(points),
                len(hours),
                len(days),
                last_hour.isoformat(),
            )
        return len(points)

    # -- time ---------------------------------------------------------------------------

    def hour_start(self, moment: datetime) -> datetime:
        """The start (UTC) of the local hour holding ``moment``."""
        local = moment.astimezone(self._tz)
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)

    def day_start(self, moment: datetime) -> datetime:
        """The local midnight (as UTC) that starts the local day holding ``moment``."""
        local_date = moment.astimezone(self._tz).date()
        return datetime.combine(local_date, time(), self._tz).astimezone(UTC)

    def _step_hour(self, hour: datetime) -> datetime:
        return hour + HOUR

    def _step_day(self, day: datetime) -> datetime:
        return self.day_start(day + timedelta(hours=36))  # right across a DST change too

    def _day_hours(self, day: datetime) -> list[datetime]:
        end = self._step_day(day)
        hours, hour = [], day
        while hour < end:
            hours.append(hour)
            hour += HOUR
        return hours

    # -- values -------------------------------------------------------------------------

    def _hourly_points(self, level: str, hour: datetime) -> list[Point]:
        history = [hour - age * HOUR for age in range(NOWCAST_HOURS)]
        pm = {p: [self._mean(p, level, h) for h in history] for p in PM if p in self._inputs}
        gases = {p: self._mean(p, level, hour) for p in GASES if p in self._inputs}

        def index(code: str) -> AqiResult | None:
            return hourly_aqi(
                {p: [means.get(code) for means in hours] for p, hours in pm.items()},
                {p: means.get(code) for p, means in gases.items()},
            )

        codes: set[str] = set().union(*_codes(pm))
        return self._points(level, codes, index, HOURLY_FIELD, hour)

    def _daily_points(self, level: str, day: datetime) -> list[Point]:
        hours = self._day_hours(day)
        series = {p: [self._mean(p, level, h) for h in hours] for p in self._inputs}

        def index(code: str) -> AqiResult | None:
            return daily_aqi({p: [means.get(code) for means in s] for p, s in series.items()})

        codes: set[str] = set().union(*(means for p in PM if p in series for means in series[p]))
        return self._points(level, codes, index, DAILY_FIELD, day)

    def _points(
        self,
        level: str,
        codes: Iterable[str],
        index: Callable[[str], AqiResult | None],
        field: str,
        ts: datetime,
    ) -> list[Point]:
        points = []
        for code in sorted(codes):
            unit = self._hierarchy.get(code)
            if unit is None or unit.level != level:
                continue  # "unassigned", or a code the geography no longer has
            result = index(code)
            if result is None:
                continue
            tags = {"device": SOURCE_PREFIX + code, **self._hierarchy.level_tags(code)}
            points.append(Point(AQI_MEASUREMENT, tags, {field: float(result.value)}, ts))
        return points

    def _mean(self, pollutant: str, level: str, hour: datetime) -> Means:
        key = (pollutant, level, hour)
        cached = self._means.get(key)
        if cached is not None:
            return cached
        found = self._store.window_by_unit(
            self._inputs[pollutant], level, start=hour, end=hour + HOUR, aggregation="mean"
        )
        means: Means = {}
        for each in found:
            if math.isfinite(each.value) and each.value >= 0:
                means[each.code] = each.value
            else:
                log.warning(
                    "VN_AQI: %s mean %r of %s %s at %s left out (not a concentration)",
                    pollutant,
                    each.value,
                    level,
                    each.code,
                    hour.isoformat(),
                )
        self._means[key] = means
        return means

    def _forget_before(self, oldest: datetime) -> None:
        for key in [key for key in self._means if key[2] < oldest]:
            del self._means[key]


def _codes(pm: dict[str, list[Means]]) -> list[Means]:
    """The current hour and the two before of every PM input: a NowCast needs 2 of them."""
    return [means for hours in pm.values() for means in hours[:3]]


def _due(
    done: datetime | None,
    first: datetime,
    last: datetime,
    advance: Callable[[datetime], datetime],
) -> list[datetime]:
    """The periods from ``first`` (the backfill's start) to ``last``, without those up to
    ``done``."""
    if done is not None and done >= last:
        return []
    if done is not None:
        first = max(first, advance(done))
    periods, period = [], first
    while period <= last:
        periods.append(period)
        period = advance(period)
    return periods
