"""Shared setup of the devices page tests: a fake Store that answers ``latest_by_unit`` as
the adapters do (each device's last value in the window, grouped by a tag, filtered by a
parent tag) and counts its queries, devices of Đà Nẵng (48) and Hà Nội (01), and crafted
users' access."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from core.settings import DevicesSettings
from core.types import Aggregation, MetricRef, Point, SeriesPoint, UnitRef, UnitValue
from dashboard.access import Access
from layers.levels import Hierarchy
from layers.registry import Device

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội time
DA_NANG, HAI_VAN, CAM_LE = "48", "20194", "20260"
HA_NOI = "01"
INTERVALS = DevicesSettings(expected_interval_s={"air": 60, "water": 300}, default_interval_s=60)


class FakeStore:
    """``latest_by_unit`` over written points, like core/store: per (device, level tag)
    the last value in [since, until), grouped by the level tag; ``last`` keeps the newest."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self.queries: list[tuple[MetricRef, str, UnitRef | None]] = []
        self.fail: Exception | None = None

    def write(self, points: Sequence[Point]) -> None:
        self.points.extend(points)

    def latest_by_unit(
        self,
        metric: MetricRef,
        level: str,
        *,
        since: datetime,
        parent: UnitRef | None = None,
        aggregation: Aggregation = "mean",
        until: datetime | None = None,
    ) -> list[UnitValue]:
        self.queries.append((metric, level, parent))
        if self.fail is not None:
            raise self.fail
        last: dict[tuple[str, str], tuple[datetime, float]] = {}
        for point in self.points:
            if point.measurement != metric.measurement or metric.field not in point.fields:
                continue
            if point.ts < since or (until is not None and point.ts >= until):
                continue
            if parent is not None and point.tags.get(parent.level) != parent.code:
                continue
            key = (point.tags.get("device", ""), point.tags.get(level, ""))
            if key not in last or point.ts > last[key][0]:
                last[key] = (point.ts, point.fields[metric.field])
        units: dict[str, list[tuple[datetime, float]]] = {}
        for (_device, code), reading in last.items():
            units.setdefault(code, []).append(reading)
        return [
            UnitValue(code, max(found)[1], max(found)[0], len(found))
            for code, found in sorted(units.items())
        ]

    def window_by_unit(
        self,
        metric: MetricRef,
        level: str,
        *,
        start: datetime,
        end: datetime,
        aggregation: Aggregation,
        parent: UnitRef | None = None,
    ) -> list[UnitValue]:
        """Every reading in [start, end) per level tag, as core/store does."""
        self.queries.append((metric, level, parent))
        if self.fail is not None:
            raise self.fail
        units: dict[str, list[tuple[datetime, str, float]]] = {}
        for point in self.points:
            if point.measurement != metric.measurement or metric.field not in point.fields:
                continue
            if not start <= point.ts < end or not point.tags.get(level):
                continue
            if parent is not None and point.tags.get(parent.level) != parent.code:
                continue
            device = point.tags.get("device", "")
            units.setdefault(point.tags[level], []).append(
                (point.ts, device, point.fields[metric.field])
            )
        answer = []
        for code, found in sorted(units.items()):
            numbers = [value for _, _, value in found]
            combined = {
                "mean": sum(numbers) / len(numbers),
                "sum": sum(numbers),
                "max": max(numbers),
                "min": min(numbers),
                "last": max(found)[2],
            }[aggregation]
            devices = len({device for _, device, _ in found})
            answer.append(UnitValue(code, combined, max(found)[0], devices))
        return answer

    def series(
        self,
        metric: MetricRef,
        unit: UnitRef,
        *,
        start: datetime,
        end: datetime,
        every: timedelta,
        aggregation: Aggregation = "mean",
    ) -> list[SeriesPoint]:
        return []

    def close(self) -> None:
        pass


def device(device_id: str, kind: str, unit: str | None, hierarchy: Hierarchy) -> Device:
    tags = hierarchy.level_tags(unit) if unit is not None else {}
    return Device(device_id, kind, f"Trạm {device_id}", 108.2, 16.0, unit, tags)


def reading(
    device_id: str,
    kind: str,
    tags: dict[str, str],
    seconds_ago: float,
    **fields: float,
) -> Point:
    return Point(kind, {"device": device_id, **tags}, fields, NOW - timedelta(seconds=seconds_ago))


def officer(hierarchy: Hierarchy, *units: str, role: str = "operator") -> Access:
    return Access(hierarchy, units, role=role, username="can-bo")


def admin(hierarchy: Hierarchy) -> Access:
    return Access(hierarchy, (), everything=True, role="admin", username="quan-tri")


def ha_noi_commune(hierarchy: Hierarchy) -> str:
    return hierarchy.units_at("commune", HA_NOI)[0].code
