"""VN_AQI derived per unit (alerts/derive.py) on a real SqliteStore: readings of two Đà Nẵng
communes over 14 hours, the deriver run as the alert engine would, the indices read back
the way the dashboard reads any metric (``latest_by_unit`` at each level).

Readings: 18:00 on 3 November to 08:00 on 4 November, local time (11:00–01:00 UTC), two
per device per hour (at :10 and :40).
* Hải Vân (20194): aq-1 PM2.5 30 / PM10 60, aq-2 PM2.5 40 / PM10 80, every hour → hourly
  means 35 and 70 → PM2.5 50 + 50/25 × 10 = 70, PM10 50 + 50/100 × 20 = 60 → VN_AQI 70.
* Cẩm Lệ (20260): aq-3, PM2.5 only: 20, but 40 at 06:00 and 60 at 07:00 local.
  The 07:00 NowCast: c = 60, 40, 20 × 10; w* = 20/60 < 0.5 → w = 0.5;
  Σ 0.5ⁱ⁻¹ cᵢ / Σ 0.5ⁱ⁻¹ = (60 + 20 + 5 + 20 × 0.2495) / 1.99951 = 45.006
  → 50 + 2 × 20.006 = 90.01 → 90.
* Province 48 (all six readings an hour pooled): PM2.5 at 07:00 (30+30+40+40+60+60)/6 =
  43.33, at 06:00 36.67, before 30; w* = 30/43.33 = 0.692; NowCast 35.59 → 71.18 → 71;
  PM10 70 → 60 → VN_AQI 71. The catalogue aggregation is max, so the province shows 90,
  the worst index written inside it (Cẩm Lệ's); its own pooled 71 is under unit-48.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from alerts.derive import AqiDeriver
from core.errors import CityOpsError, RetryableError
from core.ports import Store
from core.settings import Settings, load_settings
from core.store import SqliteStore
from core.types import Aggregation, MetricRef, Point, UnitRef, UnitValue
from layers.levels import Hierarchy
from tests.conftest import REPO, FakeClock
from tests.fixtures.signin import TEST_SECRET_ENV

HAI_VAN = {"province": "48", "commune": "20194"}
CAM_LE = {"province": "48", "commune": "20260"}
FIRST_HOUR = datetime(2026, 11, 3, 11, 0, tzinfo=UTC)  # 18:00 local
HOURS = 14
HOURLY = MetricRef("aqi", "hourly")
DAILY = MetricRef("aqi", "daily")
LONG_AGO = datetime(2026, 10, 1, tzinfo=UTC)


class Watched(SqliteStore):
    """The real store, counting calls and failing writes on demand."""

    reads = 0
    writes = 0
    fail_writes = False

    def write(self, points: Sequence[Point]) -> None:
        if self.fail_writes:
            raise RetryableError("store unreachable (test)")
        self.writes += 1
        super().write(points)

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
        self.reads += 1
        return super().window_by_unit(
            metric, level, start=start, end=end, aggregation=aggregation, parent=parent
        )


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)


@pytest.fixture(scope="module")
def hierarchy(settings: Settings) -> Hierarchy:
    return Hierarchy.from_csv(
        settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
    )


@pytest.fixture
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    adapter = Watched(tmp_path_factory.mktemp("aqi") / "timeseries.sqlite")
    adapter.write(_readings())
    adapter.writes = 0
    yield adapter
    adapter.close()


def _readings() -> list[Point]:
    points = []
    for hour in range(HOURS):
        start = FIRST_HOUR + timedelta(hours=hour)
        cam_le = {12: 40.0, 13: 60.0}.get(hour, 20.0)
        for minute in (10, 40):
            at = start + timedelta(minutes=minute)
            points.append(Point("air", {"device": "aq-1", **HAI_VAN}, {"pm25": 30, "pm10": 60}, at))
            points.append(Point("air", {"device": "aq-2", **HAI_VAN}, {"pm25": 40, "pm10": 80}, at))
            points.append(Point("air", {"device": "aq-3", **CAM_LE}, {"pm25": cam_le}, at))
    return points


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    """A local (UTC+7) time in November 2026, as UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=7)


def _values(store: Store, metric: MetricRef, level: str) -> dict[str, tuple[float, datetime]]:
    found = store.latest_by_unit(metric, level, since=LONG_AGO, aggregation="max")
    return {unit.code: (unit.value, unit.ts) for unit in found}


def test_hourly_and_daily_aqi_per_unit(
    store: Watched, settings: Settings, hierarchy: Hierarchy
) -> None:
    clock = FakeClock(_local(3, 23, 30))
    deriver = AqiDeriver(settings, store, hierarchy, clock)

    # 23:30 on the 3rd, first run: 48 hours back; 18:00 has only one hour of data (no
    # NowCast), 19:00–22:00 give 4 hours × (2 communes + the province); no day is complete.
    assert deriver.run() == 12
    assert _values(store, DAILY, "commune") == {}
    hourly = _values(store, HOURLY, "commune")
    assert hourly == {"20194": (70.0, _local(3, 22)), "20260": (40.0, _local(3, 22))}

    # After local midnight: the 23:00 hour and the daily index of the 3rd (18:00–24:00).
    # Hải Vân: means 35 and 70 → 70; Cẩm Lệ: 20 → 40; the province pooled: PM2.5
    # (30+30+40+40+20+20)/6 = 30 → 60, PM10 70 → 60 → 60, under the communes' max 70.
    clock.current = _local(4, 0, 5)
    assert deriver.run() == 6
    day = _local(3, 0)
    assert _values(store, DAILY, "commune") == {"20194": (70.0, day), "20260": (40.0, day)}
    assert _values(store, DAILY, "province") == {"48": (70.0, day)}
    assert _values(store, DAILY, "device")["unit-48"] == (60.0, day)

    # 08:05 on the 4th: the hours 00:00–07:00 (8 × 3 points); values by hand (docstring).
    clock.current = _local(4, 8, 5)
    assert deriver.run() == 24
    seven = _local(4, 7)
    assert _values(store, HOURLY, "commune") == {"20194": (70.0, seven), "20260": (90.0, seven)}
    assert _values(store, HOURLY, "province") == {"48": (90.0, seven)}
    by_source = _values(store, HOURLY, "device")
    assert by_source == {
        "unit-20194": (70.0, seven),
        "unit-20260": (90.0, seven),
        "unit-48": (71.0, seven),
    }
    # Inside province 48 (the parent filter reads the level tags written with each index).
    inside = store.latest_by_unit(
        HOURLY, "commune", since=LONG_AGO, parent=UnitRef("province", "48"), aggregation="max"
    )
    assert [unit.code for unit in inside] == ["20194", "20260"]

    # Nothing due within the hour: no read, no write.
    reads, writes = store.reads, store.writes
    clock.current = _local(4, 8, 59)
    assert deriver.run() == 0
    assert (store.reads, store.writes) == (reads, writes)
    assert _values(store, HOURLY, "province") == {"48": (90.0, seven)}


def test_first_run_backfills_and_rerun_is_idempotent(
    store: Watched, settings: Settings, hierarchy: Hierarchy
) -> None:
    now = _local(4, 8, 5)
    assert AqiDeriver(settings, store, hierarchy).run(now) == 13 * 3 + 3  # hours 19–07, day 3rd
    # A restarted evaluator rewrites the same points: same values, nothing duplicated.
    assert AqiDeriver(settings, store, hierarchy).run(now) == 42
    series = store.series(
        HOURLY,
        UnitRef("commune", "20260"),
        start=FIRST_HOUR,
        end=now,
        every=timedelta(hours=1),
        aggregation="sum",
    )
    assert len(series) == 13
    assert series[-1].value == 90.0  # a duplicate would have summed to 180
    assert [point.value for point in series[-3:-1]] == [40.0, 60.0]  # 20 → 40; 40, 20… → 60


def test_store_failure_raises_and_nothing_is_marked_done(
    store: Watched, settings: Settings, hierarchy: Hierarchy
) -> None:
    deriver = AqiDeriver(settings, store, hierarchy)
    store.fail_writes = True
    with pytest.raises(CityOpsError, match="store unreachable"):
        deriver.run(_local(4, 8, 5))
    store.fail_writes = False
    assert deriver.run(_local(4, 8, 10)) == 42  # the whole backfill, on the next round


def test_bad_input_unit_is_a_config_error(settings: Settings, hierarchy: Hierarchy) -> None:
    wrong = settings.model_copy(deep=True)
    wrong.metrics["pm10"] = wrong.metrics["pm10"].model_copy(update={"unit": "mg/m³"})
    with pytest.raises(
        CityOpsError, match=re.escape("metrics.pm10.unit must be µg/m³ for VN_AQI: 'mg/m³'")
    ):
        AqiDeriver(wrong, SqliteStore(":memory:"), hierarchy)
