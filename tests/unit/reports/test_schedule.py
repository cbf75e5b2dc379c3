"""WeeklyMailer's decisions on a real SQLite state database with a recording notifier:
when a week is due, which units a leader gets, once only, retried after a failure, not
retried after a refusal; and the e-mail's subject and text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from core.db import make_engine
from core.errors import PermanentError, RetryableError
from core.settings import Settings, load_settings
from core.settings_base import Label
from core.types import Notification
from dashboard.users import UserStore
from layers.levels import Hierarchy
from reports.mail import mail_body, mail_subject
from reports.model import IsoWeek, WeeklyReport
from reports.schedule import WeeklyMailer, report_runs, top_units
from tests.conftest import FakeClock
from tests.fixtures.signin import TEST_SECRET_ENV
from tests.unit.reports.test_xlsx import sample_report

REPO = Path(__file__).resolve().parents[3]
ICT = ZoneInfo("Asia/Ho_Chi_Minh")
PASSWORD = "mat-khau-lanh-dao"


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=ICT).astimezone(UTC)


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.fail_with: dict[str, Exception] = {}  # recipient → error to raise

    def send(self, notification: Notification) -> None:
        error = self.fail_with.get(notification.recipients[0])
        if error is not None:
            raise error
        self.sent.append(notification)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)


@pytest.fixture(scope="module")
def hierarchy(settings: Settings) -> Hierarchy:
    return Hierarchy.from_csv(
        settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
    )


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    made = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    users = UserStore(made)
    users.add("a@danang.gov.vn", PASSWORD, "leader", ["48"])
    users.add("b@haivan.gov.vn", PASSWORD, "leader", ["20194"], language="en")
    return made


def make_mailer(
    settings: Settings, engine: Engine, hierarchy: Hierarchy, notifier: RecordingNotifier
) -> tuple[WeeklyMailer, list[tuple[str, IsoWeek]]]:
    built: list[tuple[str, IsoWeek]] = []

    def build(unit_code: str, week: IsoWeek, now: datetime) -> WeeklyReport:
        built.append((unit_code, week))
        name = Label(vi=f"Đơn vị {unit_code}", en=f"Unit {unit_code}")
        return sample_report(unit_code=unit_code, unit_name=name)

    store = object()  # never read: build is injected
    mailer = WeeklyMailer(
        settings,
        store,
        engine,
        hierarchy,
        notifier,
        FakeClock(),
        build=build,  # type: ignore[arg-type]
    )
    return mailer, built


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (local(23, 6, 59), None),  # Monday 06:59 ICT (Sunday 23:59 UTC)
        (local(23, 7, 0), IsoWeek(2026, 47)),
        (local(25, 12), IsoWeek(2026, 47)),  # Wednesday: still owed
        (local(29, 23, 59), IsoWeek(2026, 47)),  # Sunday night
        (local(30, 0, 30), None),  # the next Monday before 07:00
        (local(30, 7, 1), IsoWeek(2026, 48)),
    ],
)
def test_due_week(
    settings: Settings, engine: Engine, hierarchy: Hierarchy, now: datetime, due: IsoWeek | None
) -> None:
    mailer, _ = make_mailer(settings, engine, hierarchy, RecordingNotifier())
    assert mailer.due_week(now) == due


def test_top_units(hierarchy: Hierarchy) -> None:
    assert top_units(["20194", "48"], hierarchy) == ["48"]
    assert top_units(["20194", "20260", "99999"], hierarchy) == ["20194", "20260"]


def test_once_per_week_and_user_with_the_pdf(
    settings: Settings, engine: Engine, hierarchy: Hierarchy
) -> None:
    notifier = RecordingNotifier()
    mailer, built = make_mailer(settings, engine, hierarchy, notifier)
    assert mailer.run(local(23, 7, 30)) == 2
    assert sorted(built) == [("20194", IsoWeek(2026, 47)), ("48", IsoWeek(2026, 47))]
    by_to = {n.recipients: n for n in notifier.sent}
    city = by_to[("a@danang.gov.vn",)]
    assert city.subject == "Báo cáo tuần 2026-W47 – Đơn vị 48"
    [pdf] = city.attachments
    assert (pdf.filename, pdf.content_type) == ("bao-cao-tuan-48-2026-W47.pdf", "application/pdf")
    assert pdf.data.startswith(b"%PDF-")
    assert by_to[("b@haivan.gov.vn",)].attachments[0].filename == (
        "weekly-review-20194-2026-W47.pdf"
    )
    assert mailer.run(local(23, 8)) == 0
    assert len(notifier.sent) == 2


def test_failure_retried_refusal_not(
    settings: Settings, engine: Engine, hierarchy: Hierarchy
) -> None:
    notifier = RecordingNotifier()
    notifier.fail_with = {
        "a@danang.gov.vn": RetryableError("SMTP server 127.0.0.1:1 unreachable"),
        "b@haivan.gov.vn": PermanentError("SMTP server replied 550 no such user"),
    }
    mailer, _ = make_mailer(settings, engine, hierarchy, notifier)
    assert mailer.run(local(23, 7, 30)) == 0
    with engine.connect() as connection:
        rows = {row.username: row for row in connection.execute(select(report_runs))}
    assert rows["a@danang.gov.vn"].status == "failed"
    assert "unreachable" in rows["a@danang.gov.vn"].error
    assert rows["b@haivan.gov.vn"].status == "rejected"

    notifier.fail_with = {}
    assert mailer.run(local(24, 7, 30)) == 1  # Tuesday: only the failed one again
    assert [n.recipients for n in notifier.sent] == [("a@danang.gov.vn",)]


def test_a_report_that_cannot_be_built_is_recorded_and_retried(
    settings: Settings, engine: Engine, hierarchy: Hierarchy
) -> None:
    notifier = RecordingNotifier()
    mailer, _ = make_mailer(settings, engine, hierarchy, notifier)
    working = mailer._build

    def broken(unit_code: str, week: IsoWeek, now: datetime) -> WeeklyReport:
        raise RetryableError("store unreachable")

    mailer._build = broken
    assert mailer.run(local(23, 7, 30)) == 0
    mailer._build = working
    assert mailer.run(local(23, 7, 31)) == 2


def test_body_lists_kpis_and_alert_counts_vietnamese_first() -> None:
    body = mail_body(sample_report(), "vi", "a@danang.gov.vn")
    vi, en = body.split("\n\n---\n\n")
    assert "- Hồ sơ giải quyết đúng hạn: 92,5 % (tuần trước 90,0 %; mục tiêu 95,0 %)" in vi
    assert "– Gần đạt" in vi
    assert "- Tiếng ồn: không có dữ liệu (tuần trước không có dữ liệu)\n" in vi
    assert "Cảnh báo trong tuần: 7 (nghiêm trọng 2, cảnh báo 5, thông tin 0)" in vi
    assert "chưa xác nhận: 1" in vi
    assert "Dossiers resolved on time: 92.5 %" in en
    assert mail_subject(sample_report(), "en") == "Weekly review 2026-W47 – Da Nang City"
