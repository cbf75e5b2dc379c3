"""SenML (RFC 8428) JSON packs → Readings, one per (device, resolved time).

Resolution (RFC 8428 §4.6): base fields (``bn``, ``bt``, ``bv``) apply to their record
and every later one until replaced; name = bn + n; time = bt + t in seconds, a result
below 2**28 is relative to now (so a pack without times means "now"); value = bv + v (bv
alone when the record has no v). Only numeric values are taken: vs/vb/vd are refused with
their field named. The resolved name splits at its last ':' or '/': what follows is the
metric (it must pass METRIC_NAME: "pm2.5" is refused with a hint, not renamed), what
precedes names the device: its last ':'/'/'-separated segment becomes the device id
("urn:dev:ow:10e2073a01080063:temp" → device "10e2073a01080063", metric "temp"). When
the topic template has {device_id}, the topic names the device and every record of the
pack must carry the same name prefix (one device per pack). Records named "lat" and "lon"
place the device like the JSON contract's lat/lon. Units (u, bu) are not converted: the
metric catalogue declares the unit of each metric. See docs/design/005-message-contracts.md.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from core.errors import DecodeError
from core.types import Reading
from ingest.contracts.common import (
    EPOCH,
    Limits,
    MetricNames,
    check_time,
    coordinate,
    is_number,
    json_type,
    load_json,
    shown,
)
from ingest.topics import DEVICE_ID_PATTERN, TopicTemplate

RELATIVE_LIMIT = 2**28  # RFC 8428 §4.5.3: smaller times are relative to now
SUPPORTED_VERSION = 10
MAX_RECORDS = 1000
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-:./_")
_NON_NUMERIC = {
    "vs": "a string value (vs)",
    "vb": "a boolean value (vb)",
    "vd": "a data value (vd)",
}


def _number(record: dict[str, Any], key: str, index: int, code: str = "invalid") -> float | None:
    if key not in record:
        return None
    value = record[key]
    if not is_number(value):
        raise DecodeError(
            f"SenML record {index}: {key} must be a number, not {json_type(value)}",
            "bad_ts" if key in ("t", "bt") else "not_numeric",
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise DecodeError(
            f"SenML record {index}: {key} must be a finite number: {shown(value)}",
            "bad_ts" if key in ("t", "bt") else "nan_or_inf",
        )
    return number


def _text(record: dict[str, Any], key: str, index: int) -> str | None:
    value = record.get(key)
    if value is None and key not in record:
        return None
    if not isinstance(value, str):
        raise DecodeError(
            f"SenML record {index}: {key} must be a string, not {json_type(value)}", "bad_shape"
        )
    return value


def split_name(name: str) -> tuple[str, str]:
    """("urn:dev:ow:10e2073a01080063", "temp") from "urn:dev:ow:10e2073a01080063:temp"."""
    cut = max(name.rfind(":"), name.rfind("/"))
    return (name[:cut], name[cut + 1 :]) if cut >= 0 else ("", name)


def device_of(prefix: str) -> str:
    """The device id a name prefix carries: its last ':' or '/' separated segment."""
    cut = max(prefix.rfind(":"), prefix.rfind("/"))
    return prefix[cut + 1 :]


class SenmlContract:
    """A SenML JSON pack on a topic with {kind} (or a fixed kind) and optionally {device_id}."""

    format = "senml"

    def __init__(self, template: TopicTemplate, limits: Limits, kind: str | None = None) -> None:
        self.template = template
        self.limits = limits
        self._kind = kind
        self._names = MetricNames()

    def decode(self, topic: str, payload: bytes, now: datetime) -> list[Reading]:
        found = self.template.fields(topic)
        kind = self._kind or found["{kind}"]
        topic_device = found.get("{device_id}")
        pack = load_json(payload, self.limits)
        if type(pack) is not list:
            raise DecodeError(
                f"a SenML pack must be a JSON array of records, not {json_type(pack)}", "bad_shape"
            )
        if not pack:
            raise DecodeError("the SenML pack has no record", "no_metrics")
        if len(pack) > MAX_RECORDS:
            raise DecodeError(
                f"the SenML pack has {len(pack)} records, more than {MAX_RECORDS}", "too_large"
            )
        groups: dict[tuple[str, datetime], dict[str, float]] = {}
        prefixes: set[str] = set()
        base_name, base_time, base_value = "", 0.0, None
        for index, record in enumerate(pack):
            if type(record) is not dict:
                raise DecodeError(
                    f"SenML record {index} must be a JSON object, not {json_type(record)}",
                    "bad_shape",
                )
            self._check_labels(record, index)
            if "bn" in record:
                base_name = _text(record, "bn", index) or ""
            if "bt" in record:
                base_time = _number(record, "bt", index) or 0.0
            if "bv" in record:
                base_value = _number(record, "bv", index)
            name = base_name + (_text(record, "n", index) or "")
            prefix, metric = self._name(name, index)
            value = self._value(record, index, base_value)
            ts = self._time(base_time + (_number(record, "t", index) or 0.0), now, index)
            prefixes.add(prefix)
            if topic_device is not None and len(prefixes) > 1:
                named = ", ".join(sorted(map(repr, prefixes)))
                raise DecodeError(
                    f"the SenML pack names several devices ({named})"
                    f" but the topic names one ({topic_device!r})",
                    "bad_shape",
                )
            device = topic_device or self._device(prefix, index)
            values = groups.setdefault((device, ts), {})
            if metric in values:
                raise DecodeError(
                    f"SenML record {index}: {name!r} has a second value at the same time",
                    "duplicate_key",
                )
            values[metric] = value
        return [self._reading(kind, device, ts, values) for (device, ts), values in groups.items()]

    @staticmethod
    def _check_labels(record: dict[str, Any], index: int) -> None:
        for label in record:
            if label.endswith("_"):
                raise DecodeError(
                    f"SenML record {index}: the must-understand field {shown(label)} is not"
                    " supported",
                    "unsupported",
                )
        if "bver" in record:
            version = record["bver"]
            if type(version) is not int or version < 1:
                raise DecodeError(
                    f"SenML record {index}: bver must be a positive integer: {shown(version)}",
                    "bad_shape",
                )
            if version > SUPPORTED_VERSION:
                raise DecodeError(
                    f"SenML record {index}: version {version} is not supported"
                    f" (at most {SUPPORTED_VERSION})",
                    "unsupported",
                )

    def _name(self, name: str, index: int) -> tuple[str, str]:
        if not name:
            raise DecodeError(f"SenML record {index} has no name (n or bn)", "bad_metric_name")
        if not (name[0].isascii() and name[0].isalnum()) or not _NAME_CHARS.issuperset(name):
            raise DecodeError(
                f"SenML record {index}: name {shown(name)} is not a SenML name"
                " (letters, digits and - : . / _, starting with a letter or digit)",
                "bad_metric_name",
            )
        prefix, metric = split_name(name)
        hint = " (write e.g. pm25 for pm2.5)" if "." in metric else ""
        try:
            self._names.check(metric, hint)
        except DecodeError as exc:
            raise DecodeError(f"SenML record {index}: {exc.reason}", exc.code) from exc
        return prefix, metric

    @staticmethod
    def _value(record: dict[str, Any], index: int, base_value: float | None) -> float:
        for label, what in _NON_NUMERIC.items():
            if label in record:
                raise DecodeError(
                    f"SenML record {index} has {what}: only numeric values (v) are taken",
                    "not_numeric",
                )
        value = _number(record, "v", index)
        if value is None:
            if base_value is not None:
                return base_value
            if "s" in record:
                raise DecodeError(
                    f"SenML record {index} has only a sum (s): sums are not taken", "unsupported"
                )
            raise DecodeError(f"SenML record {index} has no value (v)", "no_metrics")
        total = value + (base_value or 0.0)
        if not math.isfinite(total):
            raise DecodeError(f"SenML record {index}: bv + v is not finite", "nan_or_inf")
        return total

    def _time(self, seconds: float, now: datetime, index: int) -> datetime:
        try:
            if seconds < RELATIVE_LIMIT:
                ts = now + timedelta(seconds=seconds)
            else:
                ts = EPOCH + timedelta(seconds=seconds)
        except OverflowError as exc:
            raise DecodeError(
                f"SenML record {index}: time {seconds!r} is out of range", "bad_ts"
            ) from exc
        return check_time(ts, seconds, now, self.limits)

    @staticmethod
    def _device(prefix: str, index: int) -> str:
        device = device_of(prefix)
        if not device:
            raise DecodeError(
                f"SenML record {index}: the name says no device (write bn such as"
                " 'urn:dev:mac:0024befffe804ff1:') and the topic template has no {device_id}",
                "no_device",
            )
        if not DEVICE_ID_PATTERN.fullmatch(device):
            raise DecodeError(
                f"SenML record {index}: device id {shown(device)} has illegal characters"
                " (allowed: letters, digits and . _ -, at most 64)",
                "no_device",
            )
        return device

    @staticmethod
    def _reading(kind: str, device: str, ts: datetime, values: dict[str, float]) -> Reading:
        lat, lon = values.pop("lat", None), values.pop("lon", None)
        if (lat is None) != (lon is None):
            raise DecodeError(
                f"the SenML pack has {'lat' if lat is not None else 'lon'} but not"
                f" {'lon' if lat is not None else 'lat'} for {device!r}",
                "bad_position",
            )
        if lat is not None and lon is not None:
            lat, lon = coordinate("lat", lat, 90.0), coordinate("lon", lon, 180.0)
        if not values:
            raise DecodeError(
                f"the SenML pack has no metric for {device!r} (only lat/lon)", "no_metrics"
            )
        return Reading(kind, device, ts, values, lat, lon)
