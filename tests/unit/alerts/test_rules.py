"""results_for (alerts/rules.py) on a real SQLite store in tmp_path: per rule type, what is
asked of the store and what comes back, with an injected ``now``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.evaluate import Result
from alerts.rules import carried_silence, period_start, results_for
from alerts.state import AlertState
from core.errors import CityOpsError, RetryableError
from core.ports import Store
from core.settings import AlertRule, Label, MetricSettings
from core.store import SqliteStore
from core.types import Point

ZONE = "Asia/Ho_Chi_Minh"
# Wednesday 4 November 2026, 09:00 in Đà Nẵng.
NOW = datetime(2026, 11, 4, 2, 0, tzinfo=UTC)
# Monday 2 November 00:00 ICT: the week's first moment, a Sunday evening in UTC.
WEEK_START = datetime(2026, 11, 1, 17, 0, tzinfo=UTC)

PM25 = MetricSettings(
    kind="air", field="pm25", label=Label(vi="Bụi mịn PM2.5", en="Fine dust PM2.5"), unit="µg/m³"
)
WATER = MetricSettings(
    kind="water",
    field="level",
    label=Label(vi="Mực nước", en="Water level"),
    unit="m",
    aggregation="max",
    decimals=2,
)
ON_TIME = MetricSettings(
    kind="dossiers",
    field="resolved_on_time",
    denominator="resolved",
    target=0.9,
    label=Label(vi="Tỷ lệ hồ sơ đúng hạn", en="On-time dossier rate"),
    unit="%",
    aggregation="sum",
    better="higher",
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    adapter = SqliteStore(tmp_path / "timeseries.sqlite")
    yield adapter
    adapter.close()


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def air(device: str, commune: str, at: datetime, pm25: float) -> Point:
    tags = {"device": device, "province": "48", "commune": commune}
    return Point("air", tags, {"pm25": pm25}, at)


def water(device: str, commune: str, at: datetime, level: float) -> Point:
    tags = {"device": device, "province": "48", "commune": commune}
    return Point("water", tags, {"level": level}, at)


def dossiers(commune: str, at: datetime, on_time: float, resolved: float) -> Point:
    # Public-service counters: unit tags, no device (ingest/contracts/gov.py).
    tags = {"province": "48", "commune": commune}
    return Point("dossiers", tags, {"resolved_on_time": on_time, "resolved": resolved}, at)


def make_rule(**fields: object) -> AlertRule:
    base: dict[str, object] = {"id": "r", "metric": "pm25", "level": "commune"}
    return AlertRule.model_validate(base | fields)


def state(code: str, name: str, value: float | None, **fields: object) -> AlertState:
    since = fields.pop("since", ago(minutes=5))
    last_eval = fields.pop("last_eval", ago(seconds=10))
    return AlertState("r", code, name, since, value, last_eval, **fields)  # type: ignore[arg-type]


def judge(
    rule: AlertRule,
    store: Store,
    metric: MetricSettings = PM25,
    previous: Mapping[str, AlertState] | None = None,
    known: Mapping[tuple[str, str], set[str]] | None = None,
    now: datetime = NOW,
) -> dict[str, Result]:
    expected = known or {}
    return results_for(
        rule,
        store=store,
        metric=metric,
        previous=previous or {},
        now=now,
        known=lambda kind, level: expected.get((kind, level), set()),
        timezone=ZONE,
    )


def kinds(results: Mapping[str, Result]) -> dict[str, str]:
    return {code: result.kind for code, result in results.items()}


# -- threshold -----------------------------------------------------------------------------


def test_threshold_on_latest_values_and_absent_units_with_a_state(store: SqliteStore) -> None:
    store.write(
        [
            air("aq-1", "20194", ago(minutes=20), 300.0),  # older than lookback_s: not counted
            air("aq-1", "20194", ago(minutes=1), 90.0),
            air("aq-2", "20194", ago(minutes=2), 80.0),
            air("aq-3", "20197", ago(minutes=1), 40.0),
        ]
    )
    rule = make_rule(op="above", threshold=80, clear=70)
    previous = {"20260": state("20260", "firing", 95.0, fired_at=ago(minutes=5))}
    results = judge(rule, store, previous=previous)
    assert results == {
        "20194": Result("breach", 85.0, ago(minutes=1)),  # mean of 90 and 80
        "20197": Result("ok", 40.0, ago(minutes=1)),
        "20260": Result.no_data(),  # had a state, no value now
    }


def test_threshold_hysteresis_comes_from_the_previous_state(store: SqliteStore) -> None:
    store.write([air("aq-1", "20194", ago(minutes=1), 75.0)])
    rule = make_rule(op="above", threshold=80, clear=70)
    assert kinds(judge(rule, store)) == {"20194": "ok"}
    for name in ("pending", "firing"):
        held = {"20194": state("20194", name, 85.0)}
        assert kinds(judge(rule, store, previous=held)) == {"20194": "breach"}
    resolved = {"20194": state("20194", "resolved", 65.0)}
    assert kinds(judge(rule, store, previous=resolved)) == {"20194": "ok"}


def test_threshold_over_a_window_is_the_mean_of_every_reading(store: SqliteStore) -> None:
    """Hourly mean: aq-1 reads 60, 70, 80 and aq-2 reads 130 → 340 / 4 = 85 > 80 (the
    devices' latest values would give 105; a mean of per-device means 100)."""
    store.write(
        [
            air("aq-1", "20194", ago(minutes=61), 500.0),  # before the hour
            air("aq-1", "20194", ago(minutes=50), 60.0),
            air("aq-1", "20194", ago(minutes=30), 70.0),
            air("aq-1", "20194", ago(minutes=10), 80.0),
            air("aq-2", "20194", ago(minutes=5), 130.0),
            air("aq-3", "20197", ago(minutes=40), 79.0),
        ]
    )
    rule = make_rule(op="above", threshold=80, window_s=3600)
    results = judge(rule, store)
    assert results == {
        "20194": Result("breach", 85.0, ago(minutes=5)),
        "20197": Result("ok", 79.0, ago(minutes=40)),
    }
    peak = judge(make_rule(op="above", threshold=80, window_s=3600, aggregation="max"), store)
    assert {code: r.value for code, r in peak.items()} == {"20194": 130.0, "20197": 79.0}


def test_threshold_per_device(store: SqliteStore) -> None:
    store.write(
        [
            air("aq-1", "20194", ago(minutes=1), 90.0),
            air("aq-2", "20194", ago(minutes=1), 50.0),
        ]
    )
    rule = make_rule(level="device", op="above", threshold=80)
    assert kinds(judge(rule, store)) == {"aq-1": "breach", "aq-2": "ok"}


# -- no data -------------------------------------------------------------------------------


def test_no_data_per_device_from_the_store_and_the_registry(store: SqliteStore) -> None:
    store.write(
        [
            air("aq-1", "20194", ago(minutes=14), 30.0),
            air("aq-2", "20194", ago(minutes=35), 30.0),
            air("aq-3", "20197", ago(days=2), 30.0),  # seen within the 7-day lookback
            air("aq-4", "20197", ago(days=8), 30.0),  # too long ago for the store's answer
        ]
    )
    rule = make_rule(type="no_data", level="device", silent_s=900)
    registry = {("air", "device"): {"aq-1", "aq-2", "aq-4", "aq-9"}}
    previous = {
        "aq-4": state("aq-4", "firing", 600_000.0, last_eval=ago(seconds=10), fired_at=ago(days=1)),
        "aq-gone": state("aq-gone", "firing", 9_000.0, fired_at=ago(days=1)),
    }
    results = judge(rule, store, previous=previous, known=registry)
    assert {code: (r.kind, r.value) for code, r in results.items()} == {
        "aq-1": ("ok", 14 * 60.0),
        "aq-2": ("breach", 35 * 60.0),  # "im lặng 35 phút"
        "aq-3": ("breach", 2 * 86_400.0),  # not registered, but the store saw it
        "aq-4": ("breach", 600_010.0),  # carried: the last silence plus 10 s
        "aq-9": ("ok", 0.0),  # registered, never seen, no state: watched from now
        "aq-gone": (Result.no_data().kind, None),  # neither registered nor seen any more
    }


def test_no_data_per_unit_uses_the_units_newest_reading(store: SqliteStore) -> None:
    store.write(
        [
            air("aq-1", "20194", ago(minutes=40), 30.0),
            air("aq-2", "20194", ago(minutes=3), 30.0),  # one device still reports
            air("aq-3", "20197", ago(minutes=20), 30.0),
        ]
    )
    rule = make_rule(type="no_data", level="commune", silent_s=900)
    registry = {("air", "commune"): {"20194", "20197", "20200"}}
    results = judge(rule, store, known=registry)
    assert {code: (r.kind, r.value) for code, r in results.items()} == {
        "20194": ("ok", 180.0),
        "20197": ("breach", 1200.0),
        "20200": ("ok", 0.0),
    }


def test_a_never_seen_device_becomes_silent_as_the_rounds_go_by(store: SqliteStore) -> None:
    """The first round watches it (ok, 0 s); the state keeps that value and time, so later
    rounds count from there even when the unchanged ok state is not saved again."""
    rule = make_rule(type="no_data", level="device", silent_s=900)
    registry = {("air", "device"): {"aq-9"}}
    first = judge(rule, store, known=registry, now=ago(minutes=20))
    assert first == {"aq-9": Result("ok", 0.0, None)}
    watched = state("aq-9", "ok", 0.0, since=ago(minutes=20), last_eval=ago(minutes=20))
    assert judge(rule, store, previous={"aq-9": watched}, known=registry) == {
        "aq-9": Result("breach", 1200.0, None)
    }


def test_carried_silence_counts_a_store_outage_from_when_it_began() -> None:
    failed = state("aq-1", "error", 1000.0, since=ago(seconds=60), last_eval=ago(seconds=10))
    assert carried_silence(failed, NOW) == 1060.0
    judged = state("aq-1", "firing", 1000.0, last_eval=ago(seconds=10))
    assert carried_silence(judged, NOW) == 1010.0


# -- rate ----------------------------------------------------------------------------------


def test_rate_per_device_rise_and_fall(store: SqliteStore) -> None:
    store.write(
        [
            water("wl-1", "20194", ago(minutes=62), 1.00),
            water("wl-1", "20194", ago(minutes=61), 1.10),  # the value an hour ago
            water("wl-1", "20194", ago(minutes=1), 1.72),  # +0.62 m
            water("wl-2", "20194", ago(minutes=61), 3.00),
            water("wl-2", "20194", ago(minutes=2), 2.40),  # -0.60 m
            water("wl-3", "20197", ago(minutes=2), 9.00),  # nothing an hour ago: not judged
        ]
    )
    rise = make_rule(
        type="rate",
        metric="water_level",
        level="device",
        direction="rise",
        change=0.5,
        over_s=3600,
    )
    rising = judge(rise, store, metric=WATER)
    assert kinds(rising) == {"wl-1": "breach", "wl-2": "ok"}
    assert rising["wl-1"].value == pytest.approx(0.62)
    assert rising["wl-1"].ts == ago(minutes=1)
    fall = make_rule(
        type="rate",
        metric="water_level",
        level="device",
        direction="fall",
        change=0.5,
        over_s=3600,
    )
    assert kinds(judge(fall, store, metric=WATER)) == {"wl-1": "ok", "wl-2": "breach"}


def test_rate_per_unit_changes_the_units_aggregated_value(store: SqliteStore) -> None:
    """water_level aggregates with max: the commune's highest gauge went 3.0 → 3.4."""
    store.write(
        [
            water("wl-1", "20194", ago(minutes=70), 1.0),
            water("wl-2", "20194", ago(minutes=70), 3.0),
            water("wl-1", "20194", ago(minutes=5), 2.4),  # +1.4 at one gauge
            water("wl-2", "20194", ago(minutes=5), 3.4),
        ]
    )
    rule = make_rule(
        type="rate",
        metric="water_level",
        direction="rise",
        change=0.5,
        over_s=3600,
        lookback_s=1800,
    )
    [(code, result)] = judge(rule, store, metric=WATER).items()
    assert (code, result.kind, result.value) == ("20194", "ok", pytest.approx(0.4))
    held = {"20194": state("20194", "firing", 0.7, fired_at=ago(minutes=30))}
    hysteresis = make_rule(
        type="rate",
        metric="water_level",
        direction="rise",
        change=0.5,
        clear_change=0.3,
        over_s=3600,
        lookback_s=1800,
    )
    assert kinds(judge(hysteresis, store, metric=WATER, previous=held)) == {"20194": "breach"}


# -- kpi -----------------------------------------------------------------------------------


def test_kpi_rolls_up_sums_not_rates(store: SqliteStore) -> None:
    """A small commune at 50 % and a large one at 95 %: the province is 195 / 210 = 92.9 %,
    not the mean of the rates (72.5 %)."""
    store.write(
        [
            dossiers("20194", WEEK_START + timedelta(hours=3), 3.0, 6.0),
            dossiers("20194", WEEK_START + timedelta(days=1), 2.0, 4.0),  # 5 / 10 = 50 %
            dossiers("20197", WEEK_START + timedelta(hours=5), 100.0, 100.0),
            dossiers("20197", WEEK_START + timedelta(days=2), 90.0, 100.0),  # 190 / 200 = 95 %
        ]
    )
    communes = judge(make_rule(type="kpi", metric="on_time", period="week"), store, ON_TIME)
    assert {code: (r.kind, r.value) for code, r in communes.items()} == {
        "20194": ("breach", 0.5),  # target 0.9 from the metric
        "20197": ("ok", 0.95),
    }
    province = judge(
        make_rule(type="kpi", metric="on_time", level="province", period="week"), store, ON_TIME
    )
    assert province["48"].value == pytest.approx(195.0 / 210.0)
    assert province["48"].kind == "ok"
    assert province["48"].ts == WEEK_START + timedelta(days=2)
    stricter = make_rule(type="kpi", metric="on_time", level="province", period="week", target=0.95)
    assert kinds(judge(stricter, store, ON_TIME)) == {"48": "breach"}
    few = make_rule(type="kpi", metric="on_time", period="week", min_count=11)
    assert kinds(judge(few, store, ON_TIME)) == {"20197": "ok"}  # 10 dossiers: not judged


def test_kpi_week_starts_monday_midnight_local_time(store: SqliteStore) -> None:
    store.write(
        [
            # Sunday 23:59 in Đà Nẵng: last week's.
            dossiers("20194", WEEK_START - timedelta(minutes=1), 0.0, 100.0),
            # Monday 00:00 in Đà Nẵng (Sunday 17:00 UTC): this week's first dossiers.
            dossiers("20194", WEEK_START, 19.0, 20.0),
        ]
    )
    [result] = judge(
        make_rule(type="kpi", metric="on_time", period="week"), store, ON_TIME
    ).values()
    assert (result.kind, result.value) == ("ok", 0.95)
    day = make_rule(type="kpi", metric="on_time", window_s=7 * 86_400)  # the last 7 days
    assert judge(day, store, ON_TIME)["20194"].value == pytest.approx(19.0 / 120.0)


@pytest.mark.parametrize(
    ("period", "now", "start"),
    [
        # Wednesday 09:00 local → Monday 00:00 local = Sunday 17:00 UTC.
        ("week", NOW, WEEK_START),
        # Monday 00:00 local exactly is the start of its own week.
        ("week", WEEK_START, WEEK_START),
        # Sunday 23:59 local still belongs to the week before.
        ("week", WEEK_START - timedelta(minutes=1), WEEK_START - timedelta(days=7)),
        # Sunday 18:00 UTC is already Monday 01:00 in Đà Nẵng.
        ("day", datetime(2026, 11, 1, 18, 0, tzinfo=UTC), WEEK_START),
        ("day", datetime(2026, 11, 1, 16, 59, tzinfo=UTC), WEEK_START - timedelta(days=1)),
        # 1 December 00:30 local is 30 November 17:30 UTC: December has begun.
        (
            "month",
            datetime(2026, 11, 30, 17, 30, tzinfo=UTC),
            datetime(2026, 11, 30, 17, 0, tzinfo=UTC),
        ),
        ("month", NOW, datetime(2026, 10, 31, 17, 0, tzinfo=UTC)),
    ],
)
def test_period_start_is_local_calendar_time(period: str, now: datetime, start: datetime) -> None:
    assert period_start(period, now, ZONE) == start  # type: ignore[arg-type]


# -- failures ------------------------------------------------------------------------------


class DownStore(SqliteStore):
    def latest_by_unit(self, *args: object, **kwargs: object) -> list[object]:  # type: ignore[override]
        raise RetryableError("InfluxDB at 127.0.0.1:8086 is unreachable")

    def window_by_unit(self, *args: object, **kwargs: object) -> list[object]:  # type: ignore[override]
        raise RetryableError("InfluxDB at 127.0.0.1:8086 is unreachable")


@pytest.mark.parametrize(
    "fields",
    [
        {"op": "above", "threshold": 80},
        {"op": "above", "threshold": 80, "window_s": 3600},
        {"type": "no_data", "silent_s": 900},
        {"type": "rate", "direction": "rise", "change": 1, "over_s": 60},
        {"type": "kpi", "metric": "on_time", "period": "day"},
    ],
)
def test_a_store_failure_is_raised_for_the_caller(
    tmp_path: Path, fields: dict[str, object]
) -> None:
    down = DownStore(tmp_path / "down.sqlite")
    metric = ON_TIME if fields.get("type") == "kpi" else PM25
    try:
        with pytest.raises(CityOpsError, match="unreachable"):
            judge(make_rule(**fields), down, metric)
    finally:
        down.close()


def test_now_must_be_timezone_aware(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        judge(make_rule(op="above", threshold=80), store, now=datetime(2026, 11, 4, 9, 0))
