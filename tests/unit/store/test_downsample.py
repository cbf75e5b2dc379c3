"""The pure part of retention (core/store/downsample.py) and its settings."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import parse_settings
from core.settings_retention import RetentionSettings
from core.store import SqliteStore
from core.store.downsample import (
    CATCH_UP_MS,
    DAY_MS,
    HOUR_MS,
    LOOKBACK_MS,
    RetainingStore,
    WindowPlan,
    assumed_edge,
    catch_up_end,
    ceil_hour,
    floor_hour,
    hour_runs,
    late_hours,
    merge_stats,
    plan_window,
    raw_prune_edge,
    recompute_from,
    retention_job,
    slices,
)
from core.store.rollup import DeviceStats
from core.types import MetricRef, Point, UnitValue

H = HOUR_MS
EDGE = 1_000 * H  # the rolled-up edge (a whole hour)


def test_hours_are_epoch_aligned_before_1970_too() -> None:
    assert (floor_hour(H + 1), ceil_hour(H + 1)) == (H, 2 * H)
    assert (floor_hour(2 * H), ceil_hour(2 * H)) == (2 * H, 2 * H)
    assert (floor_hour(-1), ceil_hour(-1)) == (-H, 0)


def test_a_short_recent_window_is_read_raw() -> None:
    start, end = EDGE - 5 * H - 17, EDGE - 123
    assert plan_window(start, end, EDGE, raw_days=30) == WindowPlan(((start, end),), None)


def test_a_long_window_reads_its_whole_hours_from_roll_ups_and_its_edges_raw() -> None:
    start, end = EDGE - 3 * DAY_MS - 1_234, EDGE - H + 5
    plan = plan_window(start, end, EDGE, raw_days=30)
    first = EDGE - 3 * DAY_MS
    assert plan == WindowPlan(((start, first), (EDGE - H, end)), (first, EDGE - H))


def test_hours_above_the_rolled_up_edge_are_read_raw() -> None:
    start, end = EDGE - 3 * DAY_MS, EDGE + 2 * H + 7
    plan = plan_window(start, end, EDGE, raw_days=30)
    assert plan == WindowPlan(((EDGE, end),), (start, EDGE))


def test_without_roll_ups_everything_is_raw() -> None:
    start, end = 0, 400 * DAY_MS
    assert plan_window(start, end, None, raw_days=30) == WindowPlan(((start, end),), None)


def test_a_short_window_before_the_raw_edge_reads_roll_ups() -> None:
    start = EDGE - 31 * DAY_MS  # older than raw_days: the readings may be gone
    plan = plan_window(start, start + 5 * H, EDGE, raw_days=30)
    assert plan == WindowPlan((), (start, start + 5 * H))


def test_a_window_inside_one_hour_is_raw() -> None:
    start = EDGE - 10 * DAY_MS + 60_000
    assert plan_window(start, start + 60_000, EDGE, raw_days=1).rollup is None


def test_merge_adds_counts_and_sums_and_keeps_the_extremes() -> None:
    head = [DeviceStats("aq-1", "20194", 2, 3.0, 1.0, 2.0)]
    hours = [
        DeviceStats("aq-1", "20194", 10, 50.0, 0.5, 9.0),
        DeviceStats("aq-2", "20194", 1, 4.0, 4.0, 4.0),
    ]
    tail = [DeviceStats("aq-1", "20194", 1, 12.0, 12.0, 12.0)]
    merged = {(row.device, row.unit): row for row in merge_stats([head, hours, tail])}
    assert merged == {
        ("aq-1", "20194"): DeviceStats("aq-1", "20194", 13, 65.0, 0.5, 12.0),
        ("aq-2", "20194"): DeviceStats("aq-2", "20194", 1, 4.0, 4.0, 4.0),
    }


def test_a_run_starts_a_few_hours_before_the_edge_or_at_the_oldest_reading() -> None:
    assert recompute_from(EDGE, None) == EDGE - LOOKBACK_MS
    assert recompute_from(None, 5 * H + 99) == 5 * H
    assert recompute_from(None, None) is None


def test_a_run_recomputes_at_most_a_week_of_a_backlog() -> None:
    assert catch_up_end(EDGE - LOOKBACK_MS, EDGE + H) == EDGE + H  # a normal run: all of it
    start = EDGE - 30 * DAY_MS + 17  # a month behind: one week, from the start's hour
    assert catch_up_end(start, EDGE) == floor_hour(start) + CATCH_UP_MS == start - 17 + 7 * DAY_MS
    assert CATCH_UP_MS > LOOKBACK_MS  # every bounded run moves the edge forward


def test_a_writer_that_cannot_read_the_edge_marks_hours_older_than_the_look_back() -> None:
    now = EDGE + 25 * 60_000  # 25 minutes past the hour of the last run at the latest
    assert assumed_edge(now) == EDGE - LOOKBACK_MS
    assert late_hours([EDGE - LOOKBACK_MS, EDGE - 1], assumed_edge(now)) == []
    assert late_hours([EDGE - LOOKBACK_MS - 1], assumed_edge(now)) == [EDGE - LOOKBACK_MS - H]


def test_slices_cover_the_whole_hours_once() -> None:
    parts = slices(H + 5, 20 * DAY_MS + 3)
    assert parts[0][0] == H
    assert parts[-1][1] == 20 * DAY_MS
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))


def test_late_hours_are_those_below_the_edge_and_runs_join_them() -> None:
    assert late_hours([EDGE + 5, EDGE], EDGE) == []
    assert late_hours([EDGE - 1, EDGE - H - 1, EDGE - 1, EDGE + 9], EDGE) == [
        EDGE - 2 * H,
        EDGE - H,
    ]
    assert late_hours([0], None) == []
    assert hour_runs([5 * H, 3 * H, 4 * H, 9 * H]) == [(3 * H, 6 * H), (9 * H, 10 * H)]


def test_readings_are_pruned_only_once_rolled_up() -> None:
    now = 100 * DAY_MS
    assert raw_prune_edge(now, 30, None) is None
    assert raw_prune_edge(now, 30, now) == now - 30 * DAY_MS
    assert raw_prune_edge(now, 30, 50 * DAY_MS) == 50 * DAY_MS  # roll-ups behind


def test_the_periodic_job_rolls_up_then_prunes(tmp_path: Path) -> None:
    """What the active alert evaluator runs (alerts/wiring.py), on a real SQLite store."""
    store = SqliteStore(tmp_path / "ts.sqlite", retention=RetentionSettings(raw_days=1))
    assert isinstance(store, RetainingStore)
    now = datetime(2026, 11, 2, 12, tzinfo=UTC)
    old = now - timedelta(days=1, hours=5, minutes=20)
    pm25 = MetricRef("air", "pm25")
    try:
        store.write([Point("air", {"device": "aq-1", "commune": "20194"}, {"pm25": 10.5}, old)])
        assert retention_job(store)(now) == 30  # every hour from the reading's to now's
        assert store.latest_by_unit(pm25, "commune", since=old) == []  # the reading is gone
        got = store.window_by_unit(
            pm25, "commune", start=old - timedelta(hours=1), end=now, aggregation="sum"
        )
        hour = old.replace(minute=0)  # a pruned reading's time: its hour's start
        assert got == [UnitValue("20194", 10.5, hour, 1)]
    finally:
        store.close()


# -- settings ---------------------------------------------------------------------------


def retention(**keys: object) -> RetentionSettings:
    settings = parse_settings({"store": {"retention": keys}}).store.retention
    assert settings is not None
    return settings


def test_retention_is_off_unless_configured() -> None:
    assert parse_settings({}).store.retention is None
    defaults = retention()
    assert (defaults.raw_days, defaults.rollup_days, defaults.rollup_every) == (90, 1100, "1h")


@pytest.mark.parametrize(
    ("keys", "key", "words"),
    [
        ({"raw_days": 0}, "store.retention.raw_days", "must be at least 1"),
        ({"raw_days": 7.5}, "store.retention.raw_days", "whole number of days"),
        ({"raw_days": 30, "rollup_days": 10}, "store.retention.rollup_days", "raw_days (30)"),
        ({"rollup_every": "5m"}, "store.retention.rollup_every", "must be '1h'"),
        ({"raw_day": 30}, "store.retention.raw_day", "not a known setting"),
    ],
)
def test_bad_retention_names_the_key(keys: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        retention(**keys)
    assert caught.value.key == key
    assert words in str(caught.value)
