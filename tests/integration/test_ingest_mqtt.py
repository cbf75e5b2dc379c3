"""MqttSource against real Mosquitto: callback errors never stop the loop, shared
subscriptions split the stream, the broker may start after the worker."""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.settings import Settings, parse_settings
from ingest.mqtt import Delivery, MqttSource
from tests.fixtures.mosquitto import (
    MOSQUITTO,
    MosquittoServer,
    free_port,
    mosquitto_config,
    mqtt_answers,
)

pytestmark = pytest.mark.integration

WAIT_S = 10.0


def settings_for(host: str, port: int, tmp_path: Path, **ingest: object) -> Settings:
    return parse_settings(
        {
            "broker": {"host": host, "port": port, "keepalive_s": 10},
            "ingest": {"client_id": f"test-source-{uuid.uuid4().hex[:8]}", **ingest},
        },
        environ={},
        base_dir=tmp_path,
    )


def poll_until(
    sources: list[MqttSource], check: Callable[[], bool], what: str, timeout_s: float = WAIT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for source in sources:
            source.poll(0.02)
        if check():
            return
    pytest.fail(f"not within {timeout_s} s: {what}")


@pytest.fixture
def publisher(mosquitto: MosquittoServer) -> Iterator[Callable[[str, bytes], None]]:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"test-publisher-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.connect(mosquitto.host, mosquitto.port, keepalive=10)
    client.loop_start()

    def publish(topic: str, payload: bytes) -> None:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published()

    yield publish
    client.disconnect()
    client.loop_stop()


@pytest.mark.allow_logged_exceptions
def test_exception_in_a_callback_is_logged_counted_and_the_loop_goes_on(
    mosquitto: MosquittoServer,
    publisher: Callable[[str, bytes], None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[Delivery] = []

    def on_delivery(delivery: Delivery) -> None:
        if delivery.payload == b"boom":
            raise RuntimeError("bug while handling a message")
        received.append(delivery)

    source = MqttSource(settings_for(mosquitto.host, mosquitto.port, tmp_path), on_delivery)
    source.open()
    try:
        poll_until([source], lambda: source.ready, "connected and subscribed")
        publisher("city/air/aq-1", b"boom")
        publisher("city/air/aq-1", b"after")
        poll_until([source], lambda: len(received) == 1, "the message after the failing one")
        assert received[0].payload == b"after"
        assert received[0].topic == "city/air/aq-1"
        assert received[0].qos == 1
        assert received[0].connection == source.connection == 1
        assert source.callback_errors == 1
        assert source.ack(received[0])
    finally:
        source.close()
    errors = [r for r in caplog.records if r.name == "cityops.ingest" and r.exc_info]
    assert [r.getMessage() for r in errors] == ["MQTT callback on_message failed"]


def test_shared_subscription_splits_messages_between_workers(
    mosquitto: MosquittoServer, publisher: Callable[[str, bytes], None], tmp_path: Path
) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    received: dict[int, list[bytes]] = {0: [], 1: []}
    sources: list[MqttSource] = []
    for index in (0, 1):
        settings = settings_for(mosquitto.host, mosquitto.port, tmp_path, shared_group=group)
        source = MqttSource(
            settings,
            lambda delivery, index=index: received[index].append(delivery.payload),
        )
        source.open()
        sources.append(source)
    try:
        poll_until(sources, lambda: all(s.ready for s in sources), "both subscribed")
        sent = [f"m{n}".encode() for n in range(20)]
        for payload in sent:
            publisher("city/air/aq-1", payload)
        poll_until(sources, lambda: len(received[0]) + len(received[1]) >= 20, "all 20 messages")
        for _ in range(10):  # and no duplicates arriving late
            for source in sources:
                source.poll(0.02)
        assert sorted(received[0] + received[1]) == sorted(sent)
        assert received[0]
        assert received[1]
    finally:
        for source in sources:
            source.close()


def test_source_connects_once_the_broker_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    source = MqttSource(settings_for("127.0.0.1", port, tmp_path), lambda delivery: None)
    source.open()
    process: subprocess.Popen[bytes] | None = None
    try:
        with caplog.at_level(logging.WARNING, logger="cityops.ingest"):
            source.poll(0.05)
        assert not source.ready
        assert any("connection down" in r.getMessage() for r in caplog.records)
        config = tmp_path / "late.conf"
        config.write_text(mosquitto_config(port))
        process = subprocess.Popen(
            [str(MOSQUITTO), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT_S
        while not mqtt_answers("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.05)
        poll_until([source], lambda: source.ready, "connected after the broker started")
        assert source.connects == 1
        assert source.protocol == MQTTProtocolVersion.MQTTv5
    finally:
        source.close()
        if process is not None:
            process.terminate()
            process.wait(timeout=5)
