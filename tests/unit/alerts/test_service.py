"""AlertService wiring with a fake store and notifier (the state database is a real SQLite
file): which query each rule makes, store failures kept to their rule, the round loop."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from alerts.places import Places
from alerts.service import AlertService, RoundReport
from alerts.state import Transition
from core.db import make_engine
from core.errors import RetryableError
from core.settings import Settings, load_settings
from core.settings_alerts import AlertsSettings
from core.types import (
    Aggregation,
    MetricRef,
    Notification,
    Point,
    SeriesPoint,
    UnitRef,
    UnitValue,
)
from layers.levels import Hierarchy
from tests.conftest import FakeClock

REPO = Path(__file__).resolve().parents[3]


class FakeStore:
    """Answers latest_by_unit from a table per metric; a metric in ``failing`` raises."""

    def __init__(self) -> None:
        self.values: dict[MetricRef, list[UnitValue]] = {}
        self.failing: set[MetricRef] = set()
        self.queries: list[tuple[MetricRef, str, datetime, Aggregation]] = []

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
        self.queries.append((metric, level, since, aggregation))
        if metric in self.failing:
            raise RetryableError("store unreachable")
        return list(self.values.get(metric, []))

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
        """Window rules (and kpi sums) read the same table as latest_by_unit."""
        self.queries.append((metric, level, start, aggregation))
        if metric in self.failing:
            raise RetryableError("store unreachable")
        return list(self.values.get(metric, []))

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
        return []  # the e-mail goes without its chart

    def close(self) -> None:
        pass


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)


PM25 = MetricRef("air", "pm25")
WATER = MetricRef("water", "alarm")


DESK = "truc-ban@danang.gov.vn"
RULES: list[dict[str, object]] = [
    {"id": "pm25-bad", "metric": "pm25", "level": "commune", "op": "above", "threshold": 80,
     "for_s": 60, "severity": "critical"},
    {"id": "flood-alarm-3", "metric": "flood_alarm", "level": "commune", "op": "above",
     "threshold": 2, "for_s": 0, "severity": "critical",
     "title": {"vi": "Mực nước trên báo động III", "en": "Water above flood alarm level III"}},
]  # fmt: skip


@pytest.fixture(scope="module")
def settings() -> Settings:
    shipped = load_settings(REPO / "config.yaml", environ={})
    alerts = AlertsSettings.model_validate({"recipients": [DESK], "rules": RULES})
    return shipped.model_copy(update={"alerts": alerts})


@pytest.fixture(scope="module")
def places(settings: Settings) -> Places:
    return Places(
        Hierarchy.from_csv(settings.hierarchy.levels, REPO / "layers/data/admin_codes_2025.csv")
    )


def build(
    settings: Settings, store: FakeStore, notifier: RecordingNotifier, tmp_path: Path,
    places: Places, clock: FakeClock | None = None,
) -> AlertService:  # fmt: skip
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    return AlertService(settings, store, engine, notifier, places=places, clock=clock)


@pytest.fixture
def parts(
    settings: Settings, tmp_path: Path, clock: FakeClock, places: Places
) -> tuple[AlertService, FakeStore, RecordingNotifier]:
    store, notifier = FakeStore(), RecordingNotifier()
    return build(settings, store, notifier, tmp_path, places, clock), store, notifier


def moved(report: RoundReport) -> dict[tuple[str, str], Transition]:
    return {(t.current.rule_id, t.current.unit_code): t for t in report.transitions}


def test_each_rule_queries_its_metric_level_lookback_and_aggregation(
    parts: tuple[AlertService, FakeStore, RecordingNotifier], clock: FakeClock
) -> None:
    service, store, _ = parts
    service.run_once()
    assert store.queries == [
        (PM25, "commune", clock.now() - timedelta(seconds=900), "mean"),
        (WATER, "commune", clock.now() - timedelta(seconds=900), "max"),
    ]


def test_a_failing_store_query_puts_only_its_rule_in_error(
    parts: tuple[AlertService, FakeStore, RecordingNotifier], clock: FakeClock
) -> None:
    service, store, notifier = parts
    store.values[PM25] = [UnitValue("20194", 120.0, clock.now(), 3)]
    store.values[WATER] = [UnitValue("20260", 3.0, clock.now(), 1)]
    service.run_once()  # pm25 pending (for_s 60), water firing (for_s 0)
    assert [n.subject for n in notifier.sent] == [
        "[CẢNH BÁO][Nghiêm trọng] Cấp báo động lũ 3 — Phường Cẩm Lệ, Thành phố Đà Nẵng"
    ]
    assert notifier.sent[0].recipients == (DESK,)  # nobody on a roster: the duty desk
    store.failing = {PM25}
    clock.advance(60)
    moves = moved(service.run_once())
    assert moves[("pm25-bad", "20194")].current.state == "error"
    assert moves[("pm25-bad", "20194")].current.error == "store unreachable"
    assert moves[("flood-alarm-3", "20260")].current.state == "firing"
    assert len(notifier.sent) == 1  # no e-mail for the error, none repeated for the water
    store.failing = set()
    clock.advance(10)
    service.run_once()  # the store is back: the breach starts its for_s again
    clock.advance(60)
    service.run_once()
    assert [n.subject.split("]")[0] for n in notifier.sent] == ["[CẢNH BÁO", "[CẢNH BÁO"]
    assert "Phường Hải Vân" in notifier.sent[1].subject


def test_a_unit_missing_from_the_units_file_is_named_by_code(
    settings: Settings, tmp_path: Path, clock: FakeClock, places: Places
) -> None:
    store, notifier = FakeStore(), RecordingNotifier()
    store.values[WATER] = [UnitValue("99999", 3.0, clock.now(), 1)]
    build(settings, store, notifier, tmp_path, places, clock).run_once()
    assert notifier.sent[0].subject.endswith("— Mã 99999")
    assert notifier.sent[0].recipients == (DESK,)


def test_a_standby_evaluator_does_nothing_while_the_first_holds_the_lease(
    settings: Settings, tmp_path: Path, clock: FakeClock, places: Places
) -> None:
    store, notifier = FakeStore(), RecordingNotifier()
    store.values[WATER] = [UnitValue("20260", 3.0, clock.now(), 1)]
    first = build(settings, store, notifier, tmp_path, places, clock)
    second = build(settings, store, notifier, tmp_path, places, clock)
    assert first.run_once().leader
    report = second.run_once()
    assert not report.leader
    assert report.transitions == []
    assert len(store.queries) == 2  # only the first evaluated
    first.release()
    assert second.run_once().leader


def test_run_forever_runs_rounds_until_stopped(
    settings: Settings, tmp_path: Path, places: Places
) -> None:
    fast = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"interval_s": 0.01})}
    )
    store = FakeStore()
    service = build(fast, store, RecordingNotifier(), tmp_path, places)
    stop = threading.Event()
    worker = threading.Thread(target=service.run_forever, args=(stop,))
    worker.start()
    try:
        for _ in range(200):  # bounded: at most 2 s
            if len(store.queries) >= 6:
                break
            stop.wait(0.01)
    finally:
        stop.set()
        worker.join(timeout=5)
    assert not worker.is_alive()
    assert len(store.queries) >= 6  # three rounds of two rules


def test_a_24_hour_rule_is_judged_every_5_minutes_not_every_round(
    settings: Settings, tmp_path: Path, clock: FakeClock, places: Places
) -> None:
    daily = {"id": "pm25-24h", "metric": "pm25", "level": "commune", "op": "above",
             "threshold": 45, "window_s": 86400, "severity": "warning"}  # fmt: skip
    alerts = AlertsSettings.model_validate({"recipients": [DESK], "rules": [RULES[0], daily]})
    store = FakeStore()
    service = build(
        settings.model_copy(update={"alerts": alerts}), store, RecordingNotifier(), tmp_path,
        places, clock,
    )  # fmt: skip
    for _ in range(60):  # five minutes of 5-s rounds
        service.run_once()
        clock.advance(5)

    def day_queries() -> int:  # a query whose window starts a day back
        return sum(1 for query in store.queries if clock.now() - query[2] > timedelta(hours=23))

    assert day_queries() == 1
    assert len(store.queries) - day_queries() == 60  # the latest-value rule: every round
    service.run_once()  # 300 s after the first
    assert day_queries() == 2


def test_jobs_run_after_delivery_on_the_active_evaluator_only_and_fail_alone(
    settings: Settings, tmp_path: Path, clock: FakeClock, places: Places
) -> None:
    ran: list[str] = []

    def derive(now: datetime) -> int:
        ran.append(f"derive {now:%H:%M}")
        return 3

    def broken(now: datetime) -> int:
        raise RetryableError("store unreachable")

    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    jobs = (("aqi", derive), ("report", broken))
    first = AlertService(settings, FakeStore(), engine, RecordingNotifier(), places=places,
                         clock=clock, jobs=jobs)  # fmt: skip
    second = AlertService(settings, FakeStore(), engine, RecordingNotifier(), places=places,
                          clock=clock, jobs=jobs)  # fmt: skip
    report = first.run_once()
    assert report.jobs == {"aqi": 3, "report": 0}
    assert not second.run_once().leader
    assert ran == ["derive 01:00"]
