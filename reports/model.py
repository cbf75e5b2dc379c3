"""What a weekly review shows, as plain data: built once (reports/weekly.py), then drawn by
the page, written to XLSX and PDF and mailed — so all of them show exactly the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from core.settings_base import Label

Status = Literal["good", "warning", "bad", "none"]  # against the target; none: no target/data
Better = Literal["lower", "higher"]


@dataclass(frozen=True, slots=True)
class IsoWeek:
    """An ISO week: Monday 00:00 to Sunday 24:00 in the site's time zone."""

    year: int
    week: int

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)


@dataclass(frozen=True, slots=True)
class SparkPoint:
    week: IsoWeek
    value: float | None  # None: no data that week


@dataclass(frozen=True, slots=True)
class KpiRow:
    """One KPI of the unit: this week against last week and the target."""

    metric_id: str
    label: Label
    unit: str  # "%", "µg/m³"
    decimals: int
    better: Better
    this_week: float | None
    last_week: float | None
    change: float | None  # this_week - last_week (percentage points for a ratio shown in %)
    target: float | None
    status: Status
    spark: tuple[SparkPoint, ...]  # the 12 weeks ending with this one, oldest first
    is_ratio: bool = False  # value is a ratio 0..1, shown × 100 with unit "%"
    source: str | None = None  # the legal source of the target or bands


@dataclass(frozen=True, slots=True)
class LeagueRow:
    """A child unit ranked on the headline KPI; movement = last_rank - rank (up is +)."""

    code: str
    name: Label
    value: float | None
    rank: int | None
    last_rank: int | None
    movement: int | None


@dataclass(frozen=True, slots=True)
class LongestAlert:
    title: Label
    unit_name: Label
    started: datetime
    minutes: float


@dataclass(frozen=True, slots=True)
class AlertsSummary:
    """The alerts of the unit and the units inside it that were firing during the week."""

    by_severity: dict[str, int]  # "critical"/"warning"/"info" → episodes
    total: int
    unacknowledged: int
    longest: LongestAlert | None


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    unit_code: str
    unit_name: Label  # full name with parents
    week: IsoWeek
    starts: datetime  # Monday 00:00 local, tz-aware
    ends: datetime  # next Monday 00:00 local (exclusive)
    generated_at: datetime
    kpis: tuple[KpiRow, ...]
    league_metric: str | None  # the KPI the league table ranks on
    league: tuple[LeagueRow, ...]
    alerts: AlertsSummary
    site_name: Label
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. "no data for PM10 this week"
