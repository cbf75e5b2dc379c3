"""The tables of alert acknowledgements, silences, notes and the audit log, and their
migration steps (component ``"alert_actions"``, docs/design/011). Used by
:mod:`alerts.actions`.

    version 1  alert_acknowledgements, alert_silences, audit_log
    version 2  alert_notes (what was done about an episode, e.g. how it was resolved)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sqlalchemy import Column, Connection, Index, Integer, MetaData, Table, Text

from core.db import UtcDateTime
from core.migrate import Step

COMPONENT: Final = "alert_actions"

metadata = MetaData()

acknowledgements = Table(
    "alert_acknowledgements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Text, nullable=False),
    Column("unit_code", Text, nullable=False),
    Column("episode", Integer, nullable=False),
    Column("acked_by", Text, nullable=False),
    Column("acked_at", UtcDateTime, nullable=False),
    Column("comment", Text, nullable=False),
    Column("withdrawn_at", UtcDateTime, nullable=True),
    Column("withdrawn_by", Text, nullable=True),
)

silences = Table(
    "alert_silences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("cancelled_at", UtcDateTime, nullable=True),
    Column("cancelled_by", Text, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("detail", Text, nullable=False),  # JSON object
)

notes = Table(
    "alert_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Text, nullable=False),
    Column("unit_code", Text, nullable=False),
    Column("episode", Integer, nullable=False),
    Column("author", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("text", Text, nullable=False),
)


def _v1_acks_silences_audit(connection: Connection) -> None:
    # Spelled out, not the module's tables: those follow the newest version, and a
    # released step must never change (docs/design/011).
    v1 = MetaData()
    acks = Table(
        "alert_acknowledgements",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("rule_id", Text, nullable=False),
        Column("unit_code", Text, nullable=False),
        Column("episode", Integer, nullable=False),
        Column("acked_by", Text, nullable=False),
        Column("acked_at", UtcDateTime, nullable=False),
        Column("comment", Text, nullable=False),
        Column("withdrawn_at", UtcDateTime, nullable=True),
        Column("withdrawn_by", Text, nullable=True),
    )
    Index("alert_acknowledgements_key", acks.c.rule_id, acks.c.unit_code, acks.c.episode)
    muted = Table(
        "alert_silences",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("kind", Text, nullable=False),
        Column("target", Text, nullable=False),
        Column("reason", Text, nullable=False),
        Column("author", Text, nullable=False),
        Column("starts_at", UtcDateTime, nullable=False),
        Column("ends_at", UtcDateTime, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("cancelled_at", UtcDateTime, nullable=True),
        Column("cancelled_by", Text, nullable=True),
    )
    Index("alert_silences_ends_at", muted.c.ends_at)
    audit = Table(
        "audit_log",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("at", UtcDateTime, nullable=False),
        Column("actor", Text, nullable=False),
        Column("action", Text, nullable=False),
        Column("target", Text, nullable=False),
        Column("detail", Text, nullable=False),
    )
    Index("audit_log_at", audit.c.at)
    v1.create_all(connection)


def _v2_notes(connection: Connection) -> None:
    v2 = MetaData()  # spelled out too, for the same reason
    episode_notes = Table(
        "alert_notes",
        v2,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("rule_id", Text, nullable=False),
        Column("unit_code", Text, nullable=False),
        Column("episode", Integer, nullable=False),
        Column("author", Text, nullable=False),
        Column("at", UtcDateTime, nullable=False),
        Column("text", Text, nullable=False),
    )
    Index(
        "alert_notes_key",
        episode_notes.c.rule_id,
        episode_notes.c.unit_code,
        episode_notes.c.episode,
    )
    v2.create_all(connection)


MIGRATIONS: Final[Sequence[Step]] = (_v1_acks_silences_audit, _v2_notes)
