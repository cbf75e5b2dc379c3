"""Silences in the alert engine (alerts/silencing.py): a muted e-mail is recorded as
"silenced", not sent; when the silence is over it goes out if still worth sending (the
episode still open, or the end of an episode whose start was sent) and is "suppressed"
otherwise. A real SQLite state database, a fake store and notifier."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from alerts.actions import AlertActions
from alerts.service import AlertService
from alerts.silencing import Silencing
from core.db import make_engine
from core.settings import Settings, load_settings
from core.types import UnitValue
from layers.levels import Hierarchy
from tests.conftest import FakeClock
from tests.unit.alerts.test_service import WATER, FakeStore, RecordingNotifier, unit_name

REPO = Path(__file__).resolve().parents[3]
CAM_LE = "20260"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ={})


@pytest.fixture(scope="module")
def hierarchy(settings: Settings) -> Hierarchy:
    return Hierarchy.from_csv(
        settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield made
    made.dispose()


class AlertEngine:
    """The alert engine with silences, and what it has sent."""

    def __init__(
        self, settings: Settings, engine: Engine, hierarchy: Hierarchy, clock: FakeClock
    ) -> None:
        self.store, self.notifier, self.clock = FakeStore(), RecordingNotifier(), clock
        self.service = AlertService(
            settings,
            self.store,
            engine,
            self.notifier,
            unit_name=unit_name,
            clock=clock,
            silencing=Silencing(engine, hierarchy, clock),
        )
        self.actions = AlertActions(engine, clock)

    def flood(self, level: float) -> None:
        """The Cẩm Lệ gauge reads ``level`` (above 2: alarm III, fires at once)."""
        self.store.values[WATER] = [UnitValue(CAM_LE, level, self.clock.now(), 1)]
        self.service.run_once()
        self.clock.advance(10)

    def sent(self) -> list[str]:
        return [n.subject.split("]")[0].lstrip("[") for n in self.notifier.sent]

    def statuses(self) -> list[tuple[str, str]]:
        return [
            (row["kind"], row["status"])
            for row in self.service.repository.log_entries("flood-alarm-3")
        ]


@pytest.fixture
def alerts(
    settings: Settings, engine: Engine, hierarchy: Hierarchy, clock: FakeClock
) -> AlertEngine:
    made = AlertEngine(settings, engine, hierarchy, clock)
    made.flood(0.0)  # the tables exist, nothing is wrong
    return made


def test_a_silenced_firing_is_sent_when_the_silence_ends_and_it_still_fires(
    alerts: AlertEngine,
) -> None:
    # The city is silenced: Cẩm Lệ is inside it.
    alerts.actions.silence("unit", "48", alerts.clock.now() + timedelta(minutes=5), "x", "root")
    alerts.flood(3.0)
    assert alerts.sent() == []
    assert alerts.statuses() == [("firing", "silenced")]
    alerts.flood(3.0)  # still silenced: still held, not sent twice
    assert (alerts.sent(), alerts.statuses()) == ([], [("firing", "silenced")])
    alerts.clock.advance(300)  # the silence is over, the flood is not
    alerts.flood(3.0)
    assert alerts.sent() == ["CẢNH BÁO"]
    assert alerts.statuses() == [("firing", "sent")]


def test_an_episode_over_under_the_silence_sends_nothing(alerts: AlertEngine) -> None:
    silence = alerts.actions.silence(
        "rule", "flood-alarm-3", alerts.clock.now() + timedelta(hours=1), "diễn tập", "root"
    )
    alerts.flood(3.0)
    alerts.flood(0.0)
    assert alerts.statuses() == [("firing", "silenced"), ("resolved", "silenced")]
    alerts.actions.cancel_silence(silence.id, "root")
    alerts.flood(0.0)
    assert alerts.sent() == []
    assert alerts.statuses() == [("firing", "suppressed"), ("resolved", "suppressed")]


def test_the_end_of_an_episode_whose_start_was_sent_goes_out_after_the_silence(
    alerts: AlertEngine,
) -> None:
    alerts.flood(3.0)
    assert alerts.sent() == ["CẢNH BÁO"]
    silence = alerts.actions.silence(
        "unit", CAM_LE, alerts.clock.now() + timedelta(hours=1), "bảo trì", "root"
    )
    alerts.flood(0.0)
    assert alerts.statuses() == [("firing", "sent"), ("resolved", "silenced")]
    assert len(alerts.sent()) == 1
    alerts.actions.cancel_silence(silence.id, "root")
    alerts.flood(0.0)
    assert alerts.sent() == ["CẢNH BÁO", "ĐÃ KHÔI PHỤC"]
    assert alerts.statuses() == [("firing", "sent"), ("resolved", "sent")]


def test_other_silences_do_not_hold(alerts: AlertEngine) -> None:
    now = alerts.clock.now()
    alerts.actions.silence("unit", "20194", now + timedelta(hours=1), "x", "root")  # Hải Vân
    alerts.actions.silence("rule", "pm25-bad", now + timedelta(hours=1), "x", "root")
    alerts.actions.silence("device", "wl-camle", now + timedelta(hours=1), "x", "root")
    alerts.flood(3.0)
    assert alerts.statuses() == [("firing", "sent")]
