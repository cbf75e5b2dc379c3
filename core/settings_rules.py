"""Alert rules in the settings tree (``alerts.rules``): validated like all config."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from core.settings_base import Label, _Section


class AlertRule(_Section):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    metric: str
    level: str
    op: Literal["above", "below"]
    threshold: float
    for_s: Annotated[int, Field(ge=0)] = 0
    severity: Literal["info", "warning", "critical"] = "warning"
    units: list[str] | None = None  # only these unit codes; None = every unit with data
    lookback_s: Annotated[int, Field(gt=0)] = 900  # how far back a device's last value counts
    title: Label | None = None
