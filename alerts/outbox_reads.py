"""The read-only queries of the delivery outbox (alerts/outbox.py): who was told of an
episode, the e-mails refused for good, and how many e-mails are in each state. Mixed into
:class:`alerts.outbox.Outbox`, so callers ask the outbox as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Engine, func, select

from alerts.delivery_tables import EMAIL_STATUSES, alert_deliveries, alert_emails
from alerts.facts import Person
from alerts.repository import notification_log, transaction


@dataclass(frozen=True, slots=True)
class ToldRow:
    """Someone who was (or is to be) e-mailed about an episode."""

    person: Person
    step: int
    kind: str  # the event's kind key: "firing", "escalation-1" ...
    event_id: int
    delivery_status: str  # pending | emailed
    email_status: str | None  # None until the e-mail is written; pending|sending|sent|failed
    sent_at: datetime | None


class OutboxReads:
    """What the alerts console and the CLI read from the outbox tables. Database errors
    become RetryableError (unreachable, locked) or PermanentError."""

    _engine: Engine  # set by Outbox.__init__

    def told(self, rule_id: str, unit_code: str, episode: int) -> list[ToldRow]:
        """Who was, or is to be, e-mailed about this episode (dropped deliveries are not
        counted), in the order they were chosen."""
        d, log_c, e = alert_deliveries.c, notification_log.c, alert_emails.c
        query = (
            select(alert_deliveries, log_c.kind, e.status.label("email_status"), e.sent_at)
            .join(notification_log, log_c.id == d.event_id)
            .outerjoin(alert_emails, e.id == d.email_id)
            .where(
                log_c.rule_id == rule_id,
                log_c.unit_code == unit_code,
                log_c.episode == episode,
                d.status != "dropped",
            )
            .order_by(d.id)
        )
        with transaction(self._engine, "read who was told of an alert") as connection:
            rows = connection.execute(query).mappings().all()
        return [
            ToldRow(
                person_of_row(row),
                row["step"],
                row["kind"],
                row["event_id"],
                row["status"],
                row["email_status"],
                row["sent_at"],
            )
            for row in rows
        ]

    def failed_emails(self, limit: int = 50) -> list[dict[str, Any]]:
        """E-mails refused for good, newest first, each with the alerts it carried:
        ``alerts`` [(rule_id, unit_code)] and ``rules`` (the rule ids)."""
        e, d, log_c = alert_emails.c, alert_deliveries.c, notification_log.c
        with transaction(self._engine, "read the failed e-mails") as connection:
            emails = connection.execute(
                select(*(e[name] for name in _FAILED_COLUMNS))
                .where(e.status == "failed")
                .order_by(e.id.desc())
                .limit(max(1, limit))
            ).mappings()
            found = {row["id"]: {**row, "alerts": [], "rules": []} for row in emails}
            if found:
                carried = connection.execute(
                    select(d.email_id, log_c.rule_id, log_c.unit_code)
                    .join(notification_log, log_c.id == d.event_id)
                    .where(d.email_id.in_(list(found)))
                    .order_by(d.email_id, log_c.rule_id, log_c.unit_code)
                    .distinct()
                )
                for email_id, rule_id, unit_code in carried:
                    entry = found[email_id]
                    entry["alerts"].append((rule_id, unit_code))
                    if rule_id not in entry["rules"]:
                        entry["rules"].append(rule_id)
        return list(found.values())

    def counts(self) -> dict[str, int]:
        """E-mails by status (every status, 0 when none) and ``deliveries_pending``."""
        e, d = alert_emails.c, alert_deliveries.c
        counted = dict.fromkeys(EMAIL_STATUSES, 0)
        with transaction(self._engine, "count the e-mails") as connection:
            for status, count in connection.execute(
                select(e.status, func.count()).group_by(e.status)
            ):
                counted[status] = int(count)
            counted["deliveries_pending"] = int(
                connection.execute(
                    select(func.count()).select_from(alert_deliveries).where(d.status == "pending")
                ).scalar_one()
            )
        return counted


_FAILED_COLUMNS = (
    "id",
    "recipient",
    "lang",
    "subject",
    "message_id",
    "last_error",
    "attempts",
    "created_at",
    "last_attempt_at",
)


def person_of_row(row: Any) -> Person:
    lang = row["lang"] if row["lang"] in ("vi", "en") else "vi"
    return Person(row["email"], row["name"], cast(Literal["vi", "en"], lang), row["person_unit"])
