"""The ``alerts`` section: rules (core/settings_rules.py), who is told (duty roster and the
duty desk), escalation, grouping, SMTP retry and the evaluator lock.

Design: docs/design/014-alert-delivery.md.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from core.settings_base import _Section
from core.settings_rules import AlertRule

EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def check_email(address: str) -> str:
    if not EMAIL.fullmatch(address):
        raise ValueError(f"must be an e-mail address: {address!r}")
    return address


def parse_days(value: Any) -> tuple[int, ...]:
    """ "mon-fri", "sat,sun", ["mon", "wed"] or "mon-sun" → weekday numbers (Monday 0).

    A range may wrap ("fri-mon"). Raises ValueError naming what is wrong."""
    parts: list[str]
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        parts = [str(part).strip() for part in value]
    else:
        raise ValueError(f"must be days like 'mon-fri' or [sat, sun]: {value!r}")
    days: list[int] = []
    for part in parts:
        first, _, last = part.lower().partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"must use the days {', '.join(WEEKDAYS)}: {part!r}")
        start = WEEKDAYS.index(first)
        end = WEEKDAYS.index(last) if last else start
        span = (end - start) % 7
        days.extend((start + step) % 7 for step in range(span + 1))
    if not days:
        raise ValueError("must name at least one day")
    return tuple(sorted(set(days)))


def parse_clock(value: Any) -> time:
    """ "07:00" → time(7, 0); "24:00" is not a time (use "00:00")."""
    if isinstance(value, time):
        return value
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", str(value).strip())
    if not match:
        raise ValueError(f"must be a local time HH:MM from 00:00 to 23:59: {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


class RosterEntry(_Section):
    """One officer on duty for one unit (and, when nobody closer is, the units inside it).

    The shift starts at ``start`` local time on each of ``days`` and ends at ``end``; an
    ``end`` at or before ``start`` ends the next day (a night shift "19:00"-"07:00" named
    on Monday covers Monday 19:00 to Tuesday 07:00). ``start == end``: 24 hours."""

    unit: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    email: str
    lang: Literal["vi", "en"] = "vi"
    days: tuple[int, ...] = tuple(range(7))
    start: time = time(0, 0)
    end: time = time(0, 0)

    _email = field_validator("email")(classmethod(lambda cls, value: check_email(value)))

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> tuple[int, ...]:
        if isinstance(value, tuple) and all(isinstance(day, int) for day in value):
            return value
        return parse_days(value)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> time:
        return parse_clock(value)


class EscalationSettings(_Section):
    """A firing alert nobody acknowledges climbs the chain and is repeated."""

    # Not acknowledged this long after it fired → the on-duty officers of the next unit up
    # (commune → province → the duty desk), then again after the same time, and so on.
    after_min: Annotated[float, Field(gt=0, le=10080)] = 15.0
    # Reminder to everyone already told, this often, until acknowledged or resolved; 0 = off.
    remind_every_min: Annotated[float, Field(ge=0, le=10080)] = 30.0


class SmtpRetrySettings(_Section):
    """An e-mail the SMTP server did not take is tried again, waiting longer each time,
    until it is delivered (a refused address or a 5xx reply fails it for good)."""

    first_delay_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    factor: Annotated[float, Field(ge=1, le=10)] = 2.0
    max_delay_s: Annotated[float, Field(ge=0, le=86400)] = 300.0


class AlertsSettings(_Section):
    interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    # The duty desk: told when no roster entry covers a unit or any unit above it, and the
    # last step of every escalation chain.
    recipients: list[str] = []
    roster: list[RosterEntry] = []
    # CSV with the columns unit,name,email,lang,days,start,end (days "mon-fri" or
    # "sat;sun"); its rows are added to ``roster``. Relative to the config file.
    roster_file: str | None = None
    escalation: EscalationSettings = EscalationSettings()
    # Grouping, per recipient: a new alert waits group_wait_s for others to join it; a
    # person e-mailed less than group_interval_s ago gets the next e-mail when that time
    # is up, with everything that came meanwhile. A storm becomes a few e-mails, not 500.
    group_wait_s: Annotated[float, Field(ge=0, le=600)] = 0.0
    group_interval_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    max_alerts_per_email: Annotated[int, Field(ge=1, le=1000)] = 50
    retry: SmtpRetrySettings = SmtpRetrySettings()
    ack_link_hours: Annotated[float, Field(gt=0, le=720)] = 24.0  # the e-mail's acknowledge link
    chart_hours: Annotated[float, Field(ge=0, le=168)] = 6.0  # the e-mail's trend chart; 0 = none
    # One evaluator sends at a time: it holds a lease in the state database, renewed every
    # round; another takes over when the lease has not been renewed for lease_s.
    lease_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    rules: list[AlertRule] = []
    # GET /metrics (Prometheus) and GET /health of the engine; null = no port opened.
    metrics_host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = 9465

    @field_validator("recipients")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            check_email(address)
        return value

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, value: list[AlertRule]) -> list[AlertRule]:
        ids = [rule.id for rule in value]
        if len(set(ids)) != len(ids):
            raise ValueError(f"must have unique rule ids ({ids})")
        return value

    @model_validator(mode="after")
    def _lease_outlives_round(self) -> AlertsSettings:
        if self.lease_s <= self.interval_s:
            raise ValueError(
                f"lease_s ({self.lease_s:g}) must be longer than interval_s "
                f"({self.interval_s:g}), or the evaluator loses its lock between rounds"
            )
        return self
