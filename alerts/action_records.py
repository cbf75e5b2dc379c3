"""The records of :mod:`alerts.actions` (acknowledgements, silences, notes, audit entries),
its errors in Vietnamese and English, and the input checks. Pure: no database here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final, NamedTuple

from layers.levels import Hierarchy

SILENCE_KINDS: Final = ("unit", "device", "rule")
MAX_TEXT: Final = 1000  # a comment or a reason; longer is a paste gone wrong
# A forgotten silence hides real alerts; a year typed as 2062 must not do that for decades.
MAX_SILENCE: Final = timedelta(days=90)
LOCAL_TIME_FORMAT: Final = "%d/%m/%Y %H:%M"  # how people read and type times: 30/11/2026 07:00
_DURATION: Final = re.compile(r"(\d+)\s*([mhd])")
_DURATION_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days"}


class ActionError(Exception):
    """An action refused, with the reason in Vietnamese and English (the page shows one)."""

    def __init__(self, vi: str, en: str) -> None:
        self.vi = vi
        self.en = en
        super().__init__(f"{vi} / {en}")

    def in_lang(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi


class InvalidAction(ActionError, ValueError):
    """Bad input: an empty reason, an end before the start, an unknown kind ..."""


class NoSuchSilence(ActionError, LookupError):
    """Cancelling a silence that does not exist (or is not the caller's to see)."""


class AckKey(NamedTuple):
    """One firing episode of one (rule, unit): what an acknowledgement is about."""

    rule_id: str
    unit_code: str
    episode: int


@dataclass(frozen=True, slots=True)
class Ack:
    key: AckKey
    acked_by: str
    acked_at: datetime
    comment: str


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    kind: str  # "unit" | "device" | "rule"
    target: str  # a unit code, a device id or a rule id
    reason: str
    author: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None

    def active(self, now: datetime) -> bool:
        return self.cancelled_at is None and self.starts_at <= now < self.ends_at

    def covers(
        self,
        rule_id: str,
        unit_code: str,
        device_id: str | None = None,
        hierarchy: Hierarchy | None = None,
    ) -> bool:
        """Whether this silence mutes the alert of ``rule_id`` on ``unit_code`` (or on
        ``device_id``). A unit silence covers the units inside it when ``hierarchy`` is
        given, else the unit itself only. Time is not looked at: see :meth:`active`."""
        if self.kind == "rule":
            return self.target == rule_id
        if self.kind == "device":
            return device_id is not None and self.target == device_id
        if self.target == unit_code:
            return True
        return (
            hierarchy is not None
            and hierarchy.get(unit_code) is not None
            and hierarchy.is_within(unit_code, self.target)
        )


@dataclass(frozen=True, slots=True)
class Note:
    """What someone wrote about an episode: what was done, how it was resolved."""

    id: int
    key: AckKey
    author: str
    at: datetime
    text: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str  # "ack" | "unack" | "note" | "silence" | "cancel_silence"
    target: str
    detail: dict[str, Any]


SILENCE_FIELDS: Final = (
    "id",
    "kind",
    "target",
    "reason",
    "author",
    "starts_at",
    "ends_at",
    "created_at",
    "cancelled_at",
    "cancelled_by",
)


def silence_from_row(row: Any) -> Silence:
    """A :class:`Silence` from a row mapping of ``alert_silences``."""
    return Silence(**{name: row[name] for name in SILENCE_FIELDS})


def covering(
    active: Iterable[Silence],
    rule_id: str,
    unit_code: str,
    device_id: str | None = None,
    hierarchy: Hierarchy | None = None,
) -> Silence | None:
    """The silence among ``active`` that mutes this alert and ends last, or None. Pure, so
    one query of the active silences serves a whole table of alerts."""
    found = [s for s in active if s.covers(rule_id, unit_code, device_id, hierarchy)]
    return max(found, key=lambda s: (s.ends_at, s.id)) if found else None


def required(value: str, vi: str, en: str) -> str:
    cleaned = value.strip() if isinstance(value, str) else ""
    if not cleaned:
        raise InvalidAction(f"cần {vi}", f"{en} is required")
    return cleaned


def bounded(value: str, vi: str, en: str) -> str:
    cleaned = value.strip() if isinstance(value, str) else ""
    if len(cleaned) > MAX_TEXT:
        raise InvalidAction(
            f"{vi} dài quá {MAX_TEXT} ký tự", f"the {en} is longer than {MAX_TEXT} characters"
        )
    return cleaned


def aware(value: datetime, vi: str, en: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidAction(
            f"{vi} phải có múi giờ: {value!r}", f"{en} needs a time zone: {value!r}"
        )
    return value


def ack_key(rule_id: str, unit_code: str, episode: int) -> AckKey:
    rule = required(rule_id, "mã quy tắc", "the rule id")
    unit = required(unit_code, "mã đơn vị", "the unit code")
    if isinstance(episode, bool) or not isinstance(episode, int) or episode < 1:
        raise InvalidAction(
            f"số đợt cảnh báo phải là số nguyên dương: {episode!r}",
            f"the episode must be a positive integer: {episode!r}",
        )
    return AckKey(rule, unit, episode)


def silence_duration(text: str) -> timedelta:
    """ "30m", "2h", "1d", "1h30m" → how long a silence lasts: more than 0, at most
    MAX_SILENCE. InvalidAction otherwise."""
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    if not cleaned or _DURATION.sub("", cleaned).strip():
        raise InvalidAction(
            f"thời lượng phải như 30m, 2h, 1d: {text!r}",
            f"a duration must look like 30m, 2h or 1d: {text!r}",
        )
    found = sum(
        (
            timedelta(**{_DURATION_UNITS[unit]: int(amount)})
            for amount, unit in _DURATION.findall(cleaned)
        ),
        timedelta(),
    )
    if not timedelta(0) < found <= MAX_SILENCE:
        days = MAX_SILENCE.days
        raise InvalidAction(
            f"thời lượng phải dài hơn 0 và tối đa {days} ngày: {text!r}",
            f"a duration must be longer than 0 and {days} days at most: {text!r}",
        )
    return found


def local_time(text: str, zone: tzinfo) -> datetime:
    """ "30/11/2026 07:00" (or "2026-11-30 07:00"), a wall-clock time in ``zone`` → the
    aware UTC moment. InvalidAction when it is not such a time."""
    for layout in (LOCAL_TIME_FORMAT, "%Y-%m-%d %H:%M"):
        try:
            wall = datetime.strptime(" ".join(str(text).split()), layout)
        except ValueError:
            continue
        return wall.replace(tzinfo=zone).astimezone(UTC)
    raise InvalidAction(
        f"giờ phải như 30/11/2026 07:00 (giờ địa phương): {text!r}",
        f"a time must look like 30/11/2026 07:00 (local time): {text!r}",
    )
