"""The alert engine end to end: a real SqliteStore holding readings, a real aiosmtpd server,
the real hierarchy, the state database on SQLite and on PostgreSQL, and a FakeClock moved
by hand. Who is told (roster, escalation, reminders), grouping of a storm, SMTP outages,
a crash after the SMTP server took an e-mail, two evaluators at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData

from alerts.actions import AlertActions
from alerts.email import SmtpNotifier
from alerts.links import AckSigner
from alerts.places import Places
from alerts.roster import Roster
from alerts.service import AlertService
from core.db import make_engine
from core.settings import Settings, SmtpSettings, load_settings
from core.settings_alerts import AlertsSettings
from core.store import SqliteStore
from core.types import Notification, Point
from layers.levels import Hierarchy
from tests.conftest import FakeClock
from tests.fixtures.smtp import SmtpTestServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECRET = b"k" * 32
HAI_VAN = "Phường Hải Vân, Thành phố Đà Nẵng"
OFFICER = "hai-van@danang.gov.vn"  # on duty for Phường Hải Vân (20194), day and night
CITY = "so-tnmt@danang.gov.vn"  # on duty for Thành phố Đà Nẵng (48), English
DESK = "truc-ban@danang.gov.vn"
# Monday 02/11/2026 08:00 in Việt Nam
START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)

ALERTS: dict[str, Any] = {
    "interval_s": 5,
    "recipients": [DESK],
    "roster": [
        {"unit": "20194", "name": "Nguyễn Văn Hải", "email": OFFICER},
        {"unit": "48", "name": "Trần Thị Lan", "email": CITY, "lang": "en"},
    ],
    "escalation": {"after_min": 15, "remind_every_min": 30},
    "group_wait_s": 0,
    "group_interval_s": 60,
    "retry": {"first_delay_s": 5, "factor": 2, "max_delay_s": 300},
    "lease_s": 30,
    "rules": [
        {
            "id": "pm25-bad",
            "metric": "pm25",
            "level": "commune",
            "op": "above",
            "threshold": 80,
            "clear": 70,
            "for_s": 0,
            "severity": "critical",
            "title": {"vi": "Bụi mịn PM2.5 ở mức Xấu", "en": "PM2.5 at Bad level"},
        }
    ],
}


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
    return shipped.model_copy(
        update={"smtp": smtp, "alerts": AlertsSettings.model_validate(ALERTS)}
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "timeseries.sqlite")
    yield opened
    opened.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    built = make_engine(url)
    yield built
    if built.dialect.name == "postgresql":  # one database per module: leave it empty
        tables = MetaData()
        with built.begin() as connection:
            tables.reflect(connection)
            for table in reversed(tables.sorted_tables):
                if table.name != "schema_migrations":
                    connection.execute(table.delete())
    built.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def pm25(store: SqliteStore, clock: FakeClock, value: float, commune: str = "20194") -> None:
    """A reading from one sensor in the commune (Đà Nẵng), now."""
    store.write(
        [
            Point(
                measurement="air",
                tags={"device": f"aq-{commune}", "province": "48", "commune": commune},
                fields={"pm25": value, "pm10": value * 1.6},
                ts=clock.now(),
            )
        ]
    )


class Engine_:
    """One evaluator process: the service and what it needs, built like alerts/wiring.py."""

    def __init__(
        self,
        settings: Settings,
        store: SqliteStore,
        engine: Engine,
        hierarchy: Hierarchy,
        clock: FakeClock,
        *,
        holder: str = "evaluator-a",
        notifier: Any = None,
    ) -> None:
        self.service = AlertService(
            settings,
            store,
            engine,
            notifier if notifier is not None else SmtpNotifier(settings.smtp),
            places=Places(hierarchy),
            roster=Roster.from_settings(
                settings, known_unit=lambda code: hierarchy.get(code) is not None
            ),
            signer=AckSigner(SECRET),
            clock=clock,
            holder=holder,
        )

    def round(self) -> Any:
        return self.service.run_once()


def to(message: EmailMessage) -> str:
    return str(message["To"])


def by_recipient(messages: list[EmailMessage]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for message in messages:
        found.setdefault(to(message), []).append(str(message["Subject"]))
    return found


def test_firing_goes_to_the_officer_on_duty_escalates_then_stops_on_acknowledgement(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    alerts = Engine_(settings, store, engine, hierarchy, clock)
    pm25(store, clock, 92.4)
    report = alerts.round()
    assert [move.current.state for move in report.transitions] == ["firing"]
    (first,) = smtp_server.wait_for(1)
    assert to(first) == OFFICER  # the commune's officer, not the desk
    assert first["Subject"] == (f"[CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 92,4 µg/m³ — {HAI_VAN}")
    assert "/ack/" in first.get_body(("html",)).get_content()  # type: ignore[union-attr]

    # 14 minutes unacknowledged: nothing new; at 15 the city's officer is told.
    for _ in range(14):
        clock.advance(60)
        pm25(store, clock, 95.0)
        alerts.round()
    assert len(smtp_server.messages) == 1
    clock.advance(60)
    pm25(store, clock, 95.0)
    alerts.round()
    escalated = smtp_server.wait_for(2)[1]
    assert to(escalated) == CITY
    assert "[CHUYỂN CẤP]" in str(escalated["Subject"])

    # Acknowledged: no reminder at 30 min, no further escalation, ever.
    AlertActions(engine, clock).acknowledge("pm25-bad", "20194", 1, "Nguyễn Văn Hải", "đang xử lý")
    for _ in range(90):
        clock.advance(60)
        pm25(store, clock, 95.0)
        alerts.round()
    assert len(smtp_server.messages) == 2

    # Back under the clear line: both who were told get the resolved e-mail.
    pm25(store, clock, 60.0)
    alerts.round()
    resolved = smtp_server.wait_for(4)[2:]
    assert sorted(to(message) for message in resolved) == sorted([OFFICER, CITY])
    assert all("[ĐÃ KHÔI PHỤC]" in str(message["Subject"]) for message in resolved)


def test_unacknowledged_alert_is_reminded_once_per_interval(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    alerts = Engine_(settings, store, engine, hierarchy, clock)
    pm25(store, clock, 120.0)
    alerts.round()
    # The evaluator was away for 31 minutes: one reminder (not one per missed interval), and
    # the two escalations now due (15 min: the city; 30 min: the duty desk).
    clock.advance(31 * 60)
    pm25(store, clock, 120.0)
    alerts.round()
    got = by_recipient(smtp_server.wait_for(4))
    assert len(got[OFFICER]) == 2  # the first, then one e-mail with the reminder
    assert "[NHẮC LẠI lần 1]" in got[OFFICER][1]
    assert len(got[CITY]) == 1
    assert len(got[DESK]) == 1
    assert all("[CHUYỂN CẤP]" in got[who][0] for who in (CITY, DESK))
    clock.advance(60)
    alerts.round()
    assert len(smtp_server.messages) == 4


def test_a_storm_of_500_breaching_sensors_is_a_handful_of_emails(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    alerts = Engine_(settings, store, engine, hierarchy, clock)
    communes = [unit.code for unit in hierarchy.units_at("commune", "48")]
    points = [
        Point(
            measurement="air",
            tags={"device": f"aq-{index:04d}", "province": "48", "commune": communes[index % 94]},
            fields={"pm25": 150.0 + index % 7},
            ts=clock.now(),
        )
        for index in range(500)
    ]
    store.write(points[:300])
    alerts.round()
    clock.advance(5)
    store.write(points[300:])
    alerts.round()
    clock.advance(60)  # the next group interval
    alerts.round()
    messages = smtp_server.wait_for(2)
    got = by_recipient(messages)
    # 94 communes fire: Hải Vân's officer hears of Hải Vân, the city's officer of the other
    # 93 (nobody is on duty in those communes), in at most two e-mails each.
    assert set(got) == {OFFICER, CITY}
    assert len(messages) <= 4
    assert len(got[OFFICER]) == 1
    assert "93 cảnh báo" in " ".join(got[CITY]) or len(got[CITY]) == 2


def test_smtp_down_for_minutes_then_up_delivers_everything_once(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    alerts = Engine_(settings, store, engine, hierarchy, clock)
    smtp_server.stop()
    pm25(store, clock, 92.4)
    pm25(store, clock, 99.0, commune="20260")  # Cẩm Lệ: nobody on duty there → the city
    for _ in range(60):  # five minutes of 5-s rounds with the server down
        alerts.round()
        clock.advance(5)
    rows = alerts.service.outbox.counts()
    assert rows.get("sent", 0) == 0
    assert rows.get("pending", 0) == 2  # waiting, not lost, not failed
    smtp_server.start()
    for _ in range(70):  # backoff is capped at 300 s: within six minutes both are sent
        alerts.round()
        clock.advance(5)
    messages = smtp_server.wait_for(2)
    assert sorted(to(message) for message in messages) == sorted([OFFICER, CITY])
    assert alerts.service.outbox.counts().get("sent") == 2


def test_a_refused_address_fails_for_good_and_is_listed(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    smtp_server.refuse[OFFICER] = "550 5.1.1 no such user"
    alerts = Engine_(settings, store, engine, hierarchy, clock)
    pm25(store, clock, 92.4)
    alerts.round()
    clock.advance(60)
    alerts.round()
    (failed,) = alerts.service.outbox.failed_emails()
    assert failed["recipient"] == OFFICER
    assert "550" in failed["last_error"]
    assert smtp_server.messages == []


class DiesAfterSending:
    """The SMTP server takes the e-mail, then the process dies before marking it sent."""

    def __init__(self, settings: Settings) -> None:
        self._real = SmtpNotifier(settings.smtp)

    def send(self, notification: Notification) -> None:
        self._real.send(notification)
        raise SystemExit("killed")


def test_killed_after_the_server_took_an_email_resends_it_once_with_the_same_message_id(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    dying = Engine_(settings, store, engine, hierarchy, clock, notifier=DiesAfterSending(settings))
    pm25(store, clock, 92.4)
    with pytest.raises(SystemExit):
        dying.round()
    (first,) = smtp_server.wait_for(1)
    # A new process: it waits for the dead one's lease and claim to run out, then resends.
    successor = Engine_(settings, store, engine, hierarchy, clock, holder="evaluator-b")
    successor.round()
    assert len(smtp_server.messages) == 1
    clock.advance(31)
    pm25(store, clock, 92.4)
    successor.round()
    second = smtp_server.wait_for(2)[1]
    assert second["Message-ID"] == first["Message-ID"]
    for _ in range(5):
        clock.advance(5)
        successor.round()
    assert len(smtp_server.messages) == 2


def test_two_evaluators_at_once_send_each_email_once(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    first = Engine_(settings, store, engine, hierarchy, clock, holder="evaluator-a")
    second = Engine_(settings, store, engine, hierarchy, clock, holder="evaluator-b")
    pm25(store, clock, 92.4)
    reports = [first.round(), second.round()]
    assert [report.leader for report in reports] == [True, False]
    for _ in range(10):
        clock.advance(5)
        pm25(store, clock, 92.4)
        assert first.round().leader
        assert not second.round().leader
    assert len(smtp_server.wait_for(1)) == 1
    # The first dies (stops renewing): within lease_s the second takes over and escalates.
    clock.advance(31)
    pm25(store, clock, 92.4)
    assert second.round().leader
    clock.advance(15 * 60)
    pm25(store, clock, 92.4)
    second.round()
    assert by_recipient(smtp_server.wait_for(2)) == {
        OFFICER: [smtp_server.messages[0]["Subject"]],
        CITY: [smtp_server.messages[1]["Subject"]],
    }
