"""The wall screens of the operations room (``dashboard.walls.<name>``, issue #7).

A wall shows scenes in turn (a page, a unit, a metric, how long), or holds one of them
(``fixed``). ``unit`` and ``metric`` left out mean ``layers.scope`` and
``dashboard.default_metric``; the dashboard resolves them when it mounts the wall and
refuses a metric or unit that does not exist, naming the key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from core.settings_base import Label, _Section

WALL_PAGES = ("map", "alerts", "devices", "unit")
WALL_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class WallScene(_Section):
    """One scene: what the wall shows and for how many seconds."""

    page: Literal["map", "alerts", "devices", "unit"]
    unit: str | None = None  # default: layers.scope
    metric: str | None = None  # default: dashboard.default_metric
    seconds: Annotated[int, Field(ge=5, le=3600)] = 30
    title: Label | None = None


class WallSettings(_Section):
    """One wall: its scenes, the one it holds (``fixed``), its units and language."""

    scenes: Annotated[list[WallScene], Field(min_length=1)]
    fixed: int | None = None  # index of the one scene to hold; None = rotate
    units: list[str] | None = None  # the units the wall may show; default [layers.scope]
    lang: Literal["vi", "en"] = "vi"

    @model_validator(mode="after")
    def _fixed_is_a_scene(self) -> WallSettings:
        if self.fixed is not None and not 0 <= self.fixed < len(self.scenes):
            raise ValueError(
                f"fixed must be the index of a scene, 0 to {len(self.scenes) - 1}: {self.fixed}"
            )
        return self
