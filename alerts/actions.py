"""What people do about alerts: acknowledgements, notes, silences, and the audit log.

No Dash here: the alerts console (dashboard/alerts_data.py) checks who may act on which
unit and then calls :class:`AlertActions`; the alert engine asks :meth:`silenced` before
an e-mail goes out. Tables in the SQL state database under the migration runner
(component ``"alert_actions"``, docs/design/011):

- ``alert_acknowledgements``: one row per acknowledgement of a firing episode of a
  (rule, unit); withdrawing it sets ``withdrawn_at``/``withdrawn_by`` and keeps the row, so
  the history stays. The current acknowledgement of an episode is its latest row not
  withdrawn.
- ``alert_notes``: what someone wrote about an episode (what was done, how it was
  resolved); added, never changed.
- ``alert_silences``: a unit (and everything inside it), a device or a rule, muted from
  ``starts_at`` until ``ends_at`` unless cancelled first (kept, with who cancelled).
- ``audit_log``: every acknowledge, withdrawal, note, silence and cancellation, written in
  the same transaction as the change itself: an action is recorded and audited, or neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Table,
    insert,
    select,
    tuple_,
    update,
)

from alerts.action_records import (
    MAX_SILENCE,
    SILENCE_FIELDS,
    SILENCE_KINDS,
    Ack,
    AckKey,
    ActionError,
    AuditEntry,
    InvalidAction,
    NoSuchSilence,
    Note,
    Silence,
    ack_key,
    aware,
    bounded,
    covering,
    required,
    silence_from_row,
)
from alerts.action_tables import (
    COMPONENT,
    MIGRATIONS,
    acknowledgements,
    audit_log,
    notes,
    silences,
)
from core.migrate import MigratedTables
from layers.levels import Hierarchy

__all__ = [
    "COMPONENT",
    "SILENCE_KINDS",
    "Ack",
    "AckKey",
    "ActionError",
    "AlertActions",
    "AuditEntry",
    "InvalidAction",
    "NoSuchSilence",
    "Note",
    "Silence",
    "covering",
]


class AlertActions(MigratedTables):
    """Acknowledgements, notes, silences and their audit in the SQL state database.

    Input errors raise :class:`InvalidAction` (a ValueError, in both languages); database
    errors become :class:`~core.errors.RetryableError` (the database is down or busy).
    Who may act on what is not checked here: that is the caller's access rule."""

    component = COMPONENT
    migrations = MIGRATIONS
    what = "alert action tables"

    def _audit(
        self,
        connection: Connection,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any],
    ) -> None:
        connection.execute(
            insert(audit_log),
            {
                "at": at,
                "actor": actor,
                "action": action,
                "target": target,
                "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True),
            },
        )

    # -- acknowledgements ----------------------------------------------------------

    def acknowledge(
        self, rule_id: str, unit_code: str, episode: int, actor: str, comment: str = ""
    ) -> Ack:
        """Record that ``actor`` has seen this episode and is on it. Acknowledging again
        adds a row (the latest one is current); nothing is overwritten."""
        key = ack_key(rule_id, unit_code, episode)
        actor = required(actor, "người thực hiện", "the actor")
        comment = bounded(comment, "ghi chú", "comment")
        now = self._clock.now()
        with self._transaction("record an acknowledgement") as connection:
            connection.execute(
                insert(acknowledgements),
                {**key._asdict(), "acked_by": actor, "acked_at": now, "comment": comment},
            )
            self._audit(
                connection,
                now,
                actor,
                "ack",
                f"{key.rule_id}/{key.unit_code}",
                {"episode": key.episode, "comment": comment},
            )
        return Ack(key, actor, now, comment)

    def unacknowledge(
        self, rule_id: str, unit_code: str, episode: int, actor: str, comment: str = ""
    ) -> bool:
        """Withdraw the episode's acknowledgements (kept, marked withdrawn). False, and
        nothing audited, when it had none."""
        key = ack_key(rule_id, unit_code, episode)
        actor = required(actor, "người thực hiện", "the actor")
        comment = bounded(comment, "ghi chú", "comment")
        now = self._clock.now()
        with self._transaction("withdraw an acknowledgement") as connection:
            result = connection.execute(
                update(acknowledgements)
                .where(
                    acknowledgements.c.rule_id == key.rule_id,
                    acknowledgements.c.unit_code == key.unit_code,
                    acknowledgements.c.episode == key.episode,
                    acknowledgements.c.withdrawn_at.is_(None),
                )
                .values(withdrawn_at=now, withdrawn_by=actor)
            )
            if result.rowcount == 0:
                return False
            self._audit(
                connection,
                now,
                actor,
                "unack",
                f"{key.rule_id}/{key.unit_code}",
                {"episode": key.episode, "comment": comment},
            )
        return True

    def acks(self, keys: Iterable[AckKey | tuple[str, str, int]]) -> dict[AckKey, Ack]:
        """The current acknowledgement of each episode that has one."""
        current = acknowledgements.c.withdrawn_at.is_(None)
        found: dict[AckKey, Ack] = {}
        for row in self._by_episode(acknowledgements, keys, "read acknowledgements", current):
            # Ascending id: the latest acknowledgement of an episode stays.
            key = AckKey(row["rule_id"], row["unit_code"], row["episode"])
            found[key] = Ack(key, row["acked_by"], row["acked_at"], row["comment"])
        return found

    def _by_episode(
        self,
        table: Table,
        keys: Iterable[AckKey | tuple[str, str, int]],
        doing: str,
        *conditions: ColumnElement[bool],
    ) -> list[RowMapping]:
        """The rows of ``table`` about these episodes (and ``conditions``), oldest first."""
        wanted = sorted({AckKey(*key) for key in keys})
        if not wanted:
            return []
        episode = tuple_(table.c.rule_id, table.c.unit_code, table.c.episode)
        found: list[RowMapping] = []
        with self._transaction(doing) as connection:
            # Chunks keep the statement's parameters well under SQLite's limit.
            for start in range(0, len(wanted), 500):
                query = select(table).where(episode.in_(wanted[start : start + 500]), *conditions)
                found.extend(connection.execute(query).mappings())
        return sorted(found, key=lambda row: int(row["id"]))

    # -- notes -----------------------------------------------------------------------

    def add_note(self, rule_id: str, unit_code: str, episode: int, actor: str, text: str) -> Note:
        """Write down what was done about an episode (open or over), e.g. how it was
        resolved. Notes are only ever added."""
        key = ack_key(rule_id, unit_code, episode)
        actor = required(actor, "người thực hiện", "the actor")
        text = bounded(required(text, "nội dung ghi chú", "the note's text"), "ghi chú", "note")
        now = self._clock.now()
        with self._transaction("record a note") as connection:
            note_id = connection.execute(
                insert(notes).returning(notes.c.id),
                {**key._asdict(), "author": actor, "at": now, "text": text},
            ).scalar_one()
            self._audit(
                connection,
                now,
                actor,
                "note",
                f"{key.rule_id}/{key.unit_code}",
                {"episode": key.episode, "note_id": note_id, "text": text},
            )
        return Note(int(note_id), key, actor, now, text)

    def notes(self, keys: Iterable[AckKey | tuple[str, str, int]]) -> dict[AckKey, list[Note]]:
        """The notes of each episode that has some, oldest first."""
        found: dict[AckKey, list[Note]] = {}
        for row in self._by_episode(notes, keys, "read notes"):
            key = AckKey(row["rule_id"], row["unit_code"], row["episode"])
            found.setdefault(key, []).append(
                Note(row["id"], key, row["author"], row["at"], row["text"])
            )
        return found

    # -- silences --------------------------------------------------------------------

    def silence(
        self,
        kind: str,
        target: str,
        until: datetime,
        reason: str,
        actor: str,
        *,
        starts_at: datetime | None = None,
    ) -> Silence:
        """Mute a unit (with what is inside it), a device or a rule until ``until``."""
        if kind not in SILENCE_KINDS:
            raise InvalidAction(
                f"loại tạm tắt phải là unit, device hoặc rule: {kind!r}",
                f"the silence kind must be unit, device or rule: {kind!r}",
            )
        target = required(target, "đối tượng tạm tắt", "the silence target")
        reason = bounded(required(reason, "lý do", "a reason"), "lý do", "reason")
        actor = required(actor, "người thực hiện", "the actor")
        now = self._clock.now()
        start = aware(starts_at, "giờ bắt đầu", "the start") if starts_at is not None else now
        end = aware(until, "giờ kết thúc", "the end")
        if end <= start or end <= now:
            raise InvalidAction(
                "giờ kết thúc phải sau giờ bắt đầu và sau hiện tại",
                "the end must be after the start and after now",
            )
        if end - start > MAX_SILENCE:
            days = MAX_SILENCE.days
            raise InvalidAction(
                f"chỉ được tạm tắt tối đa {days} ngày", f"a silence may last {days} days at most"
            )
        made = Silence(0, kind, target, reason, actor, start, end, created_at=now)
        values = {name: getattr(made, name) for name in SILENCE_FIELDS if name != "id"}
        with self._transaction("record a silence") as connection:
            silence_id = connection.execute(
                insert(silences).returning(silences.c.id), values
            ).scalar_one()
            self._audit(
                connection,
                now,
                actor,
                "silence",
                f"{kind}:{target}",
                {
                    "silence_id": silence_id,
                    "reason": reason,
                    "starts_at": start.isoformat(),
                    "ends_at": end.isoformat(),
                },
            )
        return replace(made, id=int(silence_id))

    def get_silence(self, silence_id: int) -> Silence | None:
        query = select(silences).where(silences.c.id == silence_id)
        with self._transaction("read a silence") as connection:
            row = connection.execute(query).mappings().one_or_none()
        return None if row is None else silence_from_row(row)

    def cancel_silence(self, silence_id: int, actor: str) -> Silence:
        """End a silence now. NoSuchSilence when there is none with this id, InvalidAction
        when it is already over or cancelled."""
        actor = required(actor, "người thực hiện", "the actor")
        now = self._clock.now()
        with self._transaction("cancel a silence") as connection:
            row = (
                connection.execute(
                    select(silences).where(silences.c.id == silence_id).with_for_update()
                )
                .mappings()
                .one_or_none()
            )
            if row is None:
                raise NoSuchSilence(
                    f"không có lệnh tạm tắt số {silence_id}", f"there is no silence {silence_id}"
                )
            found = silence_from_row(row)
            if found.cancelled_at is not None or found.ends_at <= now:
                raise InvalidAction(
                    f"lệnh tạm tắt số {silence_id} đã kết thúc", f"silence {silence_id} is over"
                )
            connection.execute(
                update(silences)
                .where(silences.c.id == silence_id)
                .values(cancelled_at=now, cancelled_by=actor)
            )
            self._audit(
                connection,
                now,
                actor,
                "cancel_silence",
                f"{found.kind}:{found.target}",
                {"silence_id": silence_id},
            )
        return replace(found, cancelled_at=now, cancelled_by=actor)

    def active_silences(self, now: datetime | None = None) -> list[Silence]:
        """Silences in force at ``now`` (default: the clock's now), ending soonest first."""
        at = now or self._clock.now()
        query = (
            select(silences)
            .where(
                silences.c.cancelled_at.is_(None),
                silences.c.starts_at <= at,
                silences.c.ends_at > at,
            )
            .order_by(silences.c.ends_at, silences.c.id)
        )
        with self._transaction("read the silences") as connection:
            return [silence_from_row(row) for row in connection.execute(query).mappings()]

    def recent_silences(self, limit: int = 100) -> list[Silence]:
        """Every silence, over or cancelled too, the latest made first."""
        query = select(silences).order_by(silences.c.id.desc()).limit(max(1, limit))
        with self._transaction("read the silences") as connection:
            return [silence_from_row(row) for row in connection.execute(query).mappings()]

    def silenced(
        self,
        rule_id: str,
        unit_code: str,
        device_id: str | None = None,
        hierarchy: Hierarchy | None = None,
        now: datetime | None = None,
    ) -> Silence | None:
        """The silence muting this alert now (the one ending last), or None."""
        return covering(self.active_silences(now), rule_id, unit_code, device_id, hierarchy)

    # -- audit -----------------------------------------------------------------------

    def audit(
        self,
        limit: int = 100,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        """The latest entries, newest first."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(max(1, limit))
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        with self._transaction("read the audit log") as connection:
            rows = connection.execute(query).mappings().all()
        return [
            AuditEntry(
                id=row["id"],
                at=row["at"],
                actor=row["actor"],
                action=row["action"],
                target=row["target"],
                detail=json.loads(row["detail"]),
            )
            for row in rows
        ]
