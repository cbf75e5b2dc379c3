"""Time ranges and the key figures of one unit (dashboard/kpi.py) on a fake store that
answers like the real ones and records every query."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from core.settings import Settings
from core.types import Aggregation, MetricRef, Point, SeriesPoint, UnitRef, UnitValue
from dashboard.access import Access
from dashboard.data import DashboardData
from dashboard.kpi import (
    RangeError,
    aggregate_buckets,
    ceil_to,
    kpi_frame,
    parse_range,
    unit_kpis,
    unit_trend,
)
from layers.geography import Geography
from tests.conftest import FakeClock

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 4, 1, 7, tzinfo=UTC)  # Wednesday 08:07 in Đà Nẵng
HAI_VAN = UnitRef("commune", "20194")
CAM_LE = UnitRef("commune", "20260")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class FakeStore:
    """One device per reading's unit code; answers latest_by_unit and series as the
    Store port says (windows [since, until), epoch-aligned buckets), and logs queries."""

    readings: list[tuple[str, str, datetime, float]] = field(default_factory=list)
    calls: list[tuple[str, str, datetime, datetime | None]] = field(default_factory=list)

    def add(self, field_name: str, code: str, at: datetime, value: float) -> None:
        self.readings.append((field_name, code, at, value))

    def write(self, points: Sequence[Point]) -> None:
        raise NotImplementedError

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
        self.calls.append(("latest", metric.field, since, until))
        last: dict[str, tuple[datetime, float]] = {}
        for name, code, at, value in sorted(self.readings, key=lambda r: r[2]):
            inside = since <= at and (until is None or at < until)
            if name == metric.field and inside and (parent is None or parent.code == code):
                last[code] = (at, value)
        return [UnitValue(code, value, at, 1) for code, (at, value) in sorted(last.items())]

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
        """Every reading in [start, end) per unit code (one device per code)."""
        self.calls.append(("window", metric.field, start, end))
        found: dict[str, list[tuple[datetime, float]]] = {}
        for name, code, at, value in sorted(self.readings, key=lambda r: r[2]):
            inside = start <= at < end
            if name == metric.field and inside and (parent is None or parent.code == code):
                found.setdefault(code, []).append((at, value))
        answer = []
        for code, rows in sorted(found.items()):
            numbers = [value for _, value in rows]
            combined = {
                "mean": sum(numbers) / len(numbers),
                "sum": sum(numbers),
                "max": max(numbers),
                "min": min(numbers),
                "last": rows[-1][1],
            }[aggregation]
            answer.append(UnitValue(code, combined, rows[-1][0], 1))
        return answer

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
        self.calls.append(("series", metric.field, start, end))
        buckets: dict[datetime, list[float]] = {}
        for name, code, at, value in self.readings:
            if name == metric.field and code == unit.code and start <= at < end:
                slot = _EPOCH + every * ((at - _EPOCH) // every)
                buckets.setdefault(slot, []).append(value)
        combine = max if aggregation == "max" else (lambda v: sum(v) / len(v))
        return [SeriesPoint(ts, combine(v)) for ts, v in sorted(buckets.items())]

    def close(self) -> None:
        pass


# -- ranges ---------------------------------------------------------------------------------


def test_live_is_the_last_24_hours_up_to_now() -> None:
    period = parse_range("live", None, None, NOW, TZ)
    assert (period.start, period.end, period.every) == (
        NOW - timedelta(hours=24),
        NOW,
        timedelta(minutes=15),
    )
    assert parse_range("nonsense", None, None, NOW, TZ).kind == "live"
    assert parse_range(None, "2026-11-01", "2026-11-02", NOW, TZ).kind == "live"


@pytest.mark.parametrize(
    ("kind", "end", "every", "days"),
    [
        ("24h", datetime(2026, 11, 4, 1, 15, tzinfo=UTC), timedelta(minutes=15), 1),
        ("7d", datetime(2026, 11, 4, 2, 0, tzinfo=UTC), timedelta(hours=1), 7),
        ("30d", datetime(2026, 11, 4, 6, 0, tzinfo=UTC), timedelta(hours=6), 30),
    ],
)
def test_presets_end_at_the_current_bucket(
    kind: str, end: datetime, every: timedelta, days: int
) -> None:
    period = parse_range(kind, None, None, NOW, TZ)
    assert (period.end, period.every, period.length) == (end, every, timedelta(days=days))
    assert period.previous == (end - 2 * timedelta(days=days), end - timedelta(days=days))
    # The same for every request within the bucket: one cache key for every screen.
    assert parse_range(kind, None, None, NOW + timedelta(minutes=7), TZ) == period
    assert period.query() == {"range": kind}


def test_custom_days_start_and_end_at_local_midnight() -> None:
    period = parse_range("custom", "2026-11-02", "2026-11-02", NOW, TZ)
    # 00:00 in Đà Nẵng (UTC+7) is 17:00 UTC the day before.
    assert period.start == datetime(2026, 11, 1, 17, 0, tzinfo=UTC)
    assert period.end == datetime(2026, 11, 2, 17, 0, tzinfo=UTC)
    assert period.start.astimezone(TZ).hour == 0
    assert period.every == timedelta(minutes=15)
    assert period.previous == (
        datetime(2026, 10, 31, 17, 0, tzinfo=UTC),
        datetime(2026, 11, 1, 17, 0, tzinfo=UTC),
    )
    assert period.query() == {"range": "custom", "start": "2026-11-02", "end": "2026-11-02"}
    # The date picker's value carries a time: the day is what counts.
    assert parse_range("custom", "2026-11-02T00:00:00", "2026-11-02", NOW, TZ) == period


def test_weeks_run_from_monday_to_sunday() -> None:
    period = parse_range("custom", "2026-W45", "2026-W45", NOW, TZ)
    assert (period.first_day, period.last_day) == (date(2026, 11, 2), date(2026, 11, 8))
    assert period.start.astimezone(TZ).strftime("%A %H:%M") == "Monday 00:00"
    assert period.end.astimezone(TZ).strftime("%A %H:%M") == "Monday 00:00"
    assert period.length == timedelta(days=7)
    assert period.every == timedelta(hours=1)
    assert period.previous[0].astimezone(TZ).date() == date(2026, 10, 26)  # the week before
    month = parse_range("custom", "2026-W40", "2026-W44", NOW, TZ)
    assert month.length == timedelta(days=35)
    assert month.every == timedelta(hours=6)


@pytest.mark.parametrize(
    ("start", "end", "vi", "en"),
    [
        (None, "2026-11-02", "Hãy chọn ngày bắt đầu", "Choose a first and a last day"),
        ("2026-13-01", "2026-11-02", "Ngày không hợp lệ: 2026-13-01", "Not a valid day"),
        ("2026-11-03", "2026-11-01", "Ngày kết thúc 2026-11-01 trước", "is before the first"),
        ("2026-11-05", "2026-11-06", "Ngày bắt đầu 2026-11-05 ở tương lai", "in the future"),
        ("2026-01-01", "2026-11-01", "dài quá 92 ngày", "longer than 92 days"),
    ],
)
def test_bad_custom_ranges_say_why(start: str | None, end: str, vi: str, en: str) -> None:
    with pytest.raises(RangeError) as caught:
        parse_range("custom", start, end, NOW, TZ)
    assert vi in caught.value.message("vi")
    assert en in caught.value.message("en")
    assert en in str(caught.value)  # the CSV export answers it as a 400
    assert isinstance(caught.value, ValueError)


def test_today_is_not_in_the_future() -> None:
    today = NOW.astimezone(TZ).date().isoformat()
    assert parse_range("custom", today, today, NOW, TZ).end > NOW


def test_ceil_to_epoch_buckets() -> None:
    assert ceil_to(NOW, timedelta(hours=6)) == datetime(2026, 11, 4, 6, tzinfo=UTC)
    exact = datetime(2026, 11, 4, 6, tzinfo=UTC)
    assert ceil_to(exact, timedelta(hours=6)) == exact


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("mean", 20.0), ("max", 30.0), ("min", 10.0), ("sum", 60.0), ("last", 30.0)],
)
def test_aggregate_buckets(aggregation: str, expected: float) -> None:
    assert aggregate_buckets(pd.Series([10.0, 20.0, float("nan"), 30.0]), aggregation) == expected
    assert math.isnan(aggregate_buckets(pd.Series([], dtype="float64"), aggregation))


# -- kpi_frame -------------------------------------------------------------------------------


@pytest.fixture
def store() -> FakeStore:
    fake = FakeStore()
    fake.add("pm25", "20194", NOW - timedelta(minutes=2), 60.0)
    fake.add("pm25", "20194", NOW - timedelta(hours=24, minutes=5), 48.0)  # 24 h earlier
    fake.add("pm25", "20194", NOW - timedelta(hours=30), 40.0)
    fake.add("pm10", "20194", NOW - timedelta(minutes=4), 100.0)
    fake.add("pm10", "20194", NOW - timedelta(hours=25), 0.0)
    fake.add("pm25", "20260", NOW - timedelta(minutes=1), 150.0)
    return fake


def data_of(store: FakeStore, settings: Settings, cache_s: float = 0.0) -> DashboardData:
    return DashboardData(
        store, settings.metrics, clock=FakeClock(NOW), level="commune", cache_s=cache_s
    )


def test_live_compares_the_latest_value_with_24_hours_earlier(
    store: FakeStore, settings: Settings
) -> None:
    frame = kpi_frame(
        store, settings.metrics, HAI_VAN, parse_range("live", None, None, NOW, TZ), NOW
    )
    assert list(frame.index) == list(settings.metrics)
    pm25 = frame.loc["pm25"]
    assert (pm25["value"], pm25["previous"]) == (60.0, 48.0)
    assert pm25["change"] == pytest.approx(12.0)
    assert pm25["change_pct"] == pytest.approx(25.0)
    assert pm25["ts"] == NOW - timedelta(minutes=2)
    assert pm25["devices"] == 1
    # The value 24 h earlier is the last one before then, asked with until=.
    befores = [call for call in store.calls if call[0] == "latest" and call[3] is not None]
    assert {call[3] for call in befores} == {datetime(2026, 11, 3, 1, 7, tzinfo=UTC)}
    pm10 = frame.loc["pm10"]
    assert (pm10["value"], pm10["previous"], pm10["change"]) == (100.0, 0.0, 100.0)
    assert math.isnan(pm10["change_pct"])  # no percentage of zero
    water = frame.loc["water_level"]
    assert math.isnan(water["value"])
    assert math.isnan(water["change"])
    assert water["devices"] == 0
    assert pd.isna(water["ts"])


def test_a_range_aggregates_its_buckets_and_compares_with_the_period_before(
    store: FakeStore, settings: Settings
) -> None:
    period = parse_range("24h", None, None, NOW, TZ)
    store.add("pm25", "20194", NOW - timedelta(hours=3), 20.0)  # another 15-min bucket
    frame = kpi_frame(data_of(store, settings), settings.metrics, HAI_VAN, period, NOW)
    assert frame.loc["pm25", "value"] == pytest.approx(40.0)  # mean of the buckets 60, 20
    assert frame.loc["pm25", "previous"] == pytest.approx(44.0)  # buckets 48 and 40
    assert frame.loc["pm25", "change"] == pytest.approx(-4.0)
    assert frame.loc["pm25", "change_pct"] == pytest.approx(-100 * 4 / 44)
    assert frame.loc["pm25", "ts"] == NOW - timedelta(minutes=2)
    series = [call for call in store.calls if call[0] == "series" and call[1] == "pm25"]
    assert [(call[2], call[3]) for call in series] == [
        (period.start, period.end),
        period.previous,
    ]


def test_queries_are_shared_through_the_cache(store: FakeStore, settings: Settings) -> None:
    data = data_of(store, settings, cache_s=60)
    for kind in ("live", "7d"):
        period = parse_range(kind, None, None, NOW, TZ)
        kpi_frame(data, settings.metrics, HAI_VAN, period, NOW)
        asked = len(store.calls)
        kpi_frame(data, settings.metrics, HAI_VAN, period, NOW + timedelta(seconds=20))
        assert len(store.calls) == asked, kind  # a second screen: no new store query


def test_a_unit_out_of_reach_answers_no_data_without_a_query(
    store: FakeStore, settings: Settings, geography: Geography
) -> None:
    officer = Access(geography.hierarchy, ["20194"], role="operator", username="hai-van")
    data = data_of(store, settings)
    period = parse_range("live", None, None, NOW, TZ)
    mine = unit_kpis(data, officer, HAI_VAN, period, NOW)
    assert mine.loc["pm25", "value"] == 60.0
    store.calls.clear()
    theirs = unit_kpis(data, officer, CAM_LE, period, NOW)
    assert store.calls == []
    unknown = unit_kpis(data, officer, UnitRef("commune", "99999"), period, NOW)
    pd.testing.assert_frame_equal(theirs, unknown)
    assert theirs["value"].isna().all()
    assert (theirs["devices"] == 0).all()
    assert unit_trend(data, officer, "pm25", CAM_LE, period).empty
    assert store.calls == []
    assert not unit_trend(data, officer, "pm25", HAI_VAN, period).empty
    with pytest.raises(KeyError, match="no2"):
        unit_trend(data, officer, "no2", CAM_LE, period)
