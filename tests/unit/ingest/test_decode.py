"""decode(): every refusal reason, and the payloads the contract accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import DECODE_CODES, DecodeError, reason_code
from ingest.decode import MAX_PAYLOAD_BYTES, decode, parse_ts

NOW = datetime(2025, 11, 28, 4, 0, tzinfo=UTC)
NOW_MS = 1764302400000  # NOW in epoch milliseconds
SKEW_S = 600
TOPIC = "city/air/aq-0001"


def run(payload: bytes | str | dict[str, object], topic: str = TOPIC):
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return decode(topic, payload, now=NOW, max_clock_skew_s=SKEW_S)


def test_now_ms_constant_matches_now() -> None:
    assert datetime.fromtimestamp(NOW_MS / 1000, UTC) == NOW


def test_epoch_ms_payload() -> None:
    reading = run({"ts": NOW_MS - 60_000, "pm25": 35.2, "pm10": 61})
    assert reading.kind == "air"
    assert reading.device_id == "aq-0001"
    assert reading.ts == NOW - timedelta(minutes=1)
    assert reading.ts.tzinfo is UTC
    assert dict(reading.values) == {"pm25": 35.2, "pm10": 61.0}
    assert all(type(value) is float for value in reading.values.values())
    assert reading.lat is None
    assert reading.lon is None


def test_epoch_ms_and_iso_with_offset_give_the_same_instant() -> None:
    by_ms = run({"ts": 1764300000000, "pm25": 1})
    by_iso = run({"ts": "2025-11-28T10:20:00+07:00", "pm25": 1})
    by_zulu = run({"ts": "2025-11-28T03:20:00Z", "pm25": 1})
    assert by_ms.ts == by_iso.ts == by_zulu.ts == datetime(2025, 11, 28, 3, 20, tzinfo=UTC)
    assert by_iso.ts.utcoffset() == timedelta(0)


def test_milliseconds_are_kept_exactly() -> None:
    reading = run({"ts": 1764302399123, "pm25": 1})
    assert reading.ts == datetime(2025, 11, 28, 3, 59, 59, 123000, tzinfo=UTC)


def test_position_is_decoded() -> None:
    reading = run({"ts": NOW_MS, "pm25": 5, "lat": 16.0678, "lon": 108.2208})
    assert (reading.lat, reading.lon) == (16.0678, 108.2208)
    assert "lat" not in reading.values
    assert "lon" not in reading.values


def test_ts_within_the_allowed_skew_is_accepted() -> None:
    assert run({"ts": NOW_MS + SKEW_S * 1000, "pm25": 1}).ts == NOW + timedelta(seconds=SKEW_S)


def test_other_template_kinds_and_device_ids() -> None:
    reading = run({"ts": NOW_MS, "level": 1.25}, topic="city/water/wl-camle.2_B")
    assert (reading.kind, reading.device_id, dict(reading.values)) == (
        "water",
        "wl-camle.2_B",
        {"level": 1.25},
    )


BAD_PAYLOADS = [
    pytest.param(b"\xff\xfe{}", "not UTF-8: byte 0xff at offset 0", id="not-utf8"),
    pytest.param(b"", "payload is empty", id="empty"),
    pytest.param(b'{"ts": 1,', "not JSON: Expecting property name", id="truncated-json"),
    pytest.param(
        b'{"ts": 1,\n "pm25": }', "Expecting value at line 2 column 10", id="json-line-col"
    ),
    pytest.param(b"[1, 2]", "must be a JSON object, not an array", id="array"),
    pytest.param(b'"hello"', "must be a JSON object, not a string", id="string"),
    pytest.param(b"null", "must be a JSON object, not null", id="null"),
    pytest.param({"pm25": 1}, "payload has no ts", id="missing-ts"),
    pytest.param(b'{"ts": NaN, "pm25": 1}', "ts must be a finite number: nan", id="ts-nan"),
    pytest.param({"ts": True, "pm25": 1}, "ts must be epoch milliseconds", id="ts-bool"),
    pytest.param({"ts": None, "pm25": 1}, "ts must be epoch milliseconds", id="ts-null"),
    pytest.param({"ts": [1], "pm25": 1}, "not an array", id="ts-array"),
    pytest.param({"ts": 1764302400000.5, "pm25": 1}, "whole epoch milliseconds", id="ts-float"),
    pytest.param({"ts": 10**30, "pm25": 1}, "out of range", id="ts-overflow"),
    pytest.param({"ts": -5, "pm25": 1}, "before 2000-01-01", id="ts-negative"),
    pytest.param({"ts": 0, "pm25": 1}, "device clock not set", id="ts-zero"),
    pytest.param(
        {"ts": 1764302400, "pm25": 1}, "epoch seconds instead of milliseconds", id="ts-seconds"
    ),
    pytest.param(
        {"ts": "2025-11-28T10:00:00", "pm25": 1}, "has no UTC offset", id="iso-without-offset"
    ),
    pytest.param({"ts": "2025-11-28", "pm25": 1}, "has no UTC offset", id="iso-date-only"),
    pytest.param({"ts": "yesterday", "pm25": 1}, "not an ISO-8601", id="iso-garbage"),
    pytest.param(
        {"ts": NOW_MS + (SKEW_S + 1) * 1000, "pm25": 1},
        "601 s in the future (more than max_clock_skew_s = 600)",
        id="ts-future",
    ),
    pytest.param(
        {"ts": "2025-11-28T12:00:00+07:00", "pm25": 1}, "3600 s in the future", id="iso-future"
    ),
    pytest.param({"ts": NOW_MS}, "no numeric metric", id="no-metric"),
    pytest.param({"ts": NOW_MS, "lat": 16, "lon": 108}, "no numeric metric", id="only-position"),
    pytest.param({"ts": NOW_MS, "pm25": True}, "'pm25' must be a number, not a boolean", id="bool"),
    pytest.param({"ts": NOW_MS, "pm25": "35"}, "'pm25' must be a number, not a string", id="str"),
    pytest.param({"ts": NOW_MS, "pm25": None}, "'pm25' must be a number, not null", id="null"),
    pytest.param({"ts": NOW_MS, "pm25": {"v": 1}}, "not an object", id="nested"),
    pytest.param(b'{"ts": 1764302400000, "pm25": Infinity}', "finite number: inf", id="inf"),
    pytest.param(b'{"ts": 1764302400000, "pm25": NaN}', "'pm25' must be a finite", id="nan"),
    pytest.param(
        {"ts": NOW_MS, "pm25": 1, "note": "ok"}, "'note' must be a number", id="extra-string-key"
    ),
    pytest.param({"ts": NOW_MS, "pm 25": 1}, "metric name 'pm 25' is not allowed", id="bad-name"),
    pytest.param({"ts": NOW_MS, "time": 1}, "metric name 'time' is not allowed", id="time-key"),
    pytest.param(b'{"ts": 1764302400000, "pm25": 1, "pm25": 2}', "'pm25' twice", id="dup-key"),
    pytest.param({"ts": NOW_MS, "pm25": 1, "lat": 16.0}, "has lat but not lon", id="lat-only"),
    pytest.param({"ts": NOW_MS, "pm25": 1, "lon": 108.0}, "has lon but not lat", id="lon-only"),
    pytest.param(
        {"ts": NOW_MS, "pm25": 1, "lat": 91, "lon": 108}, "lat must be between -90", id="lat-range"
    ),
    pytest.param(
        {"ts": NOW_MS, "pm25": 1, "lat": 16, "lon": -181},
        "lon must be between -180",
        id="lon-range",
    ),
    pytest.param(
        {"ts": NOW_MS, "pm25": 1, "lat": "16", "lon": 108}, "lat must be a finite", id="lat-str"
    ),
    pytest.param(
        b'{"ts": 1764302400000, "pm25": 1, "lat": NaN, "lon": 108}',
        "lat must be a finite",
        id="lat-nan",
    ),
]


@pytest.mark.parametrize(("payload", "reason"), BAD_PAYLOADS)
def test_bad_payload_is_refused_with_its_reason(payload: bytes | dict[str, object], reason: str):
    with pytest.raises(DecodeError) as caught:
        run(payload)
    assert reason in caught.value.reason
    assert str(caught.value) == caught.value.reason


BAD_TOPICS = [
    pytest.param("city/air", "2 levels instead of 3", id="short"),
    pytest.param("city/air/aq-1/extra", "4 levels instead of 3", id="long"),
    pytest.param("town/air/aq-1", "'town' instead of 'city'", id="prefix"),
    pytest.param("city/Air/aq-1", "kind 'Air'", id="kind-case"),
    pytest.param("city//aq-1", "kind ''", id="kind-empty"),
    pytest.param("city/air/aq 1", "device id 'aq 1' has illegal characters", id="space"),
    pytest.param("city/air/aq;1", "illegal characters", id="semicolon"),
    pytest.param("city/air/-aq1", "illegal characters", id="leading-dash"),
    pytest.param("city/air/trạm-1", "illegal characters", id="non-ascii"),
    pytest.param("city/air/" + "a" * 65, "illegal characters", id="too-long"),
    pytest.param("city/air/", "illegal characters", id="empty-id"),
]


@pytest.mark.parametrize(("topic", "reason"), BAD_TOPICS)
def test_topic_outside_the_contract_is_refused(topic: str, reason: str) -> None:
    with pytest.raises(DecodeError, match="topic") as caught:
        run({"ts": NOW_MS, "pm25": 1}, topic=topic)
    assert reason in caught.value.reason


def test_topic_is_checked_before_the_payload() -> None:
    with pytest.raises(DecodeError, match="does not match city/<kind>/<device_id>"):
        run(b"\xff", topic="other/topic")


def test_payload_larger_than_the_limit_is_refused() -> None:
    big = json.dumps({"ts": NOW_MS, "pm25": 1, "pad": "x" * MAX_PAYLOAD_BYTES}).encode()
    with pytest.raises(DecodeError, match=f"more than {MAX_PAYLOAD_BYTES}"):
        run(big)


def test_deeply_nested_json_is_refused_not_crashing() -> None:
    with pytest.raises(DecodeError, match="not JSON"):
        run(b"[" * 20_000 + b"]" * 20_000)


def test_parse_ts_converts_any_offset_to_utc() -> None:
    ts = parse_ts("2025-11-27T20:00:00-05:00", now=NOW, max_clock_skew_s=SKEW_S)
    assert ts == datetime(2025, 11, 28, 1, 0, tzinfo=UTC)


CODES = [
    (b"\xff\xfe{}", "bad_utf8"),
    (b"", "empty"),
    (b'{"ts": 1,', "not_json"),
    (b"[1, 2]", "bad_shape"),
    ({"pm25": 1}, "no_ts"),
    ({"ts": "yesterday", "pm25": 1}, "bad_ts"),
    ({"ts": 10**30, "pm25": 1}, "bad_ts"),
    ({"ts": NOW_MS + (SKEW_S + 1) * 1000, "pm25": 1}, "ts_future"),
    ({"ts": 0, "pm25": 1}, "ts_past"),
    ({"ts": NOW_MS - 366 * 86_400_000, "pm25": 1}, "ts_past"),
    ({"ts": NOW_MS, "pm25": "35"}, "not_numeric"),
    (b'{"ts": 1764302400000, "pm25": NaN}', "nan_or_inf"),
    (b'{"ts": 1764302400000, "pm25": ' + b"9" * 400 + b"}", "nan_or_inf"),
    ({"ts": NOW_MS}, "no_metrics"),
    ({"ts": NOW_MS, "pm 25": 1}, "bad_metric_name"),
    ({"ts": NOW_MS, "pm25": 1, "lat": 16.0}, "bad_position"),
    (b'{"ts": 1764302400000, "pm25": 1, "pm25": 2}', "duplicate_key"),
]


@pytest.mark.parametrize(("payload", "code"), CODES)
def test_every_refusal_has_a_stable_code(payload: bytes | dict[str, object], code: str) -> None:
    with pytest.raises(DecodeError) as caught:
        run(payload)
    assert caught.value.code == code
    assert code in DECODE_CODES
    assert reason_code(caught.value) == code


def test_reason_code_of_a_bug_is_internal() -> None:
    assert reason_code(KeyError("x")) == "internal"


def test_topic_refusal_has_the_bad_topic_code() -> None:
    with pytest.raises(DecodeError) as caught:
        run({"ts": NOW_MS, "pm25": 1}, topic="city/Air/aq-1")
    assert caught.value.code == "bad_topic"


def test_reading_older_than_max_age_is_refused_and_the_bound_is_configurable() -> None:
    old = json.dumps({"ts": NOW_MS - 400 * 86_400_000, "pm25": 1}).encode()
    with pytest.raises(DecodeError, match="400 days old"):
        run(old)
    reading = decode(TOPIC, old, now=NOW, max_clock_skew_s=SKEW_S, max_age_s=500 * 86400.0)
    assert reading.ts == NOW - timedelta(days=400)


def test_payload_bound_is_configurable() -> None:
    payload = json.dumps({"ts": NOW_MS, "pm25": 1}).encode()
    with pytest.raises(DecodeError) as caught:
        decode(TOPIC, payload, now=NOW, max_clock_skew_s=SKEW_S, max_payload_bytes=10)
    assert caught.value.code == "too_large"


# orjson keeps the last of duplicate keys; these must still be refused (the fast path's count
# of ':' must not be fooled by spaces, colons inside strings or escapes).
DUPLICATES = [
    b'{"ts": 1764302400000, "pm25" :1, "pm25":2}',
    b'{"ts": 1764302400000, "pm25": 1, "pm25": 2, "x": "a:b"}',
    b'{"ts": "2025-11-28T11:00:00+07:00", "pm25": 1, "pm25": 2}',
    b'{"ts": 1764302400000, "pm25": 1, "pm\\u0032\\u0035": 2}',
    b'{"ts": 1764302400000, "a:b": 1, "pm25": 1, "pm25": 2}',
    b'{"ts": 1764302400000, "pm25": {"v": 1, "v": 2}}',
]


@pytest.mark.parametrize("payload", DUPLICATES)
def test_duplicate_keys_are_refused_whatever_the_spelling(payload: bytes) -> None:
    with pytest.raises(DecodeError, match="twice") as caught:
        run(payload)
    assert caught.value.code == "duplicate_key"


def test_iso_timestamp_with_colons_takes_the_fast_path_correctly() -> None:
    reading = run(b'{"ts": "2025-11-28T11:00:00+07:00", "pm25": 1, "note_x": 2}')
    assert dict(reading.values) == {"pm25": 1.0, "note_x": 2.0}
