"""Fuzzing the decoder: whatever arrives on whatever topic, decode either returns a valid
Reading or raises DecodeError with a reason — never another exception (which would reach
the worker's loop) and never a reading that breaks the store's rules."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.errors import DecodeError
from core.types import Reading
from ingest.decode import decode

NOW = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
SKEW_S = 600

topics = st.one_of(
    st.text(max_size=60),
    st.builds(
        "city/{}/{}".format,
        st.text(alphabet="abcxyz_0123-.", min_size=0, max_size=8),
        st.text(min_size=0, max_size=20),
    ),
    st.sampled_from(["city/air/aq-0001", "city/water/wl-camle", "city//x", "city/air/", "/"]),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
documents = st.dictionaries(
    st.one_of(st.sampled_from(["ts", "pm25", "pm10", "lat", "lon", "level"]), st.text(max_size=10)),
    json_values,
    max_size=6,
)
near_valid = st.fixed_dictionaries(
    {
        "ts": st.one_of(
            st.integers(min_value=NOW_MS - 10**12, max_value=NOW_MS + 10**9),
            st.sampled_from(["2026-11-28T12:00:00+07:00", "2026-11-28T12:00:00", "yesterday"]),
        )
    },
    optional={
        "pm25": st.one_of(st.floats(allow_nan=True, allow_infinity=True), json_scalars),
        "lat": st.floats(min_value=-100, max_value=100),
        "lon": st.floats(min_value=-200, max_value=200),
    },
)


def check(topic: str, payload: bytes) -> None:
    try:
        reading = decode(topic, payload, now=NOW, max_clock_skew_s=SKEW_S)
    except DecodeError as exc:
        reason = exc.reason
        if not reason.strip():
            raise AssertionError("a dead letter needs a reason") from exc
        return
    assert isinstance(reading, Reading)
    assert reading.ts.tzinfo is not None
    assert (reading.ts - NOW).total_seconds() <= SKEW_S
    assert reading.values, "a reading carries at least one metric"
    assert all(isinstance(v, float) and math.isfinite(v) for v in reading.values.values())
    assert (reading.lat is None) == (reading.lon is None)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=topics, payload=st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_another_exception(topic: str, payload: bytes) -> None:
    check(topic, payload)


@settings(max_examples=400, deadline=None)
@given(topic=topics, document=documents)
def test_arbitrary_json_objects(topic: str, document: dict[str, object]) -> None:
    check(topic, json.dumps(document, allow_nan=True).encode())


@settings(max_examples=400, deadline=None)
@given(document=near_valid)
@example(document={"ts": 795_842_000_000})  # found by this test: the seconds hint overflowed
def test_nearly_valid_readings(document: dict[str, object]) -> None:
    check("city/air/aq-0001", json.dumps(document, allow_nan=True).encode())
