"""How long the time-series store keeps its data (``store.retention``, design record 017).

Raw readings are kept ``raw_days``; hourly roll-ups (count, sum, min, max and the last
value of every numeric field, per series and hour) are kept ``rollup_days``, so a
weekly, monthly or yearly KPI is answered from a few thousand roll-up rows instead of
millions of readings, with the same count, sum, min and max. Leaving ``store.retention``
out keeps everything raw, for ever, exactly as before.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from core.settings_base import _Section

MAX_DAYS = 36_500  # a century: beyond that a duration is a typo


class RetentionSettings(_Section):
    """``raw_days``: raw readings older than this are deleted (SQLite: by the periodic
    prune; InfluxDB: the duration of the raw retention policy). ``rollup_days``: the
    hourly roll-ups are kept this long, at least as long as the raw readings.
    ``rollup_every`` is fixed at one hour (the only bucket the stores roll up)."""

    raw_days: Annotated[int, Field(ge=1, le=MAX_DAYS)] = 90
    rollup_days: Annotated[int, Field(ge=1, le=MAX_DAYS)] = 1100  # about three years
    rollup_every: Literal["1h"] = "1h"

    @field_validator("raw_days", "rollup_days", mode="before")
    @classmethod
    def _whole_days(cls, value: object) -> object:
        # pydantic would take true as 1 and 7.0 as 7: a duration is written as whole days.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number of days, such as 90")
        return value

    @field_validator("rollup_days")
    @classmethod
    def _outlives_raw(cls, value: int, info: ValidationInfo) -> int:
        raw_days = info.data.get("raw_days")
        if isinstance(raw_days, int) and value < raw_days:
            raise ValueError(
                f"must be at least store.retention.raw_days ({raw_days}): the roll-ups "
                "answer for the readings once they are deleted"
            )
        return value
