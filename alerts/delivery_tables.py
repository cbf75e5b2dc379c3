"""The alert engine's tables in the SQL state database and their migration steps
(component ``"alerts"``, docs/design/011). SQLite and PostgreSQL.

    alert_states      one row per (rule, unit): where the state machine stands
    notification_log  one EVENT per (rule, unit, episode, kind) with its AlertFacts JSON;
                      status pending → routed | silenced | suppressed | dropped
                      (rows from before this schema may say sent or failed)
    alert_deliveries  one row per (event, person told): pending → emailed | dropped
    alert_emails      one e-mail per person, as sent: pending → sending → sent | failed
    alert_leases      the evaluator lease (alerts/leader.py): one holder at a time

Step 1 is the schema of the release before (made by ``metadata.create_all``), created only
where missing; step 2 adds the delivery outbox. The tables below follow the newest step;
the steps spell their tables out, since a released step must never change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sqlalchemy import (
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    inspect,
)

from core.db import UtcDateTime
from core.migrate import Step

COMPONENT: Final = "alerts"

EVENT_STATUSES: Final = ("pending", "routed", "silenced", "suppressed", "dropped")
DELIVERY_STATUSES: Final = ("pending", "emailed", "dropped")
EMAIL_STATUSES: Final = ("pending", "sending", "sent", "failed")

metadata = MetaData()

alert_states = Table(
    "alert_states",
    metadata,
    Column("rule_id", Text, primary_key=True),
    Column("unit_code", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("since", UtcDateTime, nullable=False),
    Column("value", Float, nullable=True),
    Column("last_eval", UtcDateTime, nullable=False),
    Column("fired_at", UtcDateTime, nullable=True),
    Column("active_at", UtcDateTime, nullable=True),
    Column("resolved_at", UtcDateTime, nullable=True),
    Column("episode", Integer, nullable=False),
    Column("error", Text, nullable=True),
)

notification_log = Table(
    "notification_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Text, nullable=False),
    Column("unit_code", Text, nullable=False),
    Column("episode", Integer, nullable=False),
    Column("kind", Text, nullable=False),  # "firing", "resolved", "reminder-2", "escalation-1"
    Column("status", Text, nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The next five are from the release before, when an event was also its e-mail.
    Column("sent_at", UtcDateTime, nullable=True),
    Column("last_attempt_at", UtcDateTime, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("recipients", Text, nullable=False),  # JSON list
    Column("subject", Text, nullable=False),  # a one-line summary, for the log
    Column("body_text", Text, nullable=False),
    Column("body_html", Text, nullable=True),
    Column("headers", Text, nullable=False),  # JSON object
    Column("facts", Text, nullable=True),  # AlertFacts JSON (alerts/facts.py)
    Column("status_reason", Text, nullable=True),  # why dropped / silenced
    UniqueConstraint(
        "rule_id", "unit_code", "episode", "kind", name="notification_log_once_per_episode"
    ),
)

alert_emails = Table(
    "alert_emails",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recipient", Text, nullable=False),
    Column("lang", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("body_text", Text, nullable=False),
    Column("body_html", Text, nullable=True),
    Column("headers", Text, nullable=False),  # JSON object
    Column("images", Text, nullable=False),  # JSON {content_id: base64 PNG}
    Column("message_id", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_attempt_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("claimed_by", Text, nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Index("alert_emails_due", "status", "next_attempt_at"),
    Index("alert_emails_recipient", "recipient"),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, ForeignKey("notification_log.id"), nullable=False),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("lang", Text, nullable=False),
    Column("person_unit", Text, nullable=True),  # the roster unit; NULL for the duty desk
    Column("step", Integer, nullable=False),  # the duty chain's step
    Column("status", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("email_id", Integer, ForeignKey("alert_emails.id"), nullable=True),
    UniqueConstraint("event_id", "email", name="alert_deliveries_once_per_person"),
    Index("alert_deliveries_status", "status"),
    Index("alert_deliveries_email_id", "email_id"),
)

alert_leases = Table(
    "alert_leases",
    metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("acquired_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)


def _v1_states_and_log(connection: Connection) -> None:
    # The release before made these with metadata.create_all: a database from it has them
    # already (checkfirst), a new one gets the same.
    v1 = MetaData()
    Table(
        "alert_states",
        v1,
        Column("rule_id", Text, primary_key=True),
        Column("unit_code", Text, primary_key=True),
        Column("state", Text, nullable=False),
        Column("since", UtcDateTime, nullable=False),
        Column("value", Float, nullable=True),
        Column("last_eval", UtcDateTime, nullable=False),
        Column("fired_at", UtcDateTime, nullable=True),
        Column("active_at", UtcDateTime, nullable=True),
        Column("resolved_at", UtcDateTime, nullable=True),
        Column("episode", Integer, nullable=False),
        Column("error", Text, nullable=True),
    )
    Table(
        "notification_log",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("rule_id", Text, nullable=False),
        Column("unit_code", Text, nullable=False),
        Column("episode", Integer, nullable=False),
        Column("kind", Text, nullable=False),
        Column("status", Text, nullable=False, index=True),
        Column("reason", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("sent_at", UtcDateTime, nullable=True),
        Column("last_attempt_at", UtcDateTime, nullable=True),
        Column("attempts", Integer, nullable=False),
        Column("last_error", Text, nullable=True),
        Column("recipients", Text, nullable=False),
        Column("subject", Text, nullable=False),
        Column("body_text", Text, nullable=False),
        Column("body_html", Text, nullable=True),
        Column("headers", Text, nullable=False),
        UniqueConstraint(
            "rule_id", "unit_code", "episode", "kind", name="notification_log_once_per_episode"
        ),
    )
    v1.create_all(connection, checkfirst=True)


def _v2_delivery_outbox(connection: Connection) -> None:
    # Only what is missing: a database made with this module's metadata (a test seed)
    # already has it all.
    present = {column["name"] for column in inspect(connection).get_columns("notification_log")}
    for name in ("facts", "status_reason"):
        if name not in present:
            connection.exec_driver_sql(f"ALTER TABLE notification_log ADD COLUMN {name} TEXT")
    v2 = MetaData()
    # Only the key the foreign key names; the table itself exists since step 1.
    Table("notification_log", v2, Column("id", Integer, primary_key=True))
    emails = Table(
        "alert_emails",
        v2,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("recipient", Text, nullable=False),
        Column("lang", Text, nullable=False),
        Column("status", Text, nullable=False),
        Column("subject", Text, nullable=False),
        Column("body_text", Text, nullable=False),
        Column("body_html", Text, nullable=True),
        Column("headers", Text, nullable=False),
        Column("images", Text, nullable=False),
        Column("message_id", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("next_attempt_at", UtcDateTime, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("last_attempt_at", UtcDateTime, nullable=True),
        Column("last_error", Text, nullable=True),
        Column("sent_at", UtcDateTime, nullable=True),
        Column("claimed_by", Text, nullable=True),
        Column("claimed_until", UtcDateTime, nullable=True),
        Index("alert_emails_due", "status", "next_attempt_at"),
        Index("alert_emails_recipient", "recipient"),
    )
    deliveries = Table(
        "alert_deliveries",
        v2,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", Integer, ForeignKey("notification_log.id"), nullable=False),
        Column("email", Text, nullable=False),
        Column("name", Text, nullable=False),
        Column("lang", Text, nullable=False),
        Column("person_unit", Text, nullable=True),
        Column("step", Integer, nullable=False),
        Column("status", Text, nullable=False),
        Column("reason", Text, nullable=True),
        Column("created_at", UtcDateTime, nullable=False),
        Column("email_id", Integer, ForeignKey("alert_emails.id"), nullable=True),
        UniqueConstraint("event_id", "email", name="alert_deliveries_once_per_person"),
        Index("alert_deliveries_status", "status"),
        Index("alert_deliveries_email_id", "email_id"),
    )
    leases = Table(
        "alert_leases",
        v2,
        Column("name", Text, primary_key=True),
        Column("holder", Text, nullable=False),
        Column("acquired_at", UtcDateTime, nullable=False),
        Column("expires_at", UtcDateTime, nullable=False),
    )
    v2.create_all(connection, tables=[emails, deliveries, leases], checkfirst=True)


MIGRATIONS: Final[Sequence[Step]] = (_v1_states_and_log, _v2_delivery_outbox)
