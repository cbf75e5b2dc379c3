"""Line protocol escaping and the point rules shared by both adapters."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.errors import PermanentError
from core.store.lineprotocol import (
    CleanPoint,
    clean_point,
    clean_points,
    encode_line,
    encode_lines,
    escape_key,
    escape_measurement,
    format_float,
    refused_error,
)
from core.types import Point

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
T0_MS = 1_793_581_200_000


@pytest.mark.parametrize(
    ("raw", "measurement", "key"),
    [
        ("air", "air", "air"),
        ("a b", r"a\ b", r"a\ b"),
        ("a,b", r"a\,b", r"a\,b"),
        ("a=b", "a=b", r"a\=b"),  # "=" needs no escape in a measurement
        ("q\"u'ote", "q\"u'ote", "q\"u'ote"),  # quotes are literal outside string fields
        ("Phường Hải Châu, số=1", r"Phường\ Hải\ Châu\,\ số=1", r"Phường\ Hải\ Châu\,\ số\=1"),
    ],
)
def test_escaping(raw: str, measurement: str, key: str) -> None:
    assert escape_measurement(raw) == measurement
    assert escape_key(raw) == key


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1.0"),
        (35.2, "35.2"),
        (-0.0, "-0.0"),
        (1e16, "1e+16"),
        (1e-7, "1e-07"),
        (True + 0, "1.0"),
    ],
)
def test_fields_are_always_floats(value: float, text: str) -> None:
    assert format_float(value) == text
    assert float(text) == float(value)


def test_encode_line_sorts_tags_and_fields_and_uses_ms() -> None:
    point = Point(
        "air quality",
        {"province": "48", "device": "aq 1", "commune": "20194"},
        {"pm25": 35.2, "pm10": 61},
        T0 + timedelta(milliseconds=7, microseconds=999),
    )
    line = encode_line(clean_point(point))
    assert line == (
        r"air\ quality,commune=20194,device=aq\ 1,province=48 pm10=61.0,pm25=35.2 "
        f"{T0_MS + 7}"
    )
    assert encode_lines([clean_point(point)] * 2) == f"{line}\n{line}\n"


def test_clean_point_normalises_to_nfc_drops_empty_tags_and_converts_zones() -> None:
    decomposed = unicodedata.normalize("NFD", "Hòa Khánh")
    local = T0.astimezone(timezone(timedelta(hours=7)))
    clean = clean_point(Point("air", {"ward": decomposed, "street": ""}, {"pm25": 1}, local))
    assert clean == CleanPoint("air", (("ward", "Hòa Khánh"),), (("pm25", 1.0),), T0_MS)
    assert clean.tag("ward") == "Hòa Khánh"
    assert clean.tag("street") == ""


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"measurement": ""}, "measurement must not be empty"),
        ({"measurement": "#comment"}, "start with '#'"),
        ({"tags": {"": "x"}}, "tag key must not be empty"),
        ({"tags": {"time": "x"}}, "reserves"),
        ({"tags": {"device": "a\\"}}, "backslash"),
        ({"tags": {"device": "a\tb"}}, "control characters"),
        ({"tags": {"device": 7}}, "must be a string"),
        ({"fields": {}}, "at least one field"),
        ({"fields": {"time": 1.0}}, "reserves"),
        ({"fields": {"pm25": float("inf")}}, "must be finite"),
        ({"fields": {"pm25": "35"}}, "must be a number"),
        ({"fields": {"pm25": True}}, "must be a number"),
        ({"fields": {"pm25": None}}, "must be a number"),
        ({"ts": datetime(2026, 11, 2)}, "timezone-aware"),
        ({"ts": datetime(1600, 1, 1, tzinfo=UTC)}, "timestamp outside"),
        ({"ts": datetime(2300, 1, 1, tzinfo=UTC)}, "timestamp outside"),
    ],
)
def test_clean_point_refuses_what_line_protocol_cannot_carry(
    change: dict[str, object], reason: str
) -> None:
    base: dict[str, object] = {
        "measurement": "air",
        "tags": {"device": "aq-1"},
        "fields": {"pm25": 1.0},
        "ts": T0,
    }
    with pytest.raises(ValueError, match=reason):
        clean_point(Point(**(base | change)))  # type: ignore[arg-type]


def test_clean_points_splits_a_batch_and_the_error_names_the_refused() -> None:
    good = Point("air", {"device": "a"}, {"pm25": 1.0}, T0)
    bad = Point("air", {"device": "a"}, {"pm25": float("nan")}, T0)
    clean, refused = clean_points([good, bad, good, bad, bad, bad])
    assert len(clean) == 2
    assert [item.index for item in refused] == [1, 3, 4, 5]
    error = refused_error(refused, 6)
    assert isinstance(error, PermanentError)
    assert str(error).startswith("4 of 6 points refused, the others were written: #1: field")
    assert str(error).endswith("(and 1 more)")
