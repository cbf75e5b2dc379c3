"""Public-service counters on ``gov/<service>/<unit_code>`` → one Point per message.

The payload is ``ts`` plus counters for the period (``received``, ``resolved``,
``resolved_on_time``, ``online`` ...): finite numbers, never negative. The unit code must
be a unit of the configured hierarchy inside the deployment's scope; anything else is
refused with code ``unknown_unit`` and the code named. The Point drills down like sensor
data: measurement = the service (so the metric catalogue reads ``kind: dossiers, field:
resolved_on_time``), tags = the code of the unit at its level and of every ancestor
level, and ``device`` = ``unit-<code>``, so a roll-up to a higher level counts each
reporting unit as one source (sum of the communes' counters for a province).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from core.errors import DecodeError
from core.types import Point
from ingest.contracts.common import Limits, MetricNames, finite, load_object, parse_ts, shown
from ingest.topics import TopicTemplate

# unit code -> its level tags, or None when it is not a unit of the deployment
UnitTags = Callable[[str], Mapping[str, str] | None]
SOURCE_PREFIX = "unit-"
_NOT_COUNTERS = ("lat", "lon")


class GovContract:
    """Counters of one public service for one administrative unit and period."""

    format = "gov"

    def __init__(self, template: TopicTemplate, limits: Limits, unit_tags: UnitTags) -> None:
        self.template = template
        self.limits = limits
        self._unit_tags = unit_tags
        self._names = MetricNames()

    def points(self, topic: str, payload: bytes, now: datetime) -> list[Point]:
        found = self.template.fields(topic)
        service, code = found["{service}"], found["{unit_code}"]
        levels = self._unit_tags(code)
        if levels is None:
            raise DecodeError(
                f"unit code {shown(code)} of topic {shown(topic)} is not a unit of this"
                " deployment's geography",
                "unknown_unit",
            )
        document = load_object(payload, self.limits)
        if "ts" not in document:
            raise DecodeError(
                "payload has no ts (epoch milliseconds or ISO-8601 with offset)", "no_ts"
            )
        ts = parse_ts(document["ts"], now, self.limits)
        counters: dict[str, float] = {}
        for key, value in document.items():
            if key == "ts":
                continue
            if key in _NOT_COUNTERS:
                raise DecodeError(
                    f"{key} has no place in a public-service message (the topic names the unit)",
                    "bad_metric_name",
                )
            self._names.check(key)
            number = finite(key, value)
            if number < 0:
                raise DecodeError(
                    f"counter {key!r} must not be negative: {shown(value)}", "out_of_range"
                )
            counters[key] = number
        if not counters:
            raise DecodeError("payload has no counter (only ts)", "no_metrics")
        tags = {"device": SOURCE_PREFIX + code, **levels}
        return [Point(measurement=service, tags=tags, fields=counters, ts=ts)]
