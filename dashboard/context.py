"""What every callback of the map page works with, built once by ``create_app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from core.ports import Clock, DeadLetterStore
from core.settings import MetricSettings, Settings
from dashboard.data import DashboardData
from dashboard.exports import Exports
from dashboard.i18n import as_lang
from dashboard.mapview import MapViews
from layers.levels import Hierarchy


@dataclass(frozen=True, slots=True)
class DashboardContext:
    """What the callbacks need, built once by ``create_app``."""

    settings: Settings
    data: DashboardData
    hierarchy: Hierarchy
    views: MapViews  # the drill-down: what the map draws for each place
    clock: Clock
    tz: ZoneInfo
    dead_letters: DeadLetterStore | None = None
    url_prefix: str = "/"  # the app's requests_pathname_prefix, for links
    state_engine: Engine | None = None  # the SQL state database (users, alert state ...)
    exports: Exports = field(default_factory=Exports)  # CSV downloads (dashboard/exports.py)

    @property
    def metrics(self) -> Mapping[str, MetricSettings]:
        return self.settings.metrics

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.settings.dashboard.stale_after_s)

    def metric_id(self, value: object) -> str:
        """A known metric id, or the default one for anything else."""
        if isinstance(value, str) and value in self.metrics:
            return value
        return self.settings.dashboard.default_metric

    def lang(self, value: object) -> str:
        return as_lang(value, default=self.settings.site.language)
