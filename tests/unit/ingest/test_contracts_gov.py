"""GovContract on the real 2025 hierarchy (Đà Nẵng scope), and the contract router."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.errors import ConfigError, DecodeError
from core.settings import IngestSettings, parse_settings
from core.types import Point
from ingest.contracts.common import Limits
from ingest.contracts.gov import GovContract
from ingest.contracts.router import Router, build_contracts
from ingest.enrich import Enricher, scoped_unit_tags
from ingest.topics import TopicTemplate
from layers.geography import Geography
from layers.registry import Device

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2025, 11, 28, 4, 0, tzinfo=UTC)
NOW_MS = 1764302400000


@pytest.fixture(scope="module")
def geography() -> Geography:
    return Geography.from_settings(parse_settings({}, base_dir=REPO))


@pytest.fixture
def gov(geography: Geography) -> GovContract:
    template = TopicTemplate.parse("gov/{service}/{unit_code}", ("{service}", "{unit_code}"))
    return GovContract(template, Limits(), scoped_unit_tags(geography))


def body(**fields: object) -> bytes:
    return json.dumps({"ts": NOW_MS, **fields}).encode()


def test_counters_of_a_commune_drill_down_like_sensor_data(gov: GovContract) -> None:
    points = gov.points(
        "gov/dossiers/20194", body(received=12, resolved=10, resolved_on_time=9, online=7), NOW
    )
    assert points == [
        Point(
            measurement="dossiers",
            tags={"device": "unit-20194", "province": "48", "commune": "20194"},
            fields={"received": 12.0, "resolved": 10.0, "resolved_on_time": 9.0, "online": 7.0},
            ts=NOW,
        )
    ]


def test_counters_of_the_province_itself(gov: GovContract) -> None:
    (point,) = gov.points("gov/dossiers/48", body(received=120), NOW)
    assert point.tags == {"device": "unit-48", "province": "48"}


@pytest.mark.parametrize(
    ("topic", "payload", "code", "reason"),
    [
        ("gov/dossiers/99999", body(received=1), "unknown_unit", "'99999'"),
        ("gov/dossiers/00004", body(received=1), "unknown_unit", "'00004'"),  # Hà Nội: off scope
        ("gov/Dossiers/20194", body(received=1), "bad_topic", "service"),
        ("gov/dossiers/20194/x", body(received=1), "bad_topic", "4 levels"),
        ("gov/dossiers/20194", body(received=-1), "out_of_range", "negative"),
        ("gov/dossiers/20194", body(received="12"), "not_numeric", "must be a number"),
        ("gov/dossiers/20194", body(), "no_metrics", "no counter"),
        ("gov/dossiers/20194", b'{"received": 1}', "no_ts", "no ts"),
        ("gov/dossiers/20194", body(received=1, lat=16.0), "bad_metric_name", "lat"),
        ("gov/dossiers/20194", b"[1]", "bad_shape", "JSON object"),
    ],
)
def test_refusals(gov: GovContract, topic: str, payload: bytes, code: str, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        gov.points(topic, payload, NOW)
    assert caught.value.code == code
    assert reason in caught.value.reason


def test_unknown_unit_is_checked_before_the_payload(gov: GovContract) -> None:
    with pytest.raises(DecodeError) as caught:
        gov.points("gov/dossiers/99999", b"\xff", NOW)
    assert caught.value.code == "unknown_unit"


THREE = IngestSettings.model_validate(
    {
        "topics": ["city/+/+", "gov/+/+", "lora/#"],
        "contracts": [
            {"format": "json", "topic": "city/{kind}/{device_id}"},
            {"format": "senml", "topic": "lora/{device_id}", "kind": "air"},
            {"format": "gov", "topic": "gov/{service}/{unit_code}"},
        ],
    }
)


def test_router_picks_the_contract_by_topic(geography: Geography) -> None:
    router = Router(build_contracts(THREE, scoped_unit_tags(geography)))
    assert router.contract_for("city/air/aq-1").format == "json"
    assert router.contract_for("lora/aq-1").format == "senml"
    assert router.contract_for("gov/dossiers/20194").format == "gov"
    with pytest.raises(DecodeError, match="matches no message contract") as caught:
        router.contract_for("other/x")
    assert caught.value.code == "bad_topic"


def test_gov_contract_needs_the_hierarchy() -> None:
    with pytest.raises(ConfigError, match=r"ingest\.contracts\.2\.topic"):
        build_contracts(THREE, None)


def test_enricher_runs_every_contract_end_to_end(geography: Geography) -> None:
    aq1 = Device(
        "aq-1", "air", "Trạm 1", 108.2, 16.0, "20194", {"province": "48", "commune": "20194"}
    )
    enricher = Enricher({"aq-1": aq1}, lambda *a: aq1, unit_tags=scoped_unit_tags(geography))
    sensor = enricher.points_for_message("city/air/aq-1", body(pm25=3), NOW, THREE)
    senml = enricher.points_for_message(
        "lora/aq-1", json.dumps([{"n": "pm25", "v": 4}]).encode(), NOW, THREE
    )
    counters = enricher.points_for_message("gov/dossiers/20194", body(received=1), NOW, THREE)
    assert [p.tags["commune"] for p in (*sensor, *senml, *counters)] == ["20194"] * 3
    assert [p.measurement for p in (*sensor, *senml, *counters)] == ["air", "air", "dossiers"]
    assert enricher.router(THREE) is enricher.router(THREE)  # built once per settings
