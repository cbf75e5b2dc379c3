"""Fuzzing the SenML and gov contracts (and the router): whatever bytes arrive on whatever
topic, only DecodeError may escape, always with a reason and a known code, and what is
accepted obeys the store's rules."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.errors import DECODE_CODES, DecodeError
from core.settings import IngestSettings
from ingest.contracts.router import Router, build_contracts
from ingest.topics import DEVICE_ID_PATTERN, KIND_PATTERN

NOW = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
NOW_S = NOW.timestamp()
UNITS = {"48": {"province": "48"}, "20194": {"province": "48", "commune": "20194"}}
INGEST = IngestSettings.model_validate(
    {
        "topics": ["#"],
        "contracts": [
            {"format": "json", "topic": "city/{kind}/{device_id}"},
            {"format": "senml", "topic": "lora/{kind}"},
            {"format": "senml", "topic": "site/{device_id}/{kind}"},
            {"format": "gov", "topic": "gov/{service}/{unit_code}"},
        ],
    }
)
ROUTER = Router(build_contracts(INGEST, UNITS.get))

topics = st.one_of(
    st.text(max_size=40),
    st.builds("lora/{}".format, st.text(alphabet="airxyz_-/", max_size=6)),
    st.builds("gov/{}/{}".format, st.text(alphabet="dosier_A", max_size=8), st.text(max_size=6)),
    st.sampled_from(["lora/air", "site/aq-1/air", "gov/dossiers/20194", "gov/dossiers/48"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
senml_records = st.dictionaries(
    st.sampled_from(["bn", "bt", "bv", "bver", "n", "v", "vs", "vb", "vd", "s", "t", "u", "x_"]),
    st.one_of(
        scalars,
        st.sampled_from(["urn:dev:ow:10e2073a01080063:", "aq-1/", "pm25", "pm2.5", "lat", "lon"]),
        st.floats(min_value=NOW_S - 10**8, max_value=NOW_S + 10**4),
        st.floats(min_value=-(2**29), max_value=2**29),
    ),
    max_size=6,
)
packs = st.lists(senml_records, max_size=6)
gov_documents = st.dictionaries(
    st.one_of(st.sampled_from(["ts", "received", "resolved", "lat"]), st.text(max_size=8)),
    st.one_of(scalars, st.integers(min_value=1764300000000, max_value=1764300000000 + 10**11)),
    max_size=5,
)


def check(topic: str, payload: bytes) -> None:
    try:
        contract = ROUTER.contract_for(topic)
        if contract.format == "gov":
            points = contract.points(topic, payload, NOW)  # type: ignore[union-attr]
            readings = []
        else:
            readings = contract.decode(topic, payload, NOW)  # type: ignore[union-attr]
            points = []
    except DecodeError as exc:
        refused = exc
    else:
        refused = None
    if refused is not None:
        assert refused.reason.strip(), "a dead letter needs a reason"
        assert refused.code in DECODE_CODES, refused.code
        return
    for reading in readings:
        assert KIND_PATTERN.fullmatch(reading.kind)
        assert DEVICE_ID_PATTERN.fullmatch(reading.device_id)
        assert reading.values
        assert all(type(v) is float and math.isfinite(v) for v in reading.values.values())
        assert (reading.ts - NOW).total_seconds() <= INGEST.max_clock_skew_s
        assert (reading.lat is None) == (reading.lon is None)
    for point in points:
        assert point.fields
        assert all(type(v) is float and v >= 0 and math.isfinite(v) for v in point.fields.values())
        assert point.tags["device"].startswith("unit-")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=topics, payload=st.binary(max_size=300))
def test_arbitrary_bytes(topic: str, payload: bytes) -> None:
    check(topic, payload)


@settings(max_examples=400, deadline=None)
@given(topic=st.sampled_from(["lora/air", "site/aq-1/air", "lora/Air"]), pack=packs)
@example(topic="lora/air", pack=[{"bn": "a:", "n": "pm25", "v": 1, "t": 1e300}])
@example(topic="lora/air", pack=[{"bn": "a:", "n": "pm25", "v": 1e308, "bv": 1e308}])
def test_senml_packs(topic: str, pack: list[dict[str, object]]) -> None:
    check(topic, json.dumps(pack, allow_nan=True).encode())


@settings(max_examples=400, deadline=None)
@given(
    topic=st.sampled_from(["gov/dossiers/20194", "gov/dossiers/48", "gov/x/999", "gov/A/48"]),
    document=gov_documents,
)
def test_gov_documents(topic: str, document: dict[str, object]) -> None:
    check(topic, json.dumps(document, allow_nan=True).encode())


@settings(max_examples=200, deadline=None)
@given(document=st.dictionaries(st.text(max_size=6), scalars, max_size=5))
def test_json_contract_codes_are_known(document: dict[str, object]) -> None:
    check("city/air/aq-1", json.dumps(document, allow_nan=True).encode())
