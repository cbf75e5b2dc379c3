"""Decode one MQTT message into a Reading: a pure function that raises DecodeError.

The contract is strict so nothing is silently dropped: every key of the payload is
either ``ts``, ``lat``/``lon`` or a numeric metric; anything else is refused with the
key named, and the whole message goes to dead-letter with that reason.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import DecodeError
from core.types import Reading
from ingest.topics import CONTRACT, TopicTemplate

MAX_PAYLOAD_BYTES = 64 * 1024
# A device whose clock was never set reports 1970; anything before this is refused.
MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Field names become InfluxDB field keys and catalogue keys ("pm25", "level").
METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
RESERVED_KEYS = ("ts", "lat", "lon")
_REFUSED_METRIC_NAMES = ("time",)  # InfluxDB reserves it
_SHOWN_MAX = 60


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."


def _is_number(value: Any) -> bool:
    # bool is an int subclass in Python, but true/false in JSON is not a measurement.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads keeps the last of duplicate keys; a second "pm25" would be lost silently."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DecodeError(f"payload has the key {key!r} twice")
        result[key] = value
    return result


def _parse_json(payload: bytes) -> dict[str, Any]:
    if not payload:
        raise DecodeError("payload is empty (expected a JSON object)")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(f"payload is {len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"payload is not UTF-8: byte 0x{payload[exc.start]:02x} at offset {exc.start}"
        ) from exc
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise DecodeError("payload is not JSON: nested too deeply") from exc
    if not isinstance(document, dict):
        raise DecodeError(f"payload must be a JSON object, not {_json_type(document)}")
    return document


def parse_ts(value: Any, *, now: datetime, max_clock_skew_s: int) -> datetime:
    """``ts`` as an aware UTC datetime: epoch milliseconds (integer) or ISO-8601 with offset."""
    if isinstance(value, bool) or value is None:
        raise DecodeError(f"ts must be epoch milliseconds or ISO-8601 with offset, not {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DecodeError(f"ts must be a finite number: {value!r}")
        raise DecodeError(f"ts must be whole epoch milliseconds (an integer): {value!r}")
    if isinstance(value, int):
        try:
            ts = EPOCH + timedelta(milliseconds=value)
        except OverflowError as exc:
            raise DecodeError(f"ts {value} is out of range for epoch milliseconds") from exc
        # epoch seconds read as milliseconds land in 1970; the hint must not itself overflow
        as_seconds_year = 1970 + value / (365.25 * 86400)
        if ts < MIN_TS and value > 0 and MIN_TS.year <= as_seconds_year < 9999:
            raise DecodeError(
                f"ts {value} is before {MIN_TS:%Y-%m-%d}: epoch seconds instead of milliseconds?"
            )
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise DecodeError(f"ts {_shown(value)} is not an ISO-8601 date-time") from exc
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise DecodeError(
                f"ts {_shown(value)} has no UTC offset (write e.g. +07:00 or Z at the end)"
            )
        try:
            ts = parsed.astimezone(UTC)
        except OverflowError as exc:
            raise DecodeError(f"ts {_shown(value)} is out of range") from exc
    else:
        raise DecodeError(
            f"ts must be epoch milliseconds or ISO-8601 with offset, not {_json_type(value)}"
        )
    if ts < MIN_TS:
        raise DecodeError(f"ts {_shown(value)} is before {MIN_TS:%Y-%m-%d} (device clock not set?)")
    latest = now + timedelta(seconds=max_clock_skew_s)
    if ts > latest:
        ahead = (ts - now).total_seconds()
        raise DecodeError(
            f"ts {_shown(value)} is {ahead:.0f} s in the future"
            f" (more than max_clock_skew_s = {max_clock_skew_s})"
        )
    return ts


def _coordinate(document: dict[str, Any], key: str, limit: float) -> float:
    value = document[key]
    if not _is_number(value) or not math.isfinite(value):
        raise DecodeError(f"{key} must be a finite number: {_shown(value)}")
    if not -limit <= value <= limit:
        raise DecodeError(f"{key} must be between -{limit:g} and {limit:g}: {value!r}")
    return float(value)


def _position(document: dict[str, Any]) -> tuple[float | None, float | None]:
    has_lat, has_lon = "lat" in document, "lon" in document
    if has_lat != has_lon:
        missing = "lon" if has_lat else "lat"
        raise DecodeError(f"payload has {'lat' if has_lat else 'lon'} but not {missing}")
    if not has_lat:
        return None, None
    return _coordinate(document, "lat", 90.0), _coordinate(document, "lon", 180.0)


def _metrics(document: dict[str, Any]) -> dict[str, float]:
    values: dict[str, float] = {}
    for key, value in document.items():
        if key in RESERVED_KEYS:
            continue
        if not METRIC_NAME.fullmatch(key) or key in _REFUSED_METRIC_NAMES:
            raise DecodeError(
                f"metric name {_shown(key)} is not allowed (letters, digits and _,"
                " starting with a letter, at most 64; not 'time')"
            )
        if not _is_number(value):
            raise DecodeError(f"metric {key!r} must be a number, not {_json_type(value)}")
        if not math.isfinite(value):
            raise DecodeError(f"metric {key!r} must be a finite number: {value!r}")
        values[key] = float(value)
    if not values:
        raise DecodeError("payload has no numeric metric (only ts/lat/lon)")
    return values


def decode(
    topic: str,
    payload: bytes,
    *,
    now: datetime,
    max_clock_skew_s: int,
    template: TopicTemplate = CONTRACT,
) -> Reading:
    """The Reading a message carries. ``now`` (aware UTC) bounds how far ahead ``ts`` may be.

    Raises DecodeError with the reason shown in dead-letter."""
    kind, device_id = template.match(topic)
    document = _parse_json(payload)
    if "ts" not in document:
        raise DecodeError("payload has no ts (epoch milliseconds or ISO-8601 with offset)")
    ts = parse_ts(document["ts"], now=now, max_clock_skew_s=max_clock_skew_s)
    lat, lon = _position(document)
    values = _metrics(document)
    return Reading(kind=kind, device_id=device_id, ts=ts, values=values, lat=lat, lon=lon)
