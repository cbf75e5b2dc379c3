"""Silences on alert events (alerts/silencing.py): a muted event is recorded as
"silenced", not routed; when the silence is over it goes back to be routed if still worth
telling (the episode still open, or the end of an episode whose start was routed) and is
"suppressed" otherwise. A real SQLite state database and the shipped units file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from alerts.actions import AlertActions
from alerts.evaluate import Result
from alerts.facts import AlertFacts, EventKind
from alerts.repository import AlertRepository, EventRow
from alerts.silencing import Silencing
from alerts.state import AlertKey, Transition, transition
from core.db import make_engine
from core.settings import Settings, load_settings
from layers.levels import Hierarchy
from tests.conftest import FakeClock
from tests.integration.test_alerts_repository import event, make_facts

REPO = Path(__file__).resolve().parents[3]
CAM_LE, HAI_VAN, DA_NANG = "20260", "20194", "48"
FLOOD = "flood-alarm-3"


@pytest.fixture(scope="module")
def hierarchy() -> Hierarchy:
    settings: Settings = load_settings(REPO / "config.yaml", environ={})
    return Hierarchy.from_csv(
        settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield made
    made.dispose()


class Alerts:
    """The state database with silences: alerts fire and resolve, events are held."""

    def __init__(self, engine: Engine, hierarchy: Hierarchy, clock: FakeClock) -> None:
        self.clock = clock
        self.repository = AlertRepository(engine)
        self.repository.create_schema()
        self.silencing = Silencing(engine, hierarchy, clock)
        self.silencing.prepare()
        self.actions = AlertActions(engine, clock)
        self.states: dict[str, Transition] = {}

    def facts(
        self, unit: str, kind: EventKind, step: int = 0, parents: tuple[str, ...] = ()
    ) -> AlertFacts:
        episode = self.states[unit].current.episode
        level = "device" if parents else "commune"
        return make_facts(
            unit, rule_id=FLOOD, episode=episode, kind=kind, step=step, level=level, parents=parents
        )

    def flood(
        self, unit: str = CAM_LE, reading: float = 3.0, device_in: tuple[str, ...] = ()
    ) -> None:
        """The gauge reads ``reading`` metres (above 2 fires at once, below resolves);
        ``device_in``: the alert is a device's, in these units (nearest first)."""
        result = Result("breach" if reading > 2 else "ok", reading)
        before = self.states.get(unit)
        previous = before.current if before is not None else None
        moved = transition(previous, result, self.clock.now(), 0, key=AlertKey(FLOOD, unit))
        self.states[unit] = moved
        notify = moved.notify
        events = [event(self.facts(unit, notify, parents=device_in))] if notify else []
        self.repository.save([moved], events, now=self.clock.now())
        self.clock.advance(10)

    def remind(self, unit: str = CAM_LE) -> None:
        self.repository.add_events([event(self.facts(unit, "reminder", 1))], now=self.clock.now())

    def route(self) -> list[EventRow]:
        """One round's silence steps: release what is over, hold what is muted; the rest
        is routed (here: just marked routed)."""
        self.silencing.release()
        kept = self.silencing.hold_muted(self.repository.pending_events())
        self.repository.set_event_status([row.id for row in kept], "routed")
        return kept

    def statuses(self) -> list[tuple[str, str, str]]:
        return [(e["unit_code"], e["kind"], e["status"]) for e in self.repository.log_entries()]


@pytest.fixture
def alerts(engine: Engine, hierarchy: Hierarchy, clock: FakeClock) -> Alerts:
    return Alerts(engine, hierarchy, clock)


def test_a_silenced_firing_is_routed_when_the_silence_ends_and_it_still_fires(
    alerts: Alerts,
) -> None:
    # The city is silenced: Cẩm Lệ is inside it.
    alerts.actions.silence("unit", DA_NANG, alerts.clock.now() + timedelta(minutes=5), "x", "an")
    alerts.flood()
    assert alerts.route() == []
    assert alerts.statuses() == [(CAM_LE, "firing", "silenced")]
    (entry,) = alerts.repository.log_entries()
    assert entry["status_reason"].endswith(": x")
    alerts.flood()
    alerts.remind()  # still silenced: held as well, nothing routed
    assert alerts.route() == []
    assert alerts.statuses() == [(CAM_LE, "firing", "silenced"), (CAM_LE, "reminder-1", "silenced")]
    alerts.clock.advance(300)  # the silence is over, the flood is not
    assert [row.kind for row in alerts.route()] == ["firing", "reminder-1"]
    assert alerts.statuses() == [(CAM_LE, "firing", "routed"), (CAM_LE, "reminder-1", "routed")]


def test_an_episode_over_under_the_silence_tells_nobody(alerts: Alerts) -> None:
    silence = alerts.actions.silence(
        "rule", FLOOD, alerts.clock.now() + timedelta(hours=1), "diễn tập", "an"
    )
    alerts.flood(reading=3.0)
    alerts.remind()
    alerts.flood(reading=0.0)
    assert alerts.route() == []
    assert [status for *_, status in alerts.statuses()] == ["silenced"] * 3
    alerts.actions.cancel_silence(silence.id, "an")
    assert alerts.silencing.release()["suppressed"] == [
        row["id"] for row in alerts.repository.log_entries()
    ]
    assert alerts.route() == []
    assert [status for *_, status in alerts.statuses()] == ["suppressed"] * 3


def test_the_end_of_an_episode_whose_start_was_routed_goes_after_the_silence(
    alerts: Alerts,
) -> None:
    alerts.flood(reading=3.0)
    assert [row.kind for row in alerts.route()] == ["firing"]
    silence = alerts.actions.silence(
        "unit", CAM_LE, alerts.clock.now() + timedelta(hours=1), "bảo trì", "an"
    )
    alerts.flood(reading=0.0)
    assert alerts.route() == []
    assert alerts.statuses() == [(CAM_LE, "firing", "routed"), (CAM_LE, "resolved", "silenced")]
    alerts.actions.cancel_silence(silence.id, "an")
    assert [row.kind for row in alerts.route()] == ["resolved"]


def test_other_silences_do_not_hold(alerts: Alerts) -> None:
    now = alerts.clock.now()
    alerts.actions.silence("unit", HAI_VAN, now + timedelta(hours=1), "x", "an")
    alerts.actions.silence("rule", "pm25-bad", now + timedelta(hours=1), "x", "an")
    alerts.actions.silence("device", "wl-camle", now + timedelta(hours=1), "x", "an")
    alerts.flood()
    assert [row.unit_code for row in alerts.route()] == [CAM_LE]


def test_device_alerts_are_held_by_their_device_or_their_unit(alerts: Alerts) -> None:
    now = alerts.clock.now()
    alerts.actions.silence("device", "wl-camle", now + timedelta(hours=1), "thay pin", "an")
    alerts.actions.silence("unit", HAI_VAN, now + timedelta(hours=1), "bảo trì", "an")
    alerts.flood("wl-camle", device_in=(CAM_LE, DA_NANG))  # this device: held
    alerts.flood("wl-haivan", device_in=(HAI_VAN, DA_NANG))  # in Hải Vân: held
    alerts.flood("wl-other", device_in=(CAM_LE, DA_NANG))  # another device in Cẩm Lệ: told
    assert [row.unit_code for row in alerts.route()] == ["wl-other"]
    assert alerts.statuses() == [
        ("wl-camle", "firing", "silenced"),
        ("wl-haivan", "firing", "silenced"),
        ("wl-other", "firing", "routed"),
    ]
