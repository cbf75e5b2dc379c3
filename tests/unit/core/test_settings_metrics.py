"""The ingest self-metrics settings: defaults, null = off, and errors that name the key."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import parse_settings


def test_defaults_and_off() -> None:
    ingest = parse_settings({}, environ={}).ingest
    assert (ingest.metrics_host, ingest.metrics_port, ingest.metrics_interval_s) == (
        "127.0.0.1", 9464, 15.0,
    )  # fmt: skip
    off = parse_settings({}, environ={"CITYOPS_INGEST__METRICS_PORT": "null"}).ingest
    assert off.metrics_port is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("metrics_port", 70000, "ingest.metrics_port must be at most 65535: 70000"),
        ("metrics_port", "http", "ingest.metrics_port"),
        ("metrics_interval_s", 0.5, "ingest.metrics_interval_s must be at least 1.0: 0.5"),
        ("metrics_interval_s", 7200, "ingest.metrics_interval_s must be at most 3600.0: 7200"),
        ("metrics_host", "", "ingest.metrics_host"),
    ],
)
def test_bad_values_name_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_settings({"ingest": {key: value}}, environ={})
