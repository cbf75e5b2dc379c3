"""The default JSON contract: one MQTT message → one Reading, a pure function that raises
DecodeError.

The contract is strict so nothing is silently dropped: every key of the payload is
either ``ts``, ``lat``/``lon`` or a numeric metric; anything else is refused with the
key named, and the whole message goes to dead-letter with that reason and its code.
This runs for every message: no pydantic, no regular expression per message (names and
topics that passed are remembered), orjson for the parse.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from core.errors import DecodeError
from core.types import Reading
from ingest.contracts.common import (
    MAX_AGE_DAYS,
    MAX_PAYLOAD_BYTES,
    METRIC_NAME,
    MIN_TS,
    Limits,
    MetricNames,
    coordinate,
    finite,
    load_object,
)
from ingest.contracts.common import parse_ts as _parse_ts
from ingest.topics import CONTRACT, TopicTemplate

__all__ = ["MAX_PAYLOAD_BYTES", "METRIC_NAME", "MIN_TS", "JsonContract", "decode", "parse_ts"]

RESERVED_KEYS = ("ts", "lat", "lon")


def parse_ts(
    value: Any,
    *,
    now: datetime,
    max_clock_skew_s: int,
    max_age_s: float | None = MAX_AGE_DAYS * 86400.0,
) -> datetime:
    """``ts`` as an aware UTC datetime: epoch milliseconds (integer) or ISO-8601 with offset."""
    return _parse_ts(value, now, Limits(max_clock_skew_s, max_age_s))


def _position(document: dict[str, Any]) -> tuple[float | None, float | None]:
    has_lat, has_lon = "lat" in document, "lon" in document
    if has_lat != has_lon:
        missing = "lon" if has_lat else "lat"
        raise DecodeError(
            f"payload has {'lat' if has_lat else 'lon'} but not {missing}", "bad_position"
        )
    if not has_lat:
        return None, None
    return coordinate("lat", document["lat"], 90.0), coordinate("lon", document["lon"], 180.0)


class JsonContract:
    """``{"ts": ..., "<metric>": <number>, ..., "lat": ..., "lon": ...}`` on a topic with
    ``{device_id}`` and ``{kind}`` (or a fixed ``kind`` from the configuration)."""

    format = "json"

    def __init__(
        self,
        template: TopicTemplate = CONTRACT,
        limits: Limits | None = None,
        kind: str | None = None,
    ) -> None:
        self.template = template
        self.limits = limits or Limits()
        self._kind = kind
        self._names = MetricNames()

    def decode(self, topic: str, payload: bytes, now: datetime) -> list[Reading]:
        return [self.decode_one(topic, payload, now)]

    def decode_one(self, topic: str, payload: bytes, now: datetime) -> Reading:
        found = self.template.fields(topic)
        kind = self._kind or found["{kind}"]
        document = load_object(payload, self.limits)
        if "ts" not in document:
            raise DecodeError(
                "payload has no ts (epoch milliseconds or ISO-8601 with offset)", "no_ts"
            )
        ts = _parse_ts(document["ts"], now, self.limits)
        lat, lon = _position(document) if "lat" in document or "lon" in document else (None, None)
        values: dict[str, float] = {}
        check = self._names.check
        for key, value in document.items():
            if key in RESERVED_KEYS:
                continue
            check(key)
            # the usual case first: a float that is finite
            if type(value) is float and math.isfinite(value):
                values[key] = value
            else:
                values[key] = finite(key, value)
        if not values:
            raise DecodeError("payload has no numeric metric (only ts/lat/lon)", "no_metrics")
        return Reading(kind, found["{device_id}"], ts, values, lat, lon)


_DEFAULT = JsonContract()


def decode(
    topic: str,
    payload: bytes,
    *,
    now: datetime,
    max_clock_skew_s: int,
    template: TopicTemplate = CONTRACT,
    max_age_s: float | None = MAX_AGE_DAYS * 86400.0,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> Reading:
    """The Reading a message carries. ``now`` (aware UTC) bounds how far ahead ``ts`` may be.

    Raises DecodeError with the reason shown in dead-letter and its code."""
    limits = Limits(max_clock_skew_s, max_age_s, max_payload_bytes)
    contract = _DEFAULT if template is CONTRACT else JsonContract(template)
    if contract.limits != limits:
        contract = JsonContract(template, limits)
    return contract.decode_one(topic, payload, now)
