"""The duty roster: who is on duty for a unit at a given moment, and the duty chain an
unacknowledged alert climbs (the unit's officers → the units above → the duty desk).

Pure logic: the roster is read once from the settings (``alerts.roster`` and the CSV of
``alerts.roster_file``), then asked with an injected time. Shifts are judged in the site's
time zone (``site.timezone``): a shift starts at ``start`` local time on each of its
``days`` and ends at ``end`` (the next day when ``end`` is at or before ``start``;
``start == end`` is 24 hours); the start is inside the shift, the end is not.

Design: docs/design/014-alert-delivery.md.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo

from alerts.facts import DutyStep, Person
from core.errors import ConfigError
from core.settings import Settings
from core.settings_alerts import RosterEntry, check_email, parse_clock, parse_days
from core.settings_base import Label

DESK_NAME: Final = "Trực ban"
DESK_LABEL: Final = Label(vi="Trực ban", en="Duty desk")
CSV_KEY: Final = "alerts.roster_file"
REQUIRED_COLUMNS: Final = ("unit", "name", "email", "days", "start", "end")
COLUMNS: Final = ("unit", "name", "email", "lang", "days", "start", "end")


class Roster:
    """The officers of every unit with their shifts, in the site's time zone."""

    def __init__(self, entries: Iterable[RosterEntry], zone: tzinfo) -> None:
        self._entries = list(entries)
        self._zone = zone
        self._by_unit: dict[str, list[RosterEntry]] = {}
        for entry in self._entries:
            self._by_unit.setdefault(entry.unit, []).append(entry)

    @classmethod
    def from_settings(cls, settings: Settings, *, known_unit: Callable[[str], bool]) -> Roster:
        """``alerts.roster`` plus the rows of ``alerts.roster_file``. Raises ConfigError
        naming the entry (``alerts.roster.2.unit``) or the file's line and column."""
        alerts = settings.alerts
        for index, entry in enumerate(alerts.roster):
            if not known_unit(entry.unit):
                raise ConfigError(
                    f"alerts.roster.{index}.unit", entry.unit, _unknown_unit_text(entry.unit)
                )
        entries = list(alerts.roster)
        if alerts.roster_file is not None:
            entries.extend(read_roster_csv(settings.path(alerts.roster_file), known_unit))
        return cls(entries, ZoneInfo(settings.site.timezone))

    def entries(self) -> list[RosterEntry]:
        """Every entry, the config's first, then the file's (for the CLI and the console)."""
        return list(self._entries)

    def people_for(self, unit_code: str) -> list[RosterEntry]:
        """The entries of exactly this unit, by name, then first day and start time."""
        return sorted(
            self._by_unit.get(unit_code, []),
            key=lambda entry: (entry.name, entry.days, entry.start, entry.email),
        )

    def on_duty(self, unit_code: str, at: datetime) -> tuple[Person, ...]:
        """The officers of exactly this unit whose shift covers ``at``: by name, each
        e-mail address once."""
        moment = _utc(at)
        found: dict[str, Person] = {}
        for entry in sorted(self._by_unit.get(unit_code, []), key=lambda e: (e.name, e.email)):
            address = entry.email.lower()
            if address not in found and self._covers(entry, moment):
                found[address] = Person(
                    email=entry.email, name=entry.name, lang=entry.lang, unit_code=entry.unit
                )
        return tuple(found.values())

    def chain(
        self,
        unit_code: str,
        parents: Sequence[str],
        at: datetime,
        *,
        desk: Sequence[str],
        unit_name: Callable[[str], Label],
    ) -> list[DutyStep]:
        """The duty chain of a unit at ``at``. ``parents``: the codes above it, nearest
        first. Step 0 is the unit's own officers on duty (or, when none, the nearest unit
        above with someone on duty), then each further unit above with someone on duty,
        then the duty desk (``desk``, unless empty). Someone already in a step is left out
        of the later ones; an empty step is dropped. [] when nobody at all is to be told."""
        steps: list[tuple[str | None, Label, tuple[Person, ...]]] = []
        for code in (unit_code, *parents):
            people = self.on_duty(code, at)
            if people:
                steps.append((code, unit_name(code), people))
        if desk:
            desk_people = tuple(Person(email=address, name=DESK_NAME) for address in desk)
            steps.append((None, DESK_LABEL, desk_people))
        told: set[str] = set()
        chain: list[DutyStep] = []
        for step_unit, label, people in steps:
            fresh: list[Person] = []
            for person in people:
                address = person.email.lower()
                if address not in told:
                    told.add(address)
                    fresh.append(person)
            if fresh:
                chain.append(
                    DutyStep(
                        step=len(chain), unit_code=step_unit, unit_name=label, people=tuple(fresh)
                    )
                )
        return chain

    def _covers(self, entry: RosterEntry, moment: datetime) -> bool:
        local_day = moment.astimezone(self._zone).date()
        # A shift lasts at most 24 h, so only one that began today or yesterday can cover now.
        for first_day in (local_day - timedelta(days=1), local_day):
            if first_day.weekday() not in entry.days:
                continue
            begins, ends = self._shift(first_day, entry.start, entry.end)
            if begins <= moment < ends:
                return True
        return False

    def _shift(self, first_day: date, start: time, end: time) -> tuple[datetime, datetime]:
        """The shift that starts on ``first_day``, in UTC (compared in UTC: two datetimes
        of one zone compare by their wall clocks, which is wrong across a DST change)."""
        last_day = first_day if end > start else first_day + timedelta(days=1)
        begins = datetime.combine(first_day, start, tzinfo=self._zone).astimezone(UTC)
        ends = datetime.combine(last_day, end, tzinfo=self._zone).astimezone(UTC)
        return begins, ends


def read_roster_csv(path: Path, known_unit: Callable[[str], bool]) -> list[RosterEntry]:
    """The rows of a roster CSV (UTF-8, with or without BOM; header
    unit,name,email,lang,days,start,end, ``lang`` optional; days "mon-fri" or "sat;sun").
    Raises ConfigError naming the line and column of the first problem."""
    if not path.is_file():
        raise ConfigError(CSV_KEY, str(path), "must name an existing CSV file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(CSV_KEY, str(path), f"must be UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise ConfigError(CSV_KEY, str(path), f"cannot be read ({exc.strerror})") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [column.strip().lower() for column in next(reader)]
    except StopIteration:
        raise ConfigError(
            CSV_KEY, str(path), f"must start with the header {','.join(COLUMNS)}"
        ) from None
    _check_header(header, path)
    entries: list[RosterEntry] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        line = reader.line_num
        if len(row) != len(header):
            raise ConfigError(
                CSV_KEY,
                ",".join(row),
                f"line {line} must have {len(header)} fields like the header ({path.name})",
            )
        cells = {column: cell.strip() for column, cell in zip(header, row, strict=True)}
        entries.append(_entry(cells, line, path, known_unit))
    return entries


def _check_header(header: list[str], path: Path) -> None:
    for column in header:
        if column not in COLUMNS:
            raise ConfigError(
                CSV_KEY,
                column,
                f"line 1, header must use only the columns {','.join(COLUMNS)} ({path.name})",
            )
        if header.count(column) > 1:
            raise ConfigError(
                CSV_KEY, column, f"line 1, header must name each column once ({path.name})"
            )
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise ConfigError(
            CSV_KEY,
            ",".join(header),
            f"line 1, header must have the columns {','.join(REQUIRED_COLUMNS)} "
            f"(missing {','.join(missing)}; lang is optional) ({path.name})",
        )


def _entry(
    cells: dict[str, str], line: int, path: Path, known_unit: Callable[[str], bool]
) -> RosterEntry:
    def problem(column: str, allowed: str) -> ConfigError:
        return ConfigError(
            CSV_KEY, cells.get(column, ""), f"line {line}, {column} {allowed} ({path.name})"
        )

    unit = cells["unit"]
    if not unit or not known_unit(unit):
        raise problem("unit", _unknown_unit_text(unit))
    name = cells["name"]
    if not name:
        raise problem("name", "must not be empty")
    email = cells["email"]
    try:
        check_email(email)
    except ValueError:
        raise problem("email", "must be an e-mail address") from None
    lang: Literal["vi", "en"]
    raw_lang = cells.get("lang", "").lower() or "vi"
    if raw_lang == "vi":
        lang = "vi"
    elif raw_lang == "en":
        lang = "en"
    else:
        raise problem("lang", "must be vi or en (empty: vi)")
    try:
        days = parse_days(cells["days"].replace(";", ","))
    except ValueError as exc:
        raise problem("days", f"must be days like mon-fri or sat;sun ({exc})") from None
    clocks: dict[str, time] = {}
    for column in ("start", "end"):
        try:
            clocks[column] = parse_clock(cells[column])
        except ValueError:
            raise problem(column, "must be a local time HH:MM from 00:00 to 23:59") from None
    return RosterEntry(
        unit=unit,
        name=name,
        email=email,
        lang=lang,
        days=days,
        start=clocks["start"],
        end=clocks["end"],
    )


def _unknown_unit_text(code: str) -> str:
    text = "must be the code of a unit of the hierarchy (hierarchy.units_file)"
    if code.isdigit() and len(code) < 5:
        # A spreadsheet reads "00004" as the number 4.
        text += "; a spreadsheet may have dropped its leading zeros"
    return text


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"the roster needs a timezone-aware time: {at!r}")
    return at.astimezone(UTC)
