"""The roll-up shared by both adapters, and millisecond time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.store.rollup import (
    DeviceLast,
    check_aggregation,
    epoch_ms,
    every_ms,
    newest_per_device,
    roll_up,
    utc_from_ms,
)
from core.types import Aggregation, UnitValue

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
T0_MS = epoch_ms(T0)


def row(device: str, unit: str, offset_ms: int, value: float) -> DeviceLast:
    return DeviceLast(device, unit, T0_MS + offset_ms, value)


ROWS = [
    row("a", "20194", 100, 10.0),
    row("b", "20194", 300, 30.0),
    row("c", "20194", 200, 20.0),
    row("d", "20260", 50, 7.0),
]


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("mean", 20.0), ("max", 30.0), ("min", 10.0), ("sum", 60.0), ("last", 30.0)],
)
def test_roll_up_per_unit(aggregation: Aggregation, expected: float) -> None:
    result = roll_up(reversed(ROWS), aggregation)
    assert result == [
        UnitValue("20194", expected, utc_from_ms(T0_MS + 300), 3),
        UnitValue("20260", 7.0, utc_from_ms(T0_MS + 50), 1),
    ]


def test_mean_is_exactly_rounded() -> None:
    rows = [row(str(n), "u", n, 0.1) for n in range(10)]
    assert roll_up(rows, "mean")[0].value == 0.1
    assert roll_up(rows, "sum")[0].value == 1.0


def test_a_device_that_moved_counts_once_where_it_was_last() -> None:
    rows = [row("bus-1", "20194", 100, 50.0), row("bus-1", "20260", 200, 60.0)]
    assert roll_up(rows, "mean") == [UnitValue("20260", 60.0, utc_from_ms(T0_MS + 200), 1)]
    tie = [row("bus-1", "20260", 100, 60.0), row("bus-1", "20194", 100, 50.0)]
    assert [unit.code for unit in roll_up(tie, "mean")] == ["20260"]
    assert [unit.code for unit in roll_up(reversed(tie), "mean")] == ["20260"]


def test_points_without_device_tag_are_one_source_per_unit() -> None:
    rows = [row("", "20194", 100, 5.0), row("", "20260", 50, 9.0), row("a", "20194", 10, 1.0)]
    assert newest_per_device(rows) == rows
    assert [(u.code, u.value, u.devices) for u in roll_up(rows, "sum")] == [
        ("20194", 6.0, 2),
        ("20260", 9.0, 1),
    ]


def test_devices_outside_every_unit_are_left_out() -> None:
    assert roll_up([row("a", "", 100, 5.0)], "mean") == []
    # ... even when an older point placed it in a unit: it is no longer there
    assert roll_up([row("a", "20194", 50, 1.0), row("a", "", 100, 5.0)], "mean") == []


def test_last_breaks_timestamp_ties_by_device_id_whatever_the_order() -> None:
    rows = [row("a", "u", 100, 1.0), row("b", "u", 100, 2.0)]
    assert roll_up(rows, "last")[0].value == 2.0
    assert roll_up(list(reversed(rows)), "last")[0].value == 2.0


def test_check_aggregation() -> None:
    assert check_aggregation("sum") == "sum"
    with pytest.raises(ValueError, match="one of mean, max, min, sum, last: 'median'"):
        check_aggregation("median")


def test_epoch_ms_is_exact_and_truncates_sub_ms() -> None:
    assert epoch_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert epoch_ms(T0 + timedelta(microseconds=999_999)) == T0_MS + 999
    assert epoch_ms(datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)) == -1
    assert epoch_ms(T0.astimezone(timezone(timedelta(hours=7)))) == T0_MS
    assert utc_from_ms(T0_MS + 1) == T0 + timedelta(milliseconds=1)
    assert utc_from_ms(T0_MS).tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        epoch_ms(datetime(2026, 11, 2))


def test_every_ms() -> None:
    assert every_ms(timedelta(hours=1)) == 3_600_000
    assert every_ms(timedelta(milliseconds=1)) == 1
    with pytest.raises(ValueError, match="positive whole number"):
        every_ms(timedelta(microseconds=1))
    with pytest.raises(ValueError, match="positive whole number"):
        every_ms(timedelta(0))
    with pytest.raises(ValueError, match="positive whole number"):
        every_ms(timedelta(milliseconds=-5))
