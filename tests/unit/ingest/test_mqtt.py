"""The MQTT 5 CONNECT settings and the client the production factory builds."""

from __future__ import annotations

from pathlib import Path

from paho.mqtt.enums import MQTTProtocolVersion

from core.settings import parse_settings
from ingest.fastmqtt import connect_properties, make_client


def test_connect_properties_keep_the_session_and_bound_in_flight(tmp_path: Path) -> None:
    settings = parse_settings(
        {"ingest": {"session_expiry_s": 3600, "max_in_flight": 500}}, environ={}, base_dir=tmp_path
    )
    properties = connect_properties(settings)
    assert properties.SessionExpiryInterval == 3600
    assert properties.ReceiveMaximum == 500


def test_factory_builds_the_requested_protocol(tmp_path: Path) -> None:
    settings = parse_settings({}, environ={}, base_dir=tmp_path)
    assert make_client(settings).protocol == MQTTProtocolVersion.MQTTv5
    fallback = make_client(settings, MQTTProtocolVersion.MQTTv311)
    assert fallback.protocol == MQTTProtocolVersion.MQTTv311


def test_configured_protocol_chooses_the_first_connect(tmp_path: Path) -> None:
    from ingest.mqtt import MqttSource

    def build(protocol: str) -> MqttSource:
        settings = parse_settings({"broker": {"protocol": protocol}}, environ={}, base_dir=tmp_path)
        return MqttSource(settings, lambda delivery: None)

    assert build("3.1.1").protocol == MQTTProtocolVersion.MQTTv311
    assert build("auto").protocol == MQTTProtocolVersion.MQTTv5
    assert build("5").protocol == MQTTProtocolVersion.MQTTv5
