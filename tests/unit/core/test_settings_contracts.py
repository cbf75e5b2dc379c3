"""ingest.contracts, max_age_days, max_payload_bytes, unassigned_max_devices: defaults keep
today's behaviour; every bad value names the key, the value and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ConfigError
from core.settings import ContractSettings, filter_covers, parse_settings


def ingest(**keys: Any) -> dict[str, Any]:
    return {"ingest": keys}


def test_defaults_are_todays_contract_and_bounds() -> None:
    settings = parse_settings({})
    assert settings.ingest.contracts == [
        ContractSettings(format="json", topic="city/{kind}/{device_id}")
    ]
    assert (settings.ingest.max_age_days, settings.ingest.max_payload_bytes) == (365, 65536)
    assert settings.ingest.unassigned_max_devices == 10_000


def test_three_contracts() -> None:
    settings = parse_settings(
        ingest(
            topics=["city/+/+", "gov/+/+", "lora/#"],
            contracts=[
                {"format": "json", "topic": "city/{kind}/{device_id}"},
                {"format": "senml", "topic": "lora/{device_id}", "kind": "air"},
                {"format": "gov", "topic": "gov/{service}/{unit_code}"},
            ],
        )
    )
    assert [c.format for c in settings.ingest.contracts] == ["json", "senml", "gov"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (ingest(contracts=[{"format": "xml"}]), "ingest.contracts.0.format must be"),
        (
            ingest(contracts=[{"format": "gov", "topic": "gov/{service}"}], topics=["gov/#"]),
            "ingest.contracts.0.topic must contain {unit_code} exactly once",
        ),
        (
            ingest(contracts=[{"format": "json", "topic": "lora/{device_id}"}]),
            "ingest.contracts.0.topic must contain {kind} exactly once",
        ),
        (
            ingest(contracts=[{"format": "json", "topic": "city/{kind}/{device_id}/{site}"}]),
            "may use only the placeholders {kind}, {device_id}: not {site}",
        ),
        (
            ingest(contracts=[{"format": "gov", "topic": "g/{service}/{unit_code}", "kind": "a"}]),
            "must not be combined with kind",
        ),
        (
            ingest(contracts=[{"format": "senml", "topic": "site/{device_id}/{kind}"}]),
            "ingest.contracts.0.topic is never received: add site/+/+",
        ),
        (ingest(contracts=[{"kind": "Air", "topic": "x/{device_id}"}]), "ingest.contracts.0.kind"),
        (ingest(max_age_days=0), "ingest.max_age_days must be at least 1: 0"),
        (ingest(max_payload_bytes=10), "ingest.max_payload_bytes must be at least 64: 10"),
        (ingest(unassigned_max_devices=-1), "ingest.unassigned_max_devices must be at least 0"),
    ],
)
def test_bad_values_name_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("outer", "inner", "covers"),
    [
        ("city/+/+", "city/+/+", True),
        ("#", "gov/+/+", True),
        ("gov/#", "gov/+/+", True),
        ("city/+/+", "city/+", False),
        ("city/air/+", "city/+/+", False),
        ("city/+", "city/+/+", False),
    ],
)
def test_filter_covers(outer: str, inner: str, covers: bool) -> None:
    assert filter_covers(outer, inner) is covers
