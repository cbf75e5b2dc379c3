"""Which contract decodes a topic: ``ingest.contracts`` in order, the first whose template
fits. With the default single contract the router is a direct call."""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import ConfigError, DecodeError
from core.settings import IngestSettings
from ingest.contracts.common import Limits, shown
from ingest.contracts.gov import GovContract, UnitTags
from ingest.contracts.senml import SenmlContract
from ingest.decode import JsonContract
from ingest.topics import MAX_CACHED_TOPICS, TopicTemplate

Contract = JsonContract | SenmlContract | GovContract

_PLACEHOLDERS = {
    "json": (("{kind}", "{device_id}"), ()),
    "senml": (("{kind}",), ("{device_id}",)),
    "gov": (("{service}", "{unit_code}"), ()),
}


def limits_of(ingest: IngestSettings) -> Limits:
    return Limits(
        max_clock_skew_s=ingest.max_clock_skew_s,
        max_age_s=ingest.max_age_days * 86400.0,
        max_payload_bytes=ingest.max_payload_bytes,
    )


def build_contracts(ingest: IngestSettings, unit_tags: UnitTags | None) -> list[Contract]:
    """The decoders of ``ingest.contracts``; a gov contract needs ``unit_tags``."""
    limits = limits_of(ingest)
    contracts: list[Contract] = []
    for index, setting in enumerate(ingest.contracts):
        key = f"ingest.contracts.{index}.topic"
        required, optional = _PLACEHOLDERS[setting.format]
        if setting.kind is not None:
            required = tuple(p for p in required if p != "{kind}")
            optional = (*optional, "{kind}")
        template = TopicTemplate.parse(setting.topic, required, optional, key=key)
        if setting.format == "json":
            contracts.append(JsonContract(template, limits, setting.kind))
        elif setting.format == "senml":
            contracts.append(SenmlContract(template, limits, setting.kind))
        else:
            if unit_tags is None:
                raise ConfigError(key, setting.topic, "needs the hierarchy (format gov)")
            contracts.append(GovContract(template, limits, unit_tags))
    return contracts


class Router:
    """Finds the contract of a topic; DecodeError ``bad_topic`` when none fits."""

    def __init__(self, contracts: Sequence[Contract]) -> None:
        if not contracts:
            raise ValueError("a router needs at least one contract")
        self.contracts = tuple(contracts)
        self._only = contracts[0] if len(contracts) == 1 else None
        self._cache: dict[str, Contract] = {}

    def contract_for(self, topic: str) -> Contract:
        if self._only is not None:
            return self._only  # its template refuses a topic of another shape, with the reason
        contract = self._cache.get(topic)
        if contract is not None:
            return contract
        for candidate in self.contracts:
            if candidate.template.accepts(topic):
                if len(self._cache) >= MAX_CACHED_TOPICS:
                    self._cache.clear()
                self._cache[topic] = candidate
                return candidate
        templates = ", ".join(c.template.described for c in self.contracts)
        raise DecodeError(
            f"topic {shown(topic)} matches no message contract ({templates})", "bad_topic"
        )
