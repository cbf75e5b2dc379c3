"""InfluxDB line protocol, and the point rules both store adapters share.

Both adapters accept exactly the points line protocol can carry, so switching the
backend never changes which data is kept: names and tag values are NFC-normalised,
tags with an empty value are dropped (as InfluxDB does), fields are floats, and
timestamps are whole milliseconds inside InfluxDB's range. A point that breaks a rule
is refused with its reason; the other points of the batch are still written.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.errors import PermanentError
from core.store.rollup import epoch_ms
from core.types import Point

# InfluxDB stores nanoseconds in an int64: about 1677-09-21 .. 2262-04-11.
MIN_TS_MS = -9_223_372_036_854
MAX_TS_MS = 9_223_372_036_854

_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
# Names and tag values repeat (a few metrics, devices and unit codes): each is checked and
# escaped once. Bounded: cleared when full, so made-up names cannot grow memory.
_CACHE_MAX = 100_000
_checked: dict[str, str] = {}
_escaped: dict[str, str] = {}
_field_keys: dict[str, str] = {}
_Tags = tuple[tuple[str, str], ...]
# (measurement, *tag items) as given -> (clean measurement, clean sorted tags)
_series: dict[tuple[object, ...], tuple[str, _Tags]] = {}
# (clean measurement, clean tags) -> escaped line protocol series key "air,device=a1"
_heads: dict[tuple[str, _Tags], str] = {}


@dataclass(frozen=True, slots=True)
class CleanPoint:
    """A point that passed the rules: NFC names, tags sorted by key, float fields."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, float], ...]
    ts_ms: int

    def tag(self, key: str) -> str:
        return dict(self.tags).get(key, "")


@dataclass(frozen=True, slots=True)
class RefusedPoint:
    index: int  # position in the batch
    reason: str


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _check_name(what: str, text: str) -> str:
    """A measurement, tag key, tag value or field key. A backslash is refused because
    InfluxDB 1.x does not unescape ``\\\\``: ``a\\`` or ``a\\,b`` would come back changed."""
    if type(text) is str and (known := _checked.get(text)) is not None:
        return known
    clean = _check_new_name(what, text)
    if len(_checked) >= _CACHE_MAX:
        _checked.clear()
    _checked[text] = clean
    return clean


def _check_new_name(what: str, text: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string: {text!r}")
    if "\\" in text:
        raise ValueError(f"{what} must not contain a backslash: {text!r}")
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise ValueError(f"{what} must not contain control characters: {text!r}")
    return nfc(text)


def _check_key(what: str, key: str) -> str:
    key = _check_name(what, key)
    if not key:
        raise ValueError(f"{what} must not be empty")
    if key == "time":
        raise ValueError(f"{what} must not be 'time' (InfluxDB reserves it)")
    return key


def _check_value(key: str, value: object) -> float:
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"field {key!r} must be a number: {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"field {key!r} must be a number: {value!r}") from exc
    if not math.isfinite(number):
        raise ValueError(f"field {key!r} must be finite: {value!r}")
    return number


def clean_point(point: Point) -> CleanPoint:
    """Apply the rules to one point; raises ValueError naming what is wrong."""
    key = (point.measurement, *point.tags.items())
    try:
        series = _series.get(key)
    except TypeError:  # an unhashable tag value: _clean_series names it
        series = None
    if series is None:
        series = _clean_series(point.measurement, point.tags)
        if len(_series) >= _CACHE_MAX:
            _series.clear()
        _series[key] = series
    fields = _clean_fields(point.fields)
    ts_ms = epoch_ms(point.ts)
    if not MIN_TS_MS <= ts_ms <= MAX_TS_MS:
        raise ValueError(f"timestamp outside 1677-09-22 .. 2262-04-11: {point.ts.isoformat()}")
    return CleanPoint(series[0], series[1], fields, ts_ms)


def _clean_series(measurement: str, given_tags: Mapping[str, str]) -> tuple[str, _Tags]:
    measurement = _check_name("measurement", measurement)
    if not measurement or measurement.startswith("#"):
        raise ValueError(f"measurement must not be empty or start with '#': {measurement!r}")
    tags: dict[str, str] = {}
    for key, value in given_tags.items():
        clean_key = _check_key("tag key", key)
        clean_value = _check_name(f"tag {clean_key!r}", value)
        if clean_value:
            tags[clean_key] = clean_value
    return measurement, tuple(sorted(tags.items()))


def _clean_fields(fields: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    clean: dict[str, float] = {}
    for key, value in fields.items():
        clean_key = _field_keys.get(key) if type(key) is str else None
        if clean_key is None:
            clean_key = _check_key("field key", key)
            if len(_field_keys) >= _CACHE_MAX:
                _field_keys.clear()
            _field_keys[key] = clean_key
        if type(value) is float and value - value == 0.0:  # finite (inf - inf is nan)
            clean[clean_key] = value
        else:
            clean[clean_key] = _check_value(clean_key, value)
    if not clean:
        raise ValueError("point must have at least one field")
    return tuple(sorted(clean.items()))


def clean_points(points: Sequence[Point]) -> tuple[list[CleanPoint], list[RefusedPoint]]:
    """Split a batch into points to write and points refused with their reason."""
    clean: list[CleanPoint] = []
    refused: list[RefusedPoint] = []
    for index, point in enumerate(points):
        try:
            clean.append(clean_point(point))
        except ValueError as exc:
            refused.append(RefusedPoint(index, str(exc)))
    return clean, refused


def refused_error(refused: Sequence[RefusedPoint], total: int) -> PermanentError:
    """The error raised after the good points of a batch were written."""
    shown = "; ".join(f"#{item.index}: {item.reason}" for item in refused[:3])
    more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
    return PermanentError(
        f"{len(refused)} of {total} points refused, the others were written: {shown}{more}"
    )


def escape_measurement(name: str) -> str:
    return name.translate(_ESCAPE_MEASUREMENT)


def escape_key(text: str) -> str:
    """Tag keys, tag values and field keys."""
    escaped = _escaped.get(text)
    if escaped is None:
        if len(_escaped) >= _CACHE_MAX:
            _escaped.clear()
        escaped = _escaped[text] = text.translate(_ESCAPE_KEY)
    return escaped


def format_float(value: float) -> str:
    """Shortest text that reads back as the same float; always a float to InfluxDB
    (``repr`` keeps a ``.`` or an exponent, so ``1.0`` is never read as an integer)."""
    return repr(float(value))


def _series_key(measurement: str, tags: _Tags) -> str:
    head = _heads.get((measurement, tags))
    if head is None:
        escaped = escape_measurement(measurement)
        head = escaped + "".join(f",{escape_key(key)}={escape_key(value)}" for key, value in tags)
        if len(_heads) >= _CACHE_MAX:
            _heads.clear()
        _heads[(measurement, tags)] = head
    return head


def encode_line(point: CleanPoint) -> str:
    head = _series_key(point.measurement, point.tags)
    fields = ",".join(f"{escape_key(key)}={float(value)!r}" for key, value in point.fields)
    return f"{head} {fields} {point.ts_ms}"


def encode_lines(points: Iterable[CleanPoint]) -> str:
    return "".join(encode_line(point) + "\n" for point in points)
