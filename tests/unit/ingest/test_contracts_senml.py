"""SenmlContract: RFC 8428 resolution (bn/bt/bv, relative times), device ids, refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import DecodeError
from ingest.contracts.common import Limits
from ingest.contracts.senml import SenmlContract, device_of, split_name
from ingest.topics import TopicTemplate

NOW = datetime(2025, 11, 28, 4, 0, tzinfo=UTC)
NOW_S = NOW.timestamp()
GATEWAY = SenmlContract(TopicTemplate.parse("lora/{kind}", ("{kind}",), ("{device_id}",)), Limits())
ONE_DEVICE = SenmlContract(
    TopicTemplate.parse("site/{device_id}/air/{kind}", ("{kind}",), ("{device_id}",)), Limits()
)
FIXED_KIND = SenmlContract(
    TopicTemplate.parse("lora/{device_id}", ("{device_id}",), ()), Limits(), kind="air"
)


def pack(*records: dict[str, object]) -> bytes:
    return json.dumps(list(records)).encode()


def test_rfc_example_with_base_name_and_base_time() -> None:
    readings = GATEWAY.decode(
        "lora/air",
        pack(
            {"bn": "urn:dev:ow:10e2073a01080063:", "bt": NOW_S - 60, "n": "pm25", "v": 35.2},
            {"n": "pm10", "v": 61},
            {"n": "pm25", "t": 30, "v": 36.0},
        ),
        NOW,
    )
    assert [(r.device_id, r.ts, dict(r.values)) for r in readings] == [
        ("10e2073a01080063", NOW - timedelta(seconds=60), {"pm25": 35.2, "pm10": 61.0}),
        ("10e2073a01080063", NOW - timedelta(seconds=30), {"pm25": 36.0}),
    ]
    assert all(r.kind == "air" for r in readings)


def test_relative_times_and_no_time_mean_now() -> None:
    readings = GATEWAY.decode(
        "lora/air",
        pack({"bn": "aq-1/", "n": "pm25", "v": 1}, {"n": "pm10", "t": -5, "v": 2}),
        NOW,
    )
    assert [(r.ts, dict(r.values)) for r in readings] == [
        (NOW, {"pm25": 1.0}),
        (NOW - timedelta(seconds=5), {"pm10": 2.0}),
    ]


def test_relative_base_time_plus_time() -> None:
    (reading,) = GATEWAY.decode(
        "lora/air", pack({"bn": "aq-1:", "bt": -120, "n": "pm25", "t": 60, "v": 3}), NOW
    )
    assert reading.ts == NOW - timedelta(seconds=60)


def test_base_value_is_added_and_alone_is_the_value() -> None:
    (reading,) = GATEWAY.decode(
        "lora/air",
        pack({"bn": "wl-1:", "bv": 10.0, "n": "level", "v": 0.25}, {"n": "temp"}),
        NOW,
    )
    assert dict(reading.values) == {"level": 10.25, "temp": 10.0}


def test_gateway_pack_with_several_devices_gives_a_reading_each() -> None:
    readings = GATEWAY.decode(
        "lora/air",
        pack(
            {"bn": "urn:dev:mac:0024befffe804ff1:", "n": "pm25", "v": 1},
            {"bn": "urn:dev:mac:0024befffe804ff2:", "n": "pm25", "v": 2},
        ),
        NOW,
    )
    assert [(r.device_id, r.values["pm25"]) for r in readings] == [
        ("0024befffe804ff1", 1.0),
        ("0024befffe804ff2", 2.0),
    ]


def test_topic_names_the_device_and_names_carry_only_metrics() -> None:
    (reading,) = ONE_DEVICE.decode(
        "site/aq-7/air/air", pack({"n": "pm25", "v": 1}, {"n": "pm10", "v": 2}), NOW
    )
    assert (reading.device_id, reading.kind, dict(reading.values)) == (
        "aq-7",
        "air",
        {"pm25": 1.0, "pm10": 2.0},
    )


def test_fixed_kind_from_the_configuration() -> None:
    (reading,) = FIXED_KIND.decode("lora/aq-9", pack({"n": "pm25", "v": 1}), NOW)
    assert (reading.kind, reading.device_id) == ("air", "aq-9")


def test_lat_lon_records_place_the_device() -> None:
    (reading,) = GATEWAY.decode(
        "lora/air",
        pack(
            {"bn": "bus-7:", "n": "pm25", "v": 1},
            {"n": "lat", "v": 16.07},
            {"n": "lon", "v": 108.15},
        ),
        NOW,
    )
    assert (reading.lat, reading.lon, dict(reading.values)) == (16.07, 108.15, {"pm25": 1.0})


def test_name_helpers() -> None:
    assert split_name("urn:dev:ow:10e2073a01080063:temp") == ("urn:dev:ow:10e2073a01080063", "temp")
    assert split_name("pm25") == ("", "pm25")
    assert device_of("urn:dev:ow:10e2073a01080063") == "10e2073a01080063"
    assert device_of("site1/aq-1") == "aq-1"


BAD = [
    pytest.param(b"{}", "bad_shape", "JSON array of records", id="object"),
    pytest.param(b"[]", "no_metrics", "no record", id="empty-pack"),
    pytest.param(b"[1]", "bad_shape", "record 0 must be a JSON object", id="record-not-object"),
    pytest.param(pack({"bn": "a:", "n": "pm2.5", "v": 1}), "bad_metric_name", "pm25", id="pm2.5"),
    pytest.param(pack({"bn": "a:", "n": "s", "vs": "on"}), "not_numeric", "string value (vs)",
                 id="vs"),
    pytest.param(pack({"bn": "a:", "n": "s", "vb": True}), "not_numeric", "(vb)", id="vb"),
    pytest.param(pack({"bn": "a:", "n": "s", "vd": "AQ"}), "not_numeric", "(vd)", id="vd"),
    pytest.param(pack({"bn": "a:", "n": "pm25", "v": "1"}), "not_numeric", "v must be a number",
                 id="v-string"),
    pytest.param(b'[{"bn": "a:", "n": "pm25", "v": NaN}]', "nan_or_inf", "finite", id="v-nan"),
    pytest.param(pack({"bn": "a:", "n": "pm25"}), "no_metrics", "no value", id="no-value"),
    pytest.param(pack({"bn": "a:", "n": "e", "s": 5}), "unsupported", "sum", id="sum-only"),
    pytest.param(pack({"n": "pm25", "v": 1}), "no_device", "says no device", id="no-device"),
    pytest.param(pack({"bn": "a b:", "n": "pm25", "v": 1}), "bad_metric_name", "not a SenML name",
                 id="space-in-name"),
    pytest.param(pack({"bn": "a:", "n": "pm25", "v": 1, "t": 1.0e9}), "ts_past", "days old",
                 id="too-old"),
    pytest.param(pack({"bn": "a:", "n": "pm25", "v": 1, "t": 3600}), "ts_future", "in the future",
                 id="future"),
    pytest.param(pack({"bn": "a:", "n": "pm25", "v": 1, "t": "now"}), "bad_ts", "t must be",
                 id="t-string"),
    pytest.param(pack({"bn": "a:", "n": "pm25", "v": 1, "t": 1e300}), "bad_ts", "out of range",
                 id="t-huge"),
    pytest.param(pack({"bn": "a:", "n": "pm25", "v": 1}, {"n": "pm25", "v": 2}), "duplicate_key",
                 "second value", id="same-metric-same-time"),
    pytest.param(b'[{"bn": "a:", "n": "pm25", "v": 1, "v": 2}]', "duplicate_key", "twice",
                 id="duplicate-key"),
    pytest.param(pack({"bn": "a:", "n": "pm25", "v": 1, "bver": 11}), "unsupported", "version",
                 id="bver"),
    pytest.param(pack({"bn": "a:", "n": "pm25", "v": 1, "x_": 1}), "unsupported",
                 "must-understand", id="must-understand"),
    pytest.param(pack({"bn": 7, "n": "pm25", "v": 1}), "bad_shape", "bn must be a string",
                 id="bn-number"),
    pytest.param(pack({"bn": "a:", "n": "lat", "v": 16}, {"n": "pm25", "v": 1}), "bad_position",
                 "lat but not lon", id="lat-only"),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "code", "reason"), BAD)
def test_refusals_have_a_code_and_a_reason(payload: bytes, code: str, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        GATEWAY.decode("lora/air", payload, NOW)
    assert (caught.value.code, reason in caught.value.reason) == (code, True), caught.value.reason


def test_unknown_fields_without_underscore_are_ignored_as_the_rfc_says() -> None:
    (reading,) = GATEWAY.decode(
        "lora/air", pack({"bn": "a:", "n": "pm25", "v": 1, "u": "ug/m3", "ut": 60, "x": 1}), NOW
    )
    assert dict(reading.values) == {"pm25": 1.0}


def test_one_device_topic_refuses_a_pack_of_several_devices() -> None:
    with pytest.raises(DecodeError, match="several devices") as caught:
        ONE_DEVICE.decode(
            "site/aq-7/air/air",
            pack({"bn": "x:", "n": "pm25", "v": 1}, {"bn": "y:", "n": "pm25", "v": 2}),
            NOW,
        )
    assert caught.value.code == "bad_shape"


def test_bad_topic_has_its_code() -> None:
    with pytest.raises(DecodeError) as caught:
        GATEWAY.decode("lora/Air", pack({"bn": "a:", "n": "pm25", "v": 1}), NOW)
    assert caught.value.code == "bad_topic"
