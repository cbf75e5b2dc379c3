"""The alert engine end to end: a real SqliteStore holding readings, a real aiosmtpd server,
the real hierarchy for unit names, the state database on SQLite and on PostgreSQL, and a
FakeClock moved by hand. One e-mail per episode and kind — across restarts and outages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from alerts.email import SmtpNotifier
from alerts.service import AlertService
from alerts.stages import RetryPolicy
from alerts.state import Transition
from core.db import make_engine
from core.settings import Settings, SmtpSettings, load_settings
from core.store import SqliteStore
from core.types import Point
from layers.levels import Hierarchy
from tests.conftest import FakeClock
from tests.fixtures.smtp import SmtpTestServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HAI_VAN = "Phường Hải Vân, Thành phố Đà Nẵng"
FAST_RETRY = RetryPolicy(attempts=2, first_delay_s=0.01, max_delay_s=0.01)


@pytest.fixture(scope="module")
def hierarchy() -> Hierarchy:
    settings = load_settings(REPO / "config.yaml", environ={})
    return Hierarchy.from_csv(
        settings.hierarchy.levels, REPO / "layers" / "data" / "admin_codes_2025.csv"
    )


@pytest.fixture
def settings(smtp_server: SmtpTestServer) -> Settings:
    shipped = load_settings(REPO / "config.yaml", environ={})
    smtp = SmtpSettings(
        host=smtp_server.host, port=smtp_server.port, sender="cityops@danang.gov.vn", timeout_s=5
    )
    return shipped.model_copy(update={"smtp": smtp})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "timeseries.sqlite")
    yield opened
    opened.close()


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.integration)]
)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    built = make_engine(url)
    yield built
    if built.dialect.name == "postgresql":  # one database per module: leave it empty
        with built.begin() as connection:
            connection.exec_driver_sql("DELETE FROM notification_log")
            connection.exec_driver_sql("DELETE FROM alert_states")
    built.dispose()


def pm25(store: SqliteStore, clock: FakeClock, value: float, device: str = "aq-0001") -> None:
    """A reading from a sensor in Phường Hải Vân (20194), Đà Nẵng (48), now."""
    store.write(
        [
            Point(
                measurement="air",
                tags={"device": device, "province": "48", "commune": "20194"},
                fields={"pm25": value, "pm10": value * 1.6},
                ts=clock.now(),
            )
        ]
    )


def service(
    settings: Settings, store: SqliteStore, engine: Engine, hierarchy: Hierarchy, clock: FakeClock
) -> AlertService:
    return AlertService(
        settings,
        store,
        engine,
        SmtpNotifier(settings.smtp),
        unit_name=hierarchy.full_name,
        clock=clock,
        retry=FAST_RETRY,
        sleep=lambda _: None,
    )


def states(moves: list[Transition]) -> list[str]:
    return [move.current.state for move in moves]


def test_one_firing_and_one_resolved_email_across_a_restart(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    engine_a = service(settings, store, engine, hierarchy, clock)
    pm25(store, clock, 95.0)
    pm25(store, clock, 91.0, device="aq-0002")  # two sensors: the unit's mean is 93.0
    assert states(engine_a.run_once()) == ["pending"]
    clock.advance(30)
    pm25(store, clock, 97.0)
    assert states(engine_a.run_once()) == ["pending"]
    assert smtp_server.messages == []  # nothing while pending

    clock.advance(30)  # for_s (60 s) has passed while still breaching
    pm25(store, clock, 99.0)
    assert states(engine_a.run_once()) == ["firing"]
    (first,) = smtp_server.wait_for(1)
    assert first["Subject"] == f"[CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 ở mức Xấu — {HAI_VAN}"
    assert first["X-CityOps-Alert"] == "pm25-bad/20194"
    text = first.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "95,0 µg/m³, vượt ngưỡng 80 µg/m³" in body  # mean of 99 and 91
    assert "Hai Van Ward, Da Nang City" in body
    assert "02/11/2026 08:00 (giờ Việt Nam)" in body  # since the breach was first seen
    assert "http://127.0.0.1:8050/?unit=20194&metric=pm25" in body

    for _ in range(3):  # still breaching: still one e-mail
        clock.advance(10)
        pm25(store, clock, 98.0)
        assert states(engine_a.run_once()) == ["firing"]
    assert len(smtp_server.messages) == 1

    # Restart: a new engine on the same state database sends nothing again.
    engine_b = service(settings, store, engine, hierarchy, clock)
    clock.advance(10)
    assert states(engine_b.run_once()) == ["firing"]
    assert len(smtp_server.messages) == 1

    clock.advance(10)
    pm25(store, clock, 30.0)
    pm25(store, clock, 34.0, device="aq-0002")
    assert states(engine_b.run_once()) == ["resolved"]
    first_again, resolved = smtp_server.wait_for(2)
    assert resolved["Subject"] == f"[ĐÃ KHÔI PHỤC] Bụi mịn PM2.5 ở mức Xấu — {HAI_VAN}"
    assert resolved["In-Reply-To"] == first_again["Message-ID"]
    clock.advance(10)
    assert states(engine_b.run_once()) == ["ok"]
    assert states(engine_a.run_once()) == ["ok"]  # the old engine, if it ran on, adds nothing
    assert len(smtp_server.messages) == 2
    assert [entry["status"] for entry in engine_b.repository.log_entries()] == ["sent", "sent"]


def test_smtp_down_at_firing_time_then_up_delivers_once(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    alerts = service(settings, store, engine, hierarchy, clock)
    pm25(store, clock, 120.0)
    alerts.run_once()  # pending
    smtp_server.stop()
    clock.advance(60)
    pm25(store, clock, 120.0)
    assert states(alerts.run_once()) == ["firing"]  # the state moves on; the e-mail waits
    (entry,) = alerts.repository.log_entries()
    assert (entry["status"], entry["attempts"]) == ("pending", 2)
    assert "unreachable" in entry["last_error"]

    clock.advance(10)
    alerts.run_once()  # still down: still waiting, nothing lost
    assert alerts.repository.log_entries()[0]["attempts"] == 4

    smtp_server.start()
    # The process restarts while the e-mail is waiting: the new one sends it from the outbox.
    restarted = service(settings, store, engine, hierarchy, clock)
    clock.advance(10)
    pm25(store, clock, 120.0)
    assert states(restarted.run_once()) == ["firing"]
    (message,) = smtp_server.wait_for(1)
    assert HAI_VAN in message["Subject"]
    assert message["Subject"].startswith("[CẢNH BÁO]")
    for runner in (restarted, alerts):
        clock.advance(10)
        runner.run_once()
    assert len(smtp_server.messages) == 1
    assert restarted.repository.log_entries()[0]["status"] == "sent"


def test_a_silent_sensor_keeps_the_alert_open_without_resolving(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    alerts = service(settings, store, engine, hierarchy, clock)
    pm25(store, clock, 120.0)
    alerts.run_once()
    clock.advance(60)
    pm25(store, clock, 120.0)
    assert states(alerts.run_once()) == ["firing"]
    clock.advance(901)  # past the rule's lookback: the unit has no value any more
    assert states(alerts.run_once()) == ["no_data"]
    assert len(smtp_server.wait_for(1)) == 1  # no resolved e-mail for silence
    pm25(store, clock, 110.0)
    assert states(alerts.run_once()) == ["firing"]  # the same episode: no new e-mail
    clock.advance(10)
    pm25(store, clock, 20.0)
    assert states(alerts.run_once()) == ["resolved"]
    subjects = [m["Subject"] for m in smtp_server.wait_for(2)]
    assert [s.split("]")[0] for s in subjects] == ["[CẢNH BÁO", "[ĐÃ KHÔI PHỤC"]
