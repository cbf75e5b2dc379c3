"""AlertService wiring with a fake store and notifier (the state database is a real SQLite
file): which query each rule makes, store failures kept to their rule, the round loop."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from alerts.service import AlertService
from core.db import make_engine
from core.errors import RetryableError
from core.settings import Settings, load_settings
from core.types import (
    Aggregation,
    MetricRef,
    Notification,
    Point,
    SeriesPoint,
    UnitRef,
    UnitValue,
)
from tests.conftest import FakeClock

REPO = Path(__file__).resolve().parents[3]
NAMES = {
    ("20194", "vi"): "Phường Hải Vân, Thành phố Đà Nẵng",
    ("20194", "en"): "Hai Van Ward, Da Nang City",
    ("20260", "vi"): "Phường Cẩm Lệ, Thành phố Đà Nẵng",
    ("20260", "en"): "Cam Le Ward, Da Nang City",
}


def unit_name(code: str, lang: str) -> str:
    return NAMES[(code, lang)]


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
        raise NotImplementedError("the alert engine reads only latest_by_unit")

    def close(self) -> None:
        pass


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)


PM25 = MetricRef("air", "pm25")
WATER = MetricRef("water", "alarm")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ={})


@pytest.fixture
def parts(
    settings: Settings, tmp_path: Path, clock: FakeClock
) -> tuple[AlertService, FakeStore, RecordingNotifier]:
    store, notifier = FakeStore(), RecordingNotifier()
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    service = AlertService(settings, store, engine, notifier, unit_name=unit_name, clock=clock)
    return service, store, notifier


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
        "[CẢNH BÁO][Nghiêm trọng] Mực nước trên báo động III — Phường Cẩm Lệ, Thành phố Đà Nẵng"
    ]
    store.failing = {PM25}
    clock.advance(60)
    moves = {(t.current.rule_id, t.current.unit_code): t for t in service.run_once()}
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
    settings: Settings, tmp_path: Path, clock: FakeClock
) -> None:
    store, notifier = FakeStore(), RecordingNotifier()
    store.values[WATER] = [UnitValue("20260", 3.0, clock.now(), 1)]

    def no_names(code: str, lang: str) -> str:
        raise KeyError(f"no administrative unit with code {code!r}")

    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    AlertService(settings, store, engine, notifier, unit_name=no_names, clock=clock).run_once()
    assert notifier.sent[0].subject.endswith("— Mã 20260")


def test_run_forever_runs_rounds_until_stopped(settings: Settings, tmp_path: Path) -> None:
    fast = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"interval_s": 0.01})}
    )
    store = FakeStore()
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    service = AlertService(fast, store, engine, RecordingNotifier(), unit_name=unit_name)
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
