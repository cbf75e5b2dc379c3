"""The named queries as one user may see them: every callback and export of the map page
goes through :class:`ScopedData`, never through :class:`~dashboard.data.DashboardData`
directly.

The shared cache holds each query's whole answer once (one store query per refresh beat
for every screen); the rows a user may not see are dropped here, after the cache and
before any view. A unit out of reach answers exactly like a unit without data, so a
crafted request learns nothing, not even whether there is data.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from core.types import UnitRef
from dashboard.access import Access
from dashboard.data import DashboardData
from dashboard.frames import series_frame, unit_values_frame


class ScopedData:
    """:class:`DashboardData` filtered by one user's :class:`Access`."""

    def __init__(self, data: DashboardData, access: Access) -> None:
        self.data = data
        self.access = access

    def _rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of a frame indexed by unit code that the user may see."""
        if self.access.everything:
            return frame
        keep = [self.access.can_see(str(code)) for code in frame.index]
        return frame[keep]

    def map_values(
        self, metric_id: str, level: str | None = None, parent: UnitRef | None = None
    ) -> pd.DataFrame:
        return self._rows(self.data.map_values(metric_id, level, parent))

    def map_values_at(
        self, metric_id: str, level: str, parent: UnitRef | None, at: datetime
    ) -> pd.DataFrame:
        return self._rows(self.data.map_values_at(metric_id, level, parent, at))

    def unit_latest(self, unit: UnitRef) -> pd.DataFrame:
        """Every catalogue metric of ``unit``; all "no data" for a unit out of reach."""
        if self.access.can_see(unit.code):
            return self.data.unit_latest(unit)
        frame = unit_values_frame([]).reindex(list(self.data.metrics))
        frame.index.name = "metric"
        frame["devices"] = 0
        return frame

    def trend(self, metric_id: str, unit: UnitRef) -> pd.DataFrame:
        self.data.metric(metric_id)  # an unknown metric fails the same for everyone
        if self.access.can_see(unit.code):
            return self.data.trend(metric_id, unit)
        return series_frame([])

    def devices(self, within: str | None = None) -> pd.DataFrame:
        """Registered devices in units the user may see (a device outside every unit: an
        admin's only)."""
        frame = self.data.devices(within)
        if self.access.everything or frame.empty:
            return frame
        keep = [isinstance(code, str) and self.access.can_see(code) for code in frame["unit_code"]]
        return frame[keep]

    def pipeline(self) -> pd.DataFrame:
        """The ingest workers' health: admins and operators."""
        if self.access.sees_pipeline:
            return self.data.pipeline()
        return self.data.pipeline().iloc[0:0]
