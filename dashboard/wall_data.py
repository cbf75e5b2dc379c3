"""What a wall screen shows, as named queries over the dashboard's own (access-checked)
data functions: the scene of the moment, the alert ticker, the device counts.

Pure where it can be: :func:`scene_at` reads the time it is given; the ticker and counts
take an :class:`~dashboard.access.Access` limited to the wall's units (:func:`wall_access`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import pandas as pd

from core.errors import ConfigError
from core.settings import Settings
from core.settings_wall import WALL_NAME_PATTERN, WallScene, WallSettings
from dashboard.access import Access
from dashboard.alerts_data import AlertSource, active_alerts
from dashboard.context import DashboardContext
from dashboard.devices_page import registered_devices
from dashboard.devices_status import STATUSES, count_by
from layers.levels import Hierarchy

TICKER_MAX: Final = 12  # the ticker is replaced every beat, never appended to


@dataclass(frozen=True, slots=True)
class Scene:
    """A scene with its defaults resolved (unit, metric)."""

    index: int
    page: str
    unit: str
    metric: str
    seconds: int
    title: tuple[str, str] | None  # (vi, en)


@dataclass(frozen=True, slots=True)
class Wall:
    """One wall, checked against the hierarchy and the metric catalogue."""

    name: str
    scenes: tuple[Scene, ...]
    fixed: int | None
    units: tuple[str, ...]
    lang: str

    @property
    def cycle_s(self) -> int:
        return sum(scene.seconds for scene in self.scenes)

    def version(self, extra: str = "") -> str:
        """Changes when the wall's configuration (or ``extra``: the code) changes: a
        page open on an older one reloads itself once the server answers again."""
        raw = json.dumps([self.name, repr(self.scenes), self.fixed, self.units, self.lang, extra])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SceneNow:
    """The scene on screen at a moment, and where its time slot starts and ends (epoch ms)."""

    scene: Scene
    starts_ms: int
    ends_ms: int | None  # None: held (fixed), no progress


def resolve_walls(settings: Settings, hierarchy: Hierarchy) -> dict[str, Wall]:
    """Every ``dashboard.walls`` entry with defaults filled in. Raises ConfigError naming
    the key of a bad name, unit or metric."""
    walls: dict[str, Wall] = {}
    for name, wall in settings.dashboard.walls.items():
        key = f"dashboard.walls.{name}"
        if not re.match(WALL_NAME_PATTERN, name):
            raise ConfigError(key, name, "must be a name of a-z, 0-9 and - (used in /wall/<name>)")
        walls[name] = _resolve(key, name, wall, settings, hierarchy)
    return walls


def _resolve(
    key: str, name: str, wall: WallSettings, settings: Settings, hierarchy: Hierarchy
) -> Wall:
    scope = settings.layers.scope
    units = tuple(wall.units) if wall.units else ((scope,) if scope else ())
    if not units:
        raise ConfigError(f"{key}.units", None, "must name a unit (layers.scope is null)")
    for index, code in enumerate(units):
        if hierarchy.get(code) is None:
            raise ConfigError(f"{key}.units.{index}", code, "must be a unit code of the hierarchy")
    scenes = []
    for index, scene in enumerate(wall.scenes):
        scenes.append(_scene(f"{key}.scenes.{index}", index, scene, units, settings, hierarchy))
    return Wall(name, tuple(scenes), wall.fixed, units, wall.lang)


def _scene(
    key: str,
    index: int,
    scene: WallScene,
    units: tuple[str, ...],
    settings: Settings,
    hierarchy: Hierarchy,
) -> Scene:
    unit = scene.unit or units[0]
    if hierarchy.get(unit) is None:
        raise ConfigError(f"{key}.unit", unit, "must be a unit code of the hierarchy")
    if not any(code == unit or hierarchy.is_within(unit, code) for code in units):
        raise ConfigError(f"{key}.unit", unit, f"must lie inside the wall's units {list(units)}")
    metric = scene.metric or settings.dashboard.default_metric
    if settings.metrics and metric not in settings.metrics:
        raise ConfigError(f"{key}.metric", metric, f"must be one of {sorted(settings.metrics)}")
    title = (scene.title.vi, scene.title.en) if scene.title else None
    return Scene(index, scene.page, unit, metric, scene.seconds, title)


def scene_at(wall: Wall, now: datetime) -> SceneNow:
    """The scene on screen at ``now``: the ``fixed`` one, else the one whose slot of the
    rotation (scenes back to back from the Unix epoch) holds ``now``. Every screen of a
    wall and every beat agree without keeping any state."""
    if wall.fixed is not None:
        return SceneNow(wall.scenes[wall.fixed], 0, None)
    now_ms = int(now.timestamp() * 1000)
    cycle_ms = wall.cycle_s * 1000
    start = now_ms - now_ms % cycle_ms
    for scene in wall.scenes:
        end = start + scene.seconds * 1000
        if now_ms < end:
            return SceneNow(scene, start, end)
        start = end
    last = wall.scenes[-1]  # not reached: the slots cover the cycle
    return SceneNow(last, start - last.seconds * 1000, start)


def wall_access(hierarchy: Hierarchy, access: Access, wall: Wall) -> Access | None:
    """What the screen may show: the wall's units this viewer may see (a wall session's
    are exactly the wall's); None when none of them."""
    units = [code for code in wall.units if access.can_see(code)]
    if not units:
        return None
    return Access(hierarchy, units, role="viewer", username=access.username)


def alert_ticker(source: AlertSource, access: Access, lang: str) -> pd.DataFrame:
    """The active alerts of the wall's units, critical first (then firing before pending,
    then the newest): severity, title, unit_name, since; at most :data:`TICKER_MAX`."""
    frame = active_alerts(source, access, lang)
    return frame[["severity", "title", "unit_name", "state", "since"]].head(TICKER_MAX)


def alert_counts(source: AlertSource, access: Access) -> dict[str, int]:
    """How many active alerts per severity (critical, warning, info)."""
    frame = active_alerts(source, access)
    counts = {severity: 0 for severity in ("critical", "warning", "info")}
    for severity in frame["severity"]:
        counts[str(severity)] = counts.get(str(severity), 0) + 1
    return counts


def device_counts(ctx: DashboardContext, access: Access, unit: str | None = None) -> dict[str, int]:
    """Registered devices of the wall's units (inside ``unit``) per status: online, late,
    offline."""
    frame = registered_devices(ctx, access, {"unit": unit})
    counts = count_by(frame)[""]
    return {status: counts.get(status, 0) for status in STATUSES}
