"""ISO weeks in the site's local time: Monday 00:00 to the next Monday 00:00 (exclusive).

A reading belongs to the week of its LOCAL date: Sunday 23:30 ICT is still that week,
Monday 00:10 ICT is the next one, although both are on Sunday in UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from core.errors import CityOpsError
from reports.model import IsoWeek

_WEEK_TEXT = re.compile(r"^(\d{4})-W(\d{2})$")


class BadWeek(CityOpsError, ValueError):
    """A week text that is not an ISO week such as 2026-W47 (the message names it)."""


def iso_week_of(moment: datetime, tz: tzinfo) -> IsoWeek:
    """The ISO week holding ``moment`` (tz-aware) in local time ``tz``."""
    if moment.tzinfo is None:
        raise ValueError(f"moment must be timezone-aware: {moment!r}")
    year, week, _ = moment.astimezone(tz).isocalendar()
    return IsoWeek(year, week)


def week_bounds(week: IsoWeek, tz: tzinfo) -> tuple[datetime, datetime]:
    """(start, end) in UTC: Monday 00:00 local and the next Monday 00:00 local."""
    monday = week.monday
    start = datetime.combine(monday, time(0), tzinfo=tz)
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def week_days(week: IsoWeek) -> tuple[date, date]:
    """Its Monday and its Sunday (local dates)."""
    return week.monday, week.monday + timedelta(days=6)


def parse_week(text: str) -> IsoWeek:
    """ "2026-W47" → IsoWeek(2026, 47). BadWeek naming the value when it is not one (the
    week must exist: 2026-W53 does, 2025-W53 does not)."""
    found = _WEEK_TEXT.match(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise BadWeek(f"week must look like 2026-W47: {text!r}")
    year, number = int(found[1]), int(found[2])
    try:
        date.fromisocalendar(year, number, 1)
    except ValueError:
        raise BadWeek(f"week {text!r} does not exist ({year} has {weeks_in(year)} weeks)") from None
    return IsoWeek(year, number)


def weeks_in(year: int) -> int:
    """52 or 53: the ISO week of 28 December is always the year's last."""
    return date(year, 12, 28).isocalendar()[1]


def previous(week: IsoWeek, n: int = 1) -> IsoWeek:
    """The week ``n`` weeks before (``n`` < 0: after)."""
    year, number, _ = (week.monday - timedelta(weeks=n)).isocalendar()
    return IsoWeek(year, number)


def last_weeks(week: IsoWeek, count: int = 12) -> tuple[IsoWeek, ...]:
    """The ``count`` weeks ending with ``week``, oldest first."""
    return tuple(previous(week, back) for back in range(count - 1, -1, -1))


def last_complete_week(now: datetime, tz: tzinfo) -> IsoWeek:
    """The newest week that has ended at ``now``: the one before the current week."""
    return previous(iso_week_of(now, tz))
