"""Checks shared by every contract: size, UTF-8, JSON (strict about duplicate keys),
timestamps, metric names and numbers. Each refusal is a DecodeError with a stable code.

JSON is parsed by orjson (about 4x faster than the standard library on sensor
payloads). orjson keeps the last of duplicate keys, so a cheap count proves there were
none; when it cannot (or orjson refuses the text) the standard library parses it again
with the strict hook, which also gives the exact reason, line and column.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from core.errors import DecodeError

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_AGE_DAYS = 365
# A device whose clock was never set reports 1970; anything before this is refused.
MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Field names become InfluxDB field keys and catalogue keys ("pm25", "level").
METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_REFUSED_METRIC_NAMES = ("time",)  # InfluxDB reserves it
_SHOWN_MAX = 60
# Metric names that passed, so the regular expression runs once per name, not per message.
_MAX_KNOWN_NAMES = 4096


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds from ``ingest.*`` every contract applies."""

    max_clock_skew_s: int = 600
    max_age_s: float | None = MAX_AGE_DAYS * 86400.0  # None = only the year-2000 floor
    max_payload_bytes: int = MAX_PAYLOAD_BYTES


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."


def is_number(value: Any) -> bool:
    # bool is an int subclass in Python, but true/false in JSON is not a measurement.
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_type(value: Any) -> str:
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
            raise DecodeError(f"payload has the key {key!r} twice", "duplicate_key")
        result[key] = value
    return result


def _strict_loads(payload: bytes) -> Any:
    """The standard library with the duplicate-key hook: slow, exact."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"payload is not UTF-8: byte 0x{payload[exc.start]:02x} at offset {exc.start}",
            "bad_utf8",
        ) from exc
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "not_json"
        ) from exc
    except RecursionError as exc:
        raise DecodeError("payload is not JSON: nested too deeply", "not_json") from exc
    except ValueError as exc:  # an integer of more than 4300 digits
        raise DecodeError(f"payload is not JSON: {exc}", "not_json") from exc


def _colons_in_strings(document: dict[str, Any]) -> int:
    return sum(key.count(":") for key in document) + sum(
        value.count(":") for value in document.values() if type(value) is str
    )


def load_json(payload: bytes, limits: Limits) -> Any:
    """The JSON document of ``payload``; duplicate keys refused at every level."""
    if not payload:
        raise DecodeError("payload is empty (expected JSON)", "empty")
    if len(payload) > limits.max_payload_bytes:
        raise DecodeError(
            f"payload is {len(payload)} bytes, more than {limits.max_payload_bytes}", "too_large"
        )
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        # NaN, huge integers, lone surrogates, bad UTF-8, bad syntax: the standard library
        # decides, with its exact message (NaN is then refused as a metric, not as syntax).
        return _strict_loads(payload)
    # Every member of an object has one ':' outside strings. A flat object with as many
    # ':' outside strings as keys cannot have had a duplicate (orjson would have dropped
    # it). Escapes could hide a ':' inside a string, so a backslash means the slow way.
    if type(document) is dict:
        colons = payload.count(b":")
        if colons != len(document) and (
            b"\\" in payload or colons - _colons_in_strings(document) != len(document)
        ):
            return _strict_loads(payload)
    elif type(document) is list and b":" in payload:
        # A SenML pack: the same count over its records (each one a flat object).
        if b"\\" in payload or not all(type(record) is dict for record in document):
            return _strict_loads(payload)
        members = sum(len(record) + _colons_in_strings(record) for record in document)
        if payload.count(b":") != members:
            return _strict_loads(payload)
    return document


def load_object(payload: bytes, limits: Limits) -> dict[str, Any]:
    document = load_json(payload, limits)
    if type(document) is not dict:
        raise DecodeError(f"payload must be a JSON object, not {json_type(document)}", "bad_shape")
    return document


def check_time(ts: datetime, value: Any, now: datetime, limits: Limits) -> datetime:
    """``ts`` when it lies within the bounds; ``value`` is what the device wrote."""
    if ts < MIN_TS:
        raise DecodeError(
            f"ts {shown(value)} is before {MIN_TS:%Y-%m-%d} (device clock not set?)", "ts_past"
        )
    if (ts - now).total_seconds() > limits.max_clock_skew_s:
        ahead = (ts - now).total_seconds()
        raise DecodeError(
            f"ts {shown(value)} is {ahead:.0f} s in the future"
            f" (more than max_clock_skew_s = {limits.max_clock_skew_s})",
            "ts_future",
        )
    if limits.max_age_s is not None and (now - ts).total_seconds() > limits.max_age_s:
        days = (now - ts).total_seconds() / 86400
        raise DecodeError(
            f"ts {shown(value)} is {days:.0f} days old"
            f" (more than max_age_days = {limits.max_age_s / 86400:g})",
            "ts_past",
        )
    return ts


def parse_ts(value: Any, now: datetime, limits: Limits) -> datetime:
    """``ts`` as an aware UTC datetime: epoch milliseconds (integer) or ISO-8601 with offset."""
    if type(value) is int:
        try:
            ts = EPOCH + timedelta(milliseconds=value)
        except OverflowError as exc:
            raise DecodeError(
                f"ts {value} is out of range for epoch milliseconds", "bad_ts"
            ) from exc
        # epoch seconds read as milliseconds land in 1970; the hint must not itself overflow
        as_seconds_year = 1970 + value / (365.25 * 86400)
        if ts < MIN_TS and value > 0 and MIN_TS.year <= as_seconds_year < 9999:
            raise DecodeError(
                f"ts {value} is before {MIN_TS:%Y-%m-%d}: epoch seconds instead of milliseconds?",
                "ts_past",
            )
    elif isinstance(value, bool) or value is None:
        raise DecodeError(
            f"ts must be epoch milliseconds or ISO-8601 with offset, not {value!r}", "bad_ts"
        )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise DecodeError(f"ts must be a finite number: {value!r}", "bad_ts")
        if value.is_integer() and abs(value) >= 2**63:  # orjson reads such integers as floats
            raise DecodeError(f"ts {value:.0f} is out of range for epoch milliseconds", "bad_ts")
        raise DecodeError(f"ts must be whole epoch milliseconds (an integer): {value!r}", "bad_ts")
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise DecodeError(f"ts {shown(value)} is not an ISO-8601 date-time", "bad_ts") from exc
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise DecodeError(
                f"ts {shown(value)} has no UTC offset (write e.g. +07:00 or Z at the end)",
                "bad_ts",
            )
        try:
            ts = parsed.astimezone(UTC)
        except OverflowError as exc:
            raise DecodeError(f"ts {shown(value)} is out of range", "bad_ts") from exc
    else:
        raise DecodeError(
            f"ts must be epoch milliseconds or ISO-8601 with offset, not {json_type(value)}",
            "bad_ts",
        )
    return check_time(ts, value, now, limits)


class MetricNames:
    """Checks metric names; remembers the good ones (bounded) so the hot path is a set lookup."""

    def __init__(self) -> None:
        self._good: set[str] = set()

    def check(self, name: str, hint: str = "") -> str:
        if name in self._good:
            return name
        if not METRIC_NAME.fullmatch(name) or name in _REFUSED_METRIC_NAMES:
            raise DecodeError(
                f"metric name {shown(name)} is not allowed (letters, digits and _,"
                f" starting with a letter, at most 64; not 'time'){hint}",
                "bad_metric_name",
            )
        if len(self._good) >= _MAX_KNOWN_NAMES:
            self._good.clear()
        self._good.add(name)
        return name


def finite(name: str, value: Any) -> float:
    """``value`` as a float when it is a finite JSON number; DecodeError naming ``name``."""
    kind = type(value)
    if kind is not float and (kind is not int):
        raise DecodeError(
            f"metric {name!r} must be a number, not {json_type(value)}", "not_numeric"
        )
    try:
        number = float(value)
    except OverflowError as exc:
        raise DecodeError(f"metric {name!r} is out of range: {shown(value)}", "nan_or_inf") from exc
    if not math.isfinite(number):
        raise DecodeError(f"metric {name!r} must be a finite number: {value!r}", "nan_or_inf")
    return number


def coordinate(name: str, value: Any, limit: float) -> float:
    if not is_number(value):
        raise DecodeError(f"{name} must be a finite number: {shown(value)}", "bad_position")
    try:
        number = float(value)
    except OverflowError as exc:
        raise DecodeError(
            f"{name} must be a finite number: {shown(value)}", "bad_position"
        ) from exc
    if not math.isfinite(number):
        raise DecodeError(f"{name} must be a finite number: {shown(value)}", "bad_position")
    if not -limit <= number <= limit:
        raise DecodeError(
            f"{name} must be between -{limit:g} and {limit:g}: {value!r}", "bad_position"
        )
    return number
