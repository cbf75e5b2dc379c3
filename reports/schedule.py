"""The Monday e-mail: last week's review to each leader, for each of their top units, with
the PDF attached.

``WeeklyMailer.run(now)`` is called every round of the alert engine (the leader process
only). From Monday 07:00 local time on, it sends what the current week still owes: one
e-mail per (week, unit, leader), remembered in ``report_runs`` so a restart never sends
twice; a failed one (SMTP or store down) is retried in the next round, also on the days
after, until the next week takes over. A refused address (PermanentError) is kept as
"rejected" and not retried: an operator must fix it.

Users have no e-mail column yet: a leader whose username is an e-mail address receives it
(``address_of``); the others are skipped with a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from core.db import UtcDateTime
from core.errors import CityOpsError, PermanentError, RetryableError
from core.migrate import Step, migrate
from core.ports import Clock, Notifier, Store
from core.settings import Settings
from core.settings_alerts import EMAIL
from core.types import Attachment, Notification
from reports.mail import file_stem, mail_body, mail_subject
from reports.model import IsoWeek, WeeklyReport
from reports.pdf import write_pdf
from reports.weeks import last_complete_week

if TYPE_CHECKING:
    from dashboard.users import User
    from layers.levels import Hierarchy

log = logging.getLogger("cityops.reports")

SEND_AT: Final = time(7, 0)  # Monday, local time
COMPONENT: Final = "reports"
SENT, FAILED, REJECTED = "sent", "failed", "rejected"

metadata = MetaData()

report_runs = Table(
    "report_runs",
    metadata,
    Column("week", Text, nullable=False),  # "2026-W47"
    Column("unit", Text, nullable=False),
    Column("username", Text, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),  # the last attempt; delivery when sent
    Column("status", Text, nullable=False),  # sent | failed | rejected
    Column("error", Text, nullable=True),
    PrimaryKeyConstraint("week", "unit", "username"),
)


def _v1_report_runs(connection: Connection) -> None:
    # Spelled out: a released step never changes, even when the table above does.
    v1 = MetaData()
    Table(
        "report_runs",
        v1,
        Column("week", Text, nullable=False),
        Column("unit", Text, nullable=False),
        Column("username", Text, nullable=False),
        Column("sent_at", UtcDateTime, nullable=True),
        Column("status", Text, nullable=False),
        Column("error", Text, nullable=True),
        PrimaryKeyConstraint("week", "unit", "username"),
    )
    v1.create_all(connection)


MIGRATIONS: Final[Sequence[Step]] = (_v1_report_runs,)

BuildReport = Callable[[str, IsoWeek, datetime], WeeklyReport]


def username_address(user: User) -> str | None:
    """The leader's e-mail address (``cityops users add --email``), else the username when
    it is one."""
    if user.email:
        return user.email
    return user.username if EMAIL.fullmatch(user.username) else None


def top_units(codes: Sequence[str], hierarchy: Hierarchy) -> list[str]:
    """The codes not inside another of ``codes`` (a leader of 48 and 20194 gets 48 only);
    codes the hierarchy does not know are left out."""
    known = [code for code in codes if hierarchy.get(code) is not None]
    return [
        code
        for code in known
        if not any(other != code and hierarchy.is_within(code, other) for other in known)
    ]


class WeeklyMailer:
    """Sends last week's review on Monday morning; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: Engine,
        hierarchy: Hierarchy,
        notifier: Notifier,
        clock: Clock,
        *,
        address_of: Callable[[User], str | None] = username_address,
        build: BuildReport | None = None,
    ) -> None:
        from dashboard.users import UserStore

        self._settings = settings
        self._store = store
        self._engine = engine
        self._hierarchy = hierarchy
        self._notifier = notifier
        self._clock = clock
        self._tz = ZoneInfo(settings.site.timezone)
        self._address_of = address_of
        self._build = build or self._build_weekly
        self._users = UserStore(engine, clock)
        try:
            migrate(engine, COMPONENT, MIGRATIONS, clock)
        except SQLAlchemyError as exc:
            raise RetryableError(f"the reports tables could not be migrated: {exc}") from exc

    def _build_weekly(self, unit_code: str, week: IsoWeek, now: datetime) -> WeeklyReport:
        from reports.weekly import build_weekly

        return build_weekly(
            self._settings, self._store, self._engine, self._hierarchy, unit_code, week, now=now
        )

    def due_week(self, now: datetime) -> IsoWeek | None:
        """The week whose review is owed at ``now``: last week, once this week's Monday
        07:00 local has passed; None before that."""
        local = now.astimezone(self._tz)
        monday = local.date() - timedelta(days=local.weekday())
        if local < datetime.combine(monday, SEND_AT, tzinfo=self._tz):
            return None
        return last_complete_week(now, self._tz)

    def run(self, now: datetime) -> int:
        """Send what is owed at ``now``; returns how many e-mails went out. Never raises
        for one leader's failure (it is recorded and retried); raises RetryableError when
        the state database cannot be read."""
        week = self.due_week(now)
        if week is None:
            return 0
        done = self._finished(week)
        reports: dict[str, WeeklyReport | None] = {}
        sent = 0
        for user in self._users.list():
            if user.disabled or user.role != "leader":
                continue
            address = self._address_of(user)
            if address is None:
                log.debug("leader %s has no e-mail address: no weekly review", user.username)
                continue
            for unit_code in top_units(user.units, self._hierarchy):
                if (unit_code, user.username) in done:
                    continue
                sent += self._send_one(user, address, unit_code, week, now, reports)
        return sent

    def _send_one(
        self,
        user: User,
        address: str,
        unit_code: str,
        week: IsoWeek,
        now: datetime,
        reports: dict[str, WeeklyReport | None],
    ) -> int:
        try:
            if unit_code not in reports:
                reports[unit_code] = self._build(unit_code, week, now)
            report = reports[unit_code]
            if report is None:
                raise RetryableError(f"the review of {unit_code} for {week} failed earlier")
            self._notifier.send(self._notification(report, user, address))
        except PermanentError as exc:
            log.warning("weekly review %s %s to %s refused: %s", week, unit_code, address, exc)
            self._record(week, unit_code, user.username, REJECTED, str(exc))
            return 0
        except CityOpsError as exc:
            reports.setdefault(unit_code, None)
            log.warning("weekly review %s %s to %s failed: %s", week, unit_code, address, exc)
            self._record(week, unit_code, user.username, FAILED, str(exc))
            return 0
        self._record(week, unit_code, user.username, SENT, None)
        log.info("weekly review %s %s sent to %s", week, unit_code, address)
        return 1

    def _notification(self, report: WeeklyReport, user: User, address: str) -> Notification:
        lang = user.language
        pdf = write_pdf(report, lang)
        return Notification(
            recipients=(address,),
            subject=mail_subject(report, lang),
            body_text=mail_body(report, lang, user.username),
            reason="weekly-review",
            headers={"X-CityOps-Report": f"weekly {report.week} {report.unit_code}"},
            attachments=(
                Attachment(
                    file_stem(report.unit_code, report.week, lang) + ".pdf",
                    "application/pdf",
                    pdf,
                ),
            ),
        )

    def _finished(self, week: IsoWeek) -> set[tuple[str, str]]:
        """(unit, username) already sent or rejected for ``week``."""
        query = select(report_runs.c.unit, report_runs.c.username).where(
            report_runs.c.week == str(week), report_runs.c.status.in_((SENT, REJECTED))
        )
        try:
            with self._engine.connect() as connection:
                return {(row.unit, row.username) for row in connection.execute(query)}
        except SQLAlchemyError as exc:
            raise RetryableError(f"report_runs could not be read: {exc}") from exc

    def _record(
        self, week: IsoWeek, unit: str, username: str, status: str, error: str | None
    ) -> None:
        values = {"sent_at": self._clock.now(), "status": status, "error": error}
        key = (
            (report_runs.c.week == str(week))
            & (report_runs.c.unit == unit)
            & (report_runs.c.username == username)
        )
        try:
            with self._engine.begin() as connection:
                changed = connection.execute(update(report_runs).where(key).values(values))
                if changed.rowcount == 0:
                    connection.execute(
                        insert(report_runs),
                        {"week": str(week), "unit": unit, "username": username, **values},
                    )
        except SQLAlchemyError as exc:
            # Sent but not recorded would send again next round: say so loudly.
            log.error(
                "report_runs %s %s %s not recorded (%s): %s", week, unit, username, status, exc
            )
