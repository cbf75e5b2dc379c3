"""Public-service counters of the demo's communes: what a Trung tâm Phục vụ hành chính công
would publish on ``gov/<service>/<unit_code>`` (ingest/contracts/gov.py).

Offices are open on working days (Monday to Friday) from 07:30 to 11:30 and 13:30 to 17:00
local time; outside those hours nothing is received, so nothing is published (public
holidays are not modelled). A message holds the counts of the period since the previous
one. Volumes follow the unit's size (an urban ward, "Phường"/"Thị trấn", receives more than
a rural commune); the on-time, online and paid-online rates differ between communes and
drift from week to week, so a league table has movement.

Counts are a pure function of (service, unit, period, seed), like the sensor readings of
ingest/simulate.py: the demo's history, the live simulator and the tests draw the same.
"""

from __future__ import annotations

import functools
import math
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from core.clock import LOCAL_TZ
from core.settings import LevelSettings, Settings
from ingest.demo_devices import URBAN_UNIT_TYPES

SERVICES = ("dossiers", "feedback")
# Office hours, local time (Mon-Fri); the lunch break between the two sessions.
WORKING_HOURS = ((time(7, 30), time(11, 30)), (time(13, 30), time(17, 0)))
WORKING_SECONDS_PER_DAY = 7.5 * 3600
URBAN_DOSSIERS_PER_DAY = (30.0, 60.0)  # received per working day, the range over units
RURAL_DOSSIERS_PER_DAY = (10.0, 30.0)
FEEDBACK_SHARE = 0.1  # citizen feedback: about a tenth of the dossier volume
RESOLVED_SHARE = 0.92  # dossiers resolved in a period, per dossier received in it
# A unit's usual on-time rate (766/QĐ-TTg group 2): most offices keep above the site's
# 95 % target, a few lag well behind it (so the demo's KPI alert names a handful of
# communes, not all of them).
ON_TIME_RANGE = (0.965, 0.998)
LATE_UNITS_SHARE = 0.15
LATE_ON_TIME_RANGE = (0.80, 0.92)
WEEKLY_DRIFT = 0.02  # ± this much from week to week around a unit's usual rate
ONLINE_RANGE = (0.45, 0.75)  # full-process online share; Đà Nẵng reached 58.89 % in 2024
URBAN_ONLINE_BONUS = 0.08
WITH_FEES_SHARE = 0.4  # dossiers that carry a fee or charge (phí, lệ phí)
PAID_ONLINE_RANGE = (0.30, 0.75)  # of those, paid online (1813/QĐ-TTg cashless payments)
HANDLED_SHARE = 0.9  # feedback handled in a period, per feedback received in it
FEEDBACK_ON_TIME_RANGE = (0.75, 0.98)  # 766/QĐ-TTg group 5 (a)


@dataclass(frozen=True, slots=True)
class GovUnit:
    """A unit that publishes counters: its code and whether it is an urban ward."""

    code: str
    urban: bool


@functools.lru_cache(maxsize=4)
def _scoped_units(
    units_file: Path, levels: tuple[LevelSettings, ...], scope: str | None
) -> tuple[GovUnit, ...]:
    from layers.levels import Hierarchy

    hierarchy = Hierarchy.from_csv(levels, units_file)
    lowest = hierarchy.levels[-1]
    return tuple(
        GovUnit(unit.code, unit.unit_type in URBAN_UNIT_TYPES)
        for unit in hierarchy.units_at(lowest)
        if scope is None or hierarchy.is_within(unit.code, scope)
    )


def gov_units(settings: Settings) -> tuple[GovUnit, ...]:
    """The units of the lowest hierarchy level inside ``layers.scope``, sorted by code."""
    units_file = settings.path(settings.hierarchy.units_file)
    units = _scoped_units(units_file, tuple(settings.hierarchy.levels), settings.layers.scope)
    return tuple(sorted(units, key=lambda unit: unit.code))


def gov_topic_template(settings: Settings) -> str | None:
    """The topic template of the first ``format: gov`` contract, None when there is none
    (then the ingest workers would not decode the counters: the simulator sends none)."""
    for contract in settings.ingest.contracts:
        if contract.format == "gov":
            return contract.topic
    return None


def gov_topic(template: str, service: str, unit_code: str) -> str:
    return template.replace("{service}", service).replace("{unit_code}", unit_code)


# ----------------------------------------------------------------------------- the model


def working_periods(
    start: datetime, end: datetime, timezone: ZoneInfo = LOCAL_TZ
) -> list[tuple[datetime, datetime]]:
    """The parts of [start, end) (aware) inside office hours, as aware UTC pairs."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError(f"working_periods needs aware datetimes, got {start!r}, {end!r}")
    periods: list[tuple[datetime, datetime]] = []
    day = start.astimezone(timezone).date()
    last_day = end.astimezone(timezone).date()
    while day <= last_day:
        if day.weekday() < 5:
            for opens, closes in WORKING_HOURS:
                begin = max(start, datetime.combine(day, opens, timezone))
                finish = min(end, datetime.combine(day, closes, timezone))
                if begin < finish:
                    periods.append((begin.astimezone(UTC), finish.astimezone(UTC)))
        day += timedelta(days=1)
    return periods


def _stable_fraction(*parts: object) -> float:
    """A number in [0, 1) fixed by ``parts`` across runs and processes."""
    return zlib.crc32(":".join(str(part) for part in parts).encode()) / 2**32


def _between(bounds: tuple[float, float], fraction: float) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * fraction


@functools.lru_cache(maxsize=16384)  # a demo history asks for each one ~40 times
def _rate(bounds: tuple[float, float], unit: GovUnit, purpose: str, week: str, seed: int) -> float:
    """A unit's usual rate plus this ISO week's drift, kept inside (0, 1)."""
    usual = _between(bounds, _stable_fraction(seed, purpose, unit.code))
    drift = WEEKLY_DRIFT * (2 * _stable_fraction(seed, purpose, unit.code, week) - 1)
    return min(0.995, max(0.05, usual + drift))


def daily_volume(unit: GovUnit, service: str, seed: int) -> float:
    """Expected messages received per working day: by unit size, then a tenth for feedback."""
    bounds = URBAN_DOSSIERS_PER_DAY if unit.urban else RURAL_DOSSIERS_PER_DAY
    dossiers = _between(bounds, _stable_fraction(seed, "volume", unit.code))
    return dossiers * FEEDBACK_SHARE if service == "feedback" else dossiers


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:  # Knuth's loop gets slow and underflows; the normal shape is close enough
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _binomial(rng: random.Random, trials: int, share: float) -> int:
    return sum(1 for _ in range(trials) if rng.random() < share)


def gov_counters(
    service: str,
    unit: GovUnit,
    start: datetime,
    end: datetime,
    *,
    seed: int,
    timezone: ZoneInfo = LOCAL_TZ,
) -> dict[str, int] | None:
    """The counters ``unit`` reports for [start, end) (aware), None when no part of it is in
    office hours. dossiers: received ≥ resolved ≥ resolved_on_time, received ≥ online,
    received ≥ with_fees ≥ paid_online; feedback: received ≥ handled ≥ handled_on_time."""
    if service not in SERVICES:
        raise ValueError(f"no counter model for service {service!r} (one of {SERVICES})")
    periods = working_periods(start, end, timezone)
    if not periods:
        return None
    return _counters(service, unit, start, end, periods, seed, timezone)


def _counters(
    service: str,
    unit: GovUnit,
    start: datetime,
    end: datetime,
    periods: Sequence[tuple[datetime, datetime]],
    seed: int,
    timezone: ZoneInfo,
) -> dict[str, int]:
    open_s = sum((finish - begin).total_seconds() for begin, finish in periods)
    year, week, _ = periods[0][0].astimezone(timezone).isocalendar()
    iso_week = f"{year}-W{week:02d}"
    rng = random.Random(f"{seed}:{service}:{unit.code}:{start.timestamp()}:{end.timestamp()}")
    mean = daily_volume(unit, service, seed) * open_s / WORKING_SECONDS_PER_DAY
    received = _poisson(rng, mean)
    if service == "feedback":
        handled = _binomial(rng, received, HANDLED_SHARE)
        on_time = _rate(FEEDBACK_ON_TIME_RANGE, unit, "feedback_on_time", iso_week, seed)
        return {
            "received": received,
            "handled": handled,
            "handled_on_time": _binomial(rng, handled, on_time),
        }
    resolved = _binomial(rng, received, RESOLVED_SHARE)
    late = _stable_fraction(seed, "late", unit.code) < LATE_UNITS_SHARE
    on_time = _rate(LATE_ON_TIME_RANGE if late else ON_TIME_RANGE, unit, "on_time", iso_week, seed)
    online_bounds = ONLINE_RANGE
    if unit.urban:
        online_bounds = (ONLINE_RANGE[0] + URBAN_ONLINE_BONUS, ONLINE_RANGE[1] + URBAN_ONLINE_BONUS)
    with_fees = _binomial(rng, received, WITH_FEES_SHARE)
    paid = _rate(PAID_ONLINE_RANGE, unit, "paid_online", iso_week, seed)
    return {
        "received": received,
        "resolved": resolved,
        "resolved_on_time": _binomial(rng, resolved, on_time),
        "online": _binomial(rng, received, _rate(online_bounds, unit, "online", iso_week, seed)),
        "with_fees": with_fees,
        "paid_online": _binomial(rng, with_fees, paid),
    }


def gov_messages(
    units: Sequence[GovUnit],
    start: datetime,
    end: datetime,
    *,
    seed: int,
    template: str = "gov/{service}/{unit_code}",
    timezone: ZoneInfo = LOCAL_TZ,
) -> list[tuple[str, dict[str, int]]]:
    """(topic, payload) of every unit and service for [start, end): ``ts`` (epoch ms) is the
    end of the last open moment of the period (17:00 for a period that runs past closing).
    Empty outside office hours; a unit with nothing to count sends nothing."""
    periods = working_periods(start, end, timezone)
    if not periods:
        return []
    ts = int(periods[-1][1].timestamp() * 1000)
    messages = []
    for unit in units:
        for service in SERVICES:
            counters = _counters(service, unit, start, end, periods, seed, timezone)
            if any(counters.values()):  # a period with nothing to count says nothing
                messages.append((gov_topic(template, service, unit.code), {"ts": ts, **counters}))
    return messages


class GovSchedule:
    """When the live simulator sends counters: at its first call a minute (``every``) after
    the last, those of every unit since then. Every 5 s would be ~40 messages a second for
    the Đà Nẵng communes, nearly all of them zero counts."""

    def __init__(
        self,
        template: str,
        units: Sequence[GovUnit],
        *,
        seed: int,
        timezone: ZoneInfo = LOCAL_TZ,
        every: timedelta = timedelta(minutes=1),
    ) -> None:
        self.template, self.units, self.seed = template, tuple(units), seed
        self.timezone, self.every = timezone, every
        self._since: datetime | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> GovSchedule | None:
        """None without a ``format: gov`` contract (nobody would decode the counters)."""
        template = gov_topic_template(settings)
        if template is None:
            return None
        return cls(
            template,
            gov_units(settings),
            seed=settings.simulator.seed,
            timezone=ZoneInfo(settings.site.timezone),
        )

    def start(self, now: datetime) -> None:
        self._since = now

    def due(self, now: datetime) -> list[tuple[str, dict[str, int]]]:
        """The messages to send at ``now``: none until ``every`` has passed since the last."""
        since = self._since
        if since is None or now - since < self.every:
            return []
        self._since = now
        return gov_messages(
            self.units, since, now, seed=self.seed, template=self.template, timezone=self.timezone
        )
