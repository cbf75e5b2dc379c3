"""The Monday e-mail end to end: real build_weekly on a SqliteStore, a SQLite state
database with users, the SmtpNotifier and a real aiosmtpd server receiving the e-mails."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from alerts.email import SmtpNotifier
from alerts.repository import AlertRepository
from core.db import make_engine
from core.settings import Settings, SmtpSettings, load_settings
from core.store.sqlite import SqliteStore
from core.types import Point
from dashboard.users import UserStore
from layers.levels import Hierarchy
from reports.schedule import WeeklyMailer, report_runs
from tests.conftest import FakeClock
from tests.fixtures.signin import TEST_SECRET_ENV
from tests.fixtures.smtp import SmtpTestServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ICT = ZoneInfo("Asia/Ho_Chi_Minh")
PASSWORD = "mat-khau-lanh-dao"
CITY_LEADER, HAI_VAN_LEADER = "chu.tich@danang.gov.vn", "bi.thu@haivan.gov.vn"


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ICT).astimezone(UTC)


def dossiers(commune: str, at: datetime, on_time: float, resolved: float) -> Point:
    tags = {"device": f"gov-{commune}", "province": "48", "commune": commune}
    return Point("dossiers", tags, {"resolved_on_time": on_time, "resolved": resolved}, at)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)


@pytest.fixture(scope="module")
def hierarchy(settings: Settings) -> Hierarchy:
    return Hierarchy.from_csv(
        settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
    )


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    made = SqliteStore(tmp_path / "store.sqlite")
    made.write(
        [
            dossiers("20194", local(11, 17, 9), 9, 10),  # W47: Hải Vân 90 %
            dossiers("20260", local(11, 18, 10), 50, 100),  # W47: Cẩm Lệ 50 %
            dossiers("20194", local(11, 24, 9), 8, 10),  # W48: Hải Vân 80 %
        ]
    )
    yield made
    made.close()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    made = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    AlertRepository(made).create_schema()
    users = UserStore(made)
    users.add(CITY_LEADER, PASSWORD, "leader", ["48", "20194"])  # 20194 lies inside 48
    users.add(HAI_VAN_LEADER, PASSWORD, "leader", ["20194"], language="en")
    users.add("lanhdao-khong-email", PASSWORD, "leader", ["48"])  # no address: skipped
    users.add("vanhanh@danang.gov.vn", PASSWORD, "operator", ["48"])  # not a leader
    users.add("cu@danang.gov.vn", PASSWORD, "leader", ["48"])
    users.disable("cu@danang.gov.vn")
    return made


def mailer(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    server: SmtpTestServer,
) -> WeeklyMailer:
    notifier = SmtpNotifier(SmtpSettings(port=server.port, sender="ioc@danang.gov.vn", timeout_s=5))
    return WeeklyMailer(settings, store, engine, hierarchy, notifier, FakeClock())


def pdf_text(message: EmailMessage, tmp_path: Path) -> str:
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    path = tmp_path / str(attachment.get_filename())
    path.write_bytes(attachment.get_content())
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, timeout=30
    ).stdout.decode("utf-8")


def by_recipient(messages: list[EmailMessage]) -> dict[str, EmailMessage]:
    return {str(message["To"]): message for message in messages}


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
def test_monday_sends_each_leader_their_unit_once(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    smtp_server: SmtpTestServer,
    tmp_path: Path,
) -> None:
    weekly = mailer(settings, store, engine, hierarchy, smtp_server)
    assert weekly.run(local(11, 23, 6, 59)) == 0  # Monday before 07:00
    assert smtp_server.messages == []

    assert weekly.run(local(11, 23, 7, 0)) == 2
    messages = by_recipient(smtp_server.wait_for(2))
    assert set(messages) == {CITY_LEADER, HAI_VAN_LEADER}

    city = messages[CITY_LEADER]
    # Spaces compared loosely: Python 3.11's header folder can lose the space at a fold
    # between two encoded words ("phốĐà"), in every e-mail of alerts/email.py alike.
    subject = str(city["Subject"]).replace(" ", "")
    assert subject == "Báo cáo tuần 2026-W47 – Thành phố Đà Nẵng".replace(" ", "")
    body = city.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    vi_line = next(line for line in body.splitlines() if "giải quyết đúng hạn" in line)
    assert "53,6 %" in vi_line  # 59/110 this week
    assert body.index("giải quyết đúng hạn") < body.index("On-time dossier rate")  # vi first
    assert [a.get_filename() for a in city.iter_attachments()] == ["bao-cao-tuan-48-2026-W47.pdf"]
    city_pdf = pdf_text(city, tmp_path)
    assert "Thành phố Đà Nẵng" in city_pdf
    assert "Phường Cẩm Lệ" in city_pdf  # the league table of the city's communes
    on_time = next(line for line in city_pdf.splitlines() if "đúng hạn" in line and "%" in line)
    assert "53,6 %" in on_time  # 59/110

    hai_van = messages[HAI_VAN_LEADER]
    assert "Hai Van" in str(hai_van["Subject"])  # language en
    hai_van_pdf = pdf_text(hai_van, tmp_path)
    assert "Hai Van Ward" in hai_van_pdf
    assert "Cam Le" not in hai_van_pdf  # only what this leader may see
    assert "Da Nang City" in hai_van_pdf  # the parent, in the unit's full name only
    assert "90.0 %" in hai_van_pdf

    # Later the same Monday, and after a restart (a new mailer on the same database).
    assert weekly.run(local(11, 23, 9, 0)) == 0
    assert mailer(settings, store, engine, hierarchy, smtp_server).run(local(11, 24, 9)) == 0
    assert len(smtp_server.messages) == 2


def test_a_failed_monday_is_sent_on_tuesday(
    settings: Settings,
    store: SqliteStore,
    engine: Engine,
    hierarchy: Hierarchy,
    smtp_server: SmtpTestServer,
) -> None:
    weekly = mailer(settings, store, engine, hierarchy, smtp_server)
    smtp_server.stop()
    assert weekly.run(local(11, 30, 7, 5)) == 0  # W48 due, SMTP down
    with engine.connect() as connection:
        rows = connection.execute(select(report_runs)).all()
    assert {(row.week, row.unit, row.status) for row in rows} == {
        ("2026-W48", "48", "failed"),
        ("2026-W48", "20194", "failed"),
    }
    assert all("unreachable" in row.error for row in rows)

    smtp_server.start()
    assert weekly.run(local(12, 1, 8, 0)) == 2  # Tuesday: retried
    assert set(by_recipient(smtp_server.wait_for(2))) == {CITY_LEADER, HAI_VAN_LEADER}
    with engine.connect() as connection:
        statuses = {row.status for row in connection.execute(select(report_runs))}
    assert statuses == {"sent"}
    assert weekly.run(local(12, 1, 9, 0)) == 0
