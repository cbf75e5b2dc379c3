"""ISO weeks in local time (Asia/Ho_Chi_Minh): boundaries, parsing, stepping."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from reports.model import IsoWeek
from reports.weeks import (
    BadWeek,
    iso_week_of,
    last_complete_week,
    last_weeks,
    parse_week,
    previous,
    week_bounds,
    weeks_in,
)

ICT = ZoneInfo("Asia/Ho_Chi_Minh")


def test_sunday_2330_and_monday_0010_local_are_different_weeks() -> None:
    sunday_late = datetime(2026, 11, 22, 23, 30, tzinfo=ICT)  # 16:30 UTC Sunday
    monday_early = datetime(2026, 11, 23, 0, 10, tzinfo=ICT)  # 17:10 UTC, still Sunday in UTC
    assert monday_early.astimezone(UTC).weekday() == 6  # the UTC date would merge them
    assert iso_week_of(sunday_late.astimezone(UTC), ICT) == IsoWeek(2026, 47)
    assert iso_week_of(monday_early.astimezone(UTC), ICT) == IsoWeek(2026, 48)


def test_bounds_are_local_mondays_in_utc() -> None:
    start, end = week_bounds(IsoWeek(2026, 48), ICT)
    assert start == datetime(2026, 11, 22, 17, 0, tzinfo=UTC)  # Mon 23/11 00:00 ICT
    assert end == datetime(2026, 11, 29, 17, 0, tzinfo=UTC)
    assert start.tzinfo is UTC
    assert end.tzinfo is UTC


def test_year_boundaries() -> None:
    assert weeks_in(2026) == 53
    assert weeks_in(2025) == 52
    assert parse_week("2026-W53") == IsoWeek(2026, 53)
    assert IsoWeek(2026, 53).monday.isoformat() == "2026-12-28"
    # 1 January 2027 (a Friday) still belongs to 2026-W53.
    assert iso_week_of(datetime(2027, 1, 1, 12, tzinfo=ICT), ICT) == IsoWeek(2026, 53)
    assert previous(IsoWeek(2027, 1)) == IsoWeek(2026, 53)
    assert previous(IsoWeek(2026, 1)) == IsoWeek(2025, 52)
    assert previous(IsoWeek(2026, 53), -1) == IsoWeek(2027, 1)
    # 29 December 2025 (Monday) is already 2026-W01.
    assert iso_week_of(datetime(2025, 12, 29, 0, 0, tzinfo=ICT), ICT) == IsoWeek(2026, 1)


def test_last_weeks_oldest_first_across_the_year() -> None:
    weeks = last_weeks(IsoWeek(2027, 2), 12)
    assert len(weeks) == 12
    assert weeks[0] == IsoWeek(2026, 44)
    assert weeks[-1] == IsoWeek(2027, 2)
    assert weeks[-3] == IsoWeek(2026, 53)


def test_last_complete_week() -> None:
    # Sunday 29/11 23:59 ICT: W48 has not ended yet.
    assert last_complete_week(datetime(2026, 11, 29, 16, 59, tzinfo=UTC), ICT) == IsoWeek(2026, 47)
    assert last_complete_week(datetime(2026, 11, 29, 17, 0, tzinfo=UTC), ICT) == IsoWeek(2026, 48)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("2025-W53", "'2025-W53' does not exist (2025 has 52 weeks)"),
        ("2026-W00", "'2026-W00' does not exist"),
        ("2026-47", "must look like 2026-W47: '2026-47'"),
        ("", "must look like 2026-W47: ''"),
        ("2026-W7", "must look like 2026-W47: '2026-W7'"),
    ],
)
def test_parse_errors_name_the_value(text: str, said: str) -> None:
    with pytest.raises(BadWeek, match=said.replace("(", r"\(").replace(")", r"\)")):
        parse_week(text)


def test_str_round_trips() -> None:
    assert str(parse_week(" 2026-W07 ")) == "2026-W07"
