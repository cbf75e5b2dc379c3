"""The history of alerts on the console: one row per firing episode of a (rule, unit),
within one user's access, with filters; and the notes written about episodes. No Dash.

Built from what the state database holds: the notification log has a "firing" event when
an episode opens and a "resolved" one when it closes (each written in the same transaction
as the state, so they are the episode's times), and alert_states has the open episode of
each (rule, unit) with its ``fired_at``, which covers an episode whose event is missing.
The e-mail column is the firing event's e-mails (alert_deliveries → alert_emails: sent,
pending, failed, or none), see :meth:`EpisodeDelivery.email_status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final

import pandas as pd
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.exc import SQLAlchemyError

from alerts.actions import AckKey, InvalidAction, Note
from alerts.repository import alert_states, notification_log
from core.errors import RetryableError
from dashboard.access import Access
from dashboard.alerts_data import (
    SEVERITIES,
    AlertSource,
    check_alert,
    codes_within,
    not_yours,
    optional,
    times,
)
from dashboard.alerts_delivery import (
    EpisodeDelivery,
    alert_unit,
    deliveries,
    device_map,
    notes_text,
    place_name,
    sees_alert,
)

HISTORY_LIMIT: Final = 1000  # the newest episodes first; the CSV has the same rows
HISTORY_STATES: Final = ("open", "resolved")

HISTORY_COLUMNS: Final = [
    "rule_id",
    "title",
    "severity",
    "unit_code",
    "level",
    "unit_name",
    "episode",
    "status",
    "fired_at",
    "resolved_at",
    "duration_s",
    "acked_by",
    "ack_comment",
    "email_status",  # sent | pending | failed | none (and silenced, suppressed, dropped)
    "notes",
    "note_rows",  # the Note objects, for the page (the CSV has "notes")
]


def _date(value: str | None, vi: str, en: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise InvalidAction(
            f"{vi} phải là ngày dạng YYYY-MM-DD: {value!r}",
            f"{en} must be a date as YYYY-MM-DD: {value!r}",
        ) from None


def _blank(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What the history shows: a unit with everything inside it, a severity, a rule, open
    or resolved episodes, and local days (both included) the episode overlaps."""

    unit: str | None = None
    severity: str | None = None
    rule: str | None = None
    state: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def __post_init__(self) -> None:
        if self.severity is not None and self.severity not in SEVERITIES:
            raise InvalidAction(
                f"mức độ phải là {', '.join(SEVERITIES)}: {self.severity!r}",
                f"the severity must be one of {', '.join(SEVERITIES)}: {self.severity!r}",
            )
        if self.state is not None and self.state not in HISTORY_STATES:
            raise InvalidAction(
                f"trạng thái phải là open hoặc resolved: {self.state!r}",
                f"the state must be open or resolved: {self.state!r}",
            )
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InvalidAction(
                "ngày bắt đầu phải trước ngày kết thúc", "the first day must not be after the last"
            )

    @classmethod
    def from_args(cls, args: Mapping[str, str | None]) -> HistoryFilter:
        """From the page's inputs or a CSV link (``unit severity rule state from to``);
        InvalidAction (a ValueError) naming a bad value."""
        return cls(
            unit=_blank(args.get("unit")),
            severity=_blank(args.get("severity")),
            rule=_blank(args.get("rule")),
            state=_blank(args.get("state")),
            date_from=_date(args.get("from"), "ngày bắt đầu", "the first day"),
            date_to=_date(args.get("to"), "ngày kết thúc", "the last day"),
        )

    def args(self) -> dict[str, str]:
        """The query arguments of :meth:`from_args` (for the CSV link)."""
        values = {
            "unit": self.unit,
            "severity": self.severity,
            "rule": self.rule,
            "state": self.state,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
        }
        return {key: value for key, value in values.items() if value}


def _rule_ids(source: AlertSource, filters: HistoryFilter) -> list[str] | None:
    """The rules the filters allow (None: any, including rules configured no more)."""
    if filters.severity is None:
        return None if filters.rule is None else [filters.rule]
    chosen = [rule.id for rule in source.rules.values() if rule.severity == filters.severity]
    return [rule for rule in chosen if filters.rule in (None, rule)]


def _episodes(
    source: AlertSource,
    codes: set[str] | None,
    rules: list[str] | None,
    filters: HistoryFilter,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    fired = notification_log.alias("fired")
    resolved = notification_log.alias("resolved")
    query = (
        select(
            fired.c.rule_id,
            fired.c.unit_code,
            fired.c.episode,
            fired.c.created_at.label("fired_at"),
            resolved.c.created_at.label("resolved_at"),
        )
        .select_from(fired)
        .outerjoin(
            resolved,
            and_(
                resolved.c.rule_id == fired.c.rule_id,
                resolved.c.unit_code == fired.c.unit_code,
                resolved.c.episode == fired.c.episode,
                resolved.c.kind == "resolved",
            ),
        )
        .where(fired.c.kind == "firing")
        .order_by(fired.c.created_at.desc(), fired.c.id.desc())
        .limit(limit)
    )
    conditions: list[ColumnElement[bool]] = []
    if codes is not None:
        conditions.append(fired.c.unit_code.in_(sorted(codes)))
    if rules is not None:
        conditions.append(fired.c.rule_id.in_(rules))
    if end is not None:
        conditions.append(fired.c.created_at < end)
    if start is not None:
        conditions.append(or_(resolved.c.id.is_(None), resolved.c.created_at >= start))
    if filters.state == "open":
        conditions.append(resolved.c.id.is_(None))
    elif filters.state == "resolved":
        conditions.append(resolved.c.id.is_not(None))
    open_states = select(
        alert_states.c.rule_id,
        alert_states.c.unit_code,
        alert_states.c.episode,
        alert_states.c.fired_at,
    ).where(alert_states.c.fired_at.is_not(None))
    try:
        with source.engine.connect() as connection:
            logged = [dict(row) for row in connection.execute(query.where(*conditions)).mappings()]
            current = connection.execute(open_states).mappings().all()
    except SQLAlchemyError as exc:
        raise RetryableError(f"the alert history could not be read: {exc}") from exc
    configured = source.rules
    open_now = {
        (row["rule_id"], row["unit_code"], row["episode"])
        for row in current
        if row["rule_id"] in configured
    }
    seen = {(row["rule_id"], row["unit_code"], row["episode"]) for row in logged}
    for row in current:  # open episodes the log does not have
        key = (row["rule_id"], row["unit_code"], row["episode"])
        if (
            key in open_now
            and key not in seen
            and filters.state != "resolved"
            and (codes is None or row["unit_code"] in codes)
            and (rules is None or row["rule_id"] in rules)
            and (end is None or row["fired_at"] < end)
        ):
            logged.append({**row, "resolved_at": None})
    for episode in logged:
        key = (episode["rule_id"], episode["unit_code"], episode["episode"])
        if episode["resolved_at"] is not None:
            episode["status"] = "resolved"
        else:
            # Not resolved and not open: its rule was taken out of the configuration (or
            # its state deleted): it ended at a time nobody recorded.
            episode["status"] = "open" if key in open_now else "ended"
    kept = [
        episode
        for episode in logged
        if filters.state in (None, episode["status"])
        # With no known end, an ended episode belongs to the days from its start only.
        and not (episode["status"] == "ended" and start is not None and episode["fired_at"] < start)
    ]
    kept.sort(key=lambda episode: episode["fired_at"], reverse=True)
    return kept[:limit]


def alert_history(
    source: AlertSource,
    access: Access,
    filters: HistoryFilter | None = None,
    lang: str = "vi",
    limit: int = HISTORY_LIMIT,
) -> pd.DataFrame:
    """Firing episodes of the user's units matching ``filters``, newest first, at most
    ``limit`` (a unit out of reach, like a unit without alerts, gives no rows)."""
    filters = filters or HistoryFilter()
    codes = codes_within(source, access, filters.unit)
    rules = _rule_ids(source, filters)
    if codes == set() or rules == []:
        return pd.DataFrame([], columns=HISTORY_COLUMNS)
    devices = device_map(source)
    if codes is not None:  # the devices in those units: their alerts are the units' too
        codes |= {code for code, device in devices.items() if device.unit_code in codes}
    tz = source.tz
    start = (
        datetime.combine(filters.date_from, time(0), tz) if filters.date_from is not None else None
    )
    end = (
        datetime.combine(filters.date_to + timedelta(days=1), time(0), tz)
        if filters.date_to is not None
        else None
    )
    episodes = [
        row
        for row in _episodes(source, codes, rules, filters, start, end, limit)
        if sees_alert(access, alert_unit(source, row["rule_id"], row["unit_code"], devices))
    ]
    keys = [AckKey(row["rule_id"], row["unit_code"], row["episode"]) for row in episodes]
    acks = source.actions.acks(keys)
    outbox = optional("the e-mails of the history", lambda: deliveries(source, keys))
    notes = optional("the notes of the history", lambda: source.actions.notes(keys))
    known = source.rules
    now = source.clock.now()
    records = []
    for row in episodes:
        rule = known.get(row["rule_id"])
        unit = source.hierarchy.get(row["unit_code"])
        key = AckKey(row["rule_id"], row["unit_code"], row["episode"])
        ack = acks.get(key)
        ended = row["resolved_at"]
        sent = outbox.get(key, EpisodeDelivery()) if outbox is not None else None
        written = tuple(notes.get(key, ())) if notes is not None else None
        records.append(
            {
                "rule_id": row["rule_id"],
                "title": source.title(row["rule_id"], lang),
                "severity": rule.severity if rule else None,
                "unit_code": row["unit_code"],
                "level": unit.level if unit else None,
                "unit_name": place_name(source, row["rule_id"], row["unit_code"], lang, devices),
                "episode": row["episode"],
                "status": row["status"],
                "fired_at": row["fired_at"],
                "resolved_at": ended,
                "duration_s": (
                    ((ended or now) - row["fired_at"]).total_seconds()
                    if row["status"] != "ended"
                    else None
                ),
                "acked_by": ack.acked_by if ack else None,
                "ack_comment": ack.comment if ack else None,
                "email_status": sent.email_status() if sent is not None else None,
                "notes": notes_text(written, tz) if written is not None else None,
                "note_rows": written,
            }
        )
    return times(pd.DataFrame(records, columns=HISTORY_COLUMNS), "fired_at", "resolved_at")


def _episode_exists(source: AlertSource, rule_id: str, unit_code: str, episode: int) -> bool:
    """An episode that fired: open now (alert_states) or in the history (its firing event)."""
    states, log_c = alert_states.c, notification_log.c
    open_now = select(states.episode).where(
        states.rule_id == rule_id,
        states.unit_code == unit_code,
        states.episode == episode,
        states.fired_at.is_not(None),
    )
    logged = select(log_c.id).where(
        log_c.rule_id == rule_id,
        log_c.unit_code == unit_code,
        log_c.episode == episode,
        log_c.kind == "firing",
    )
    try:
        with source.engine.connect() as connection:
            return (
                connection.execute(open_now.limit(1)).first() is not None
                or connection.execute(logged.limit(1)).first() is not None
            )
    except SQLAlchemyError as exc:
        raise RetryableError(f"the alert could not be read: {exc}") from exc


def add_note(
    source: AlertSource, access: Access, rule_id: str, unit_code: str, episode: int, text: str
) -> Note:
    """Write down, as the signed-in user, what was done about an episode (open or over).
    Refused like acknowledging; an episode that never fired answers like another unit's."""
    check_alert(source, access, rule_id, unit_code)
    if not _episode_exists(source, rule_id, unit_code, episode):
        raise not_yours("cảnh báo", "alert")  # the very words of another unit's alert
    return source.actions.add_note(rule_id, unit_code, episode, access.username, text)
