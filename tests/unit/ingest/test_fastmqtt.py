"""BufferedClient's read and PUBACK paths on a real local socket pair (no broker): packets
split anywhere, MQTT 5 properties skipped, QoS 2 and topic aliases left to paho."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from ingest.fastmqtt import BufferedClient


def remaining(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def publish(topic: bytes, payload: bytes, *, qos: int, mid: int = 0, v5: bool = True,
            properties: bytes = b"", flags: int = 0) -> bytes:  # fmt: skip
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    if v5:
        body += remaining(len(properties)) + properties
    body += payload
    return bytes((0x30 | qos << 1 | flags,)) + remaining(len(body)) + body


Raw = tuple[bytes, bytes, int, int]


@pytest.fixture
def pair() -> Iterator[tuple[BufferedClient, socket.socket, list[Raw]]]:
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    client = BufferedClient(
        CallbackAPIVersion.VERSION2, client_id="t", protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=True,
    )  # fmt: skip
    got: list[Raw] = []
    client.on_raw_publish = lambda *raw: got.append(raw)
    client._sock = ours
    yield client, broker, got
    ours.close()
    broker.close()


def read_all(client: BufferedClient) -> None:
    while client._packet_read() == MQTTErrorCode.MQTT_ERR_SUCCESS:
        pass


def test_every_packet_of_a_chunk_is_handled_whatever_the_split(
    pair: tuple[BufferedClient, socket.socket, list[Raw]],
) -> None:
    client, broker, got = pair
    big = b"x" * 300  # a two-byte remaining length
    stream = b"".join(
        [
            publish(b"city/air/a1", b'{"pm25": 1}', qos=1, mid=1),
            publish(b"city/air/a2", big, qos=1, mid=2, properties=b"\x01\x01"),  # format ind.
            publish(b"city/air/a3", b"", qos=0),
            publish(b"city/air/a4", b"4", qos=1, mid=65535, flags=0x08 | 0x01),  # DUP, RETAIN
        ]
    )
    expected = [
        (b"city/air/a1", b'{"pm25": 1}', 1, 1),
        (b"city/air/a2", big, 2, 1),
        (b"city/air/a3", b"", 0, 0),
        (b"city/air/a4", b"4", 65535, 1),
    ]
    for cut in range(1, len(stream)):
        got.clear()
        broker.sendall(stream[:cut])
        read_all(client)
        broker.sendall(stream[cut:])
        read_all(client)
        assert got == expected, f"split at byte {cut}"


def test_mqtt_311_has_no_properties(pair: tuple[BufferedClient, socket.socket, list[Raw]]) -> None:
    client, broker, got = pair
    client._protocol = MQTTProtocolVersion.MQTTv311
    broker.sendall(publish(b"t/1", b"\x00\x01", qos=1, mid=7, v5=False))
    read_all(client)
    assert got == [(b"t/1", b"\x00\x01", 7, 1)]


def test_qos2_and_topic_alias_go_to_paho(
    pair: tuple[BufferedClient, socket.socket, list[Raw]],
) -> None:
    client, broker, got = pair
    seen: list[mqtt.MQTTMessage] = []
    client.on_message = lambda _c, _u, message: seen.append(message)
    # QoS 2: paho answers PUBREC and keeps it until PUBREL
    broker.sendall(publish(b"t/2", b"two", qos=2, mid=9))
    read_all(client)
    client.loop_write()
    assert broker.recv(16) == b"\x50\x02\x00\x09"  # PUBREC mid 9
    broker.sendall(b"\x62\x02\x00\x09")  # PUBREL
    read_all(client)
    assert [(m.topic, m.payload, m.qos) for m in seen] == [("t/2", b"two", 2)]
    # an empty topic (alias) is not ours to resolve; paho drops it: nothing reaches us
    broker.sendall(publish(b"", b"aliased", qos=0, properties=b"\x23\x00\x01"))
    read_all(client)
    assert got == []


def test_malformed_remaining_length_drops_the_connection(
    pair: tuple[BufferedClient, socket.socket, list[Raw]],
) -> None:
    client, broker, got = pair
    broker.sendall(b"\x30\xff\xff\xff\xff\x01")
    assert client._packet_read() == MQTTErrorCode.MQTT_ERR_PROTOCOL
    assert got == []


def test_pubacks_go_out_in_order_in_one_write(
    pair: tuple[BufferedClient, socket.socket, list[Raw]],
) -> None:
    client, broker, _ = pair
    for mid in (1, 2, 300):
        client.queue_puback(mid)
    assert client.flush_pubacks() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert broker.recv(64) == b"\x40\x02\x00\x01\x40\x02\x00\x02\x40\x02\x01\x2c"
    assert client.flush_pubacks() == MQTTErrorCode.MQTT_ERR_SUCCESS  # nothing left


def test_pubacks_of_a_lost_connection_are_never_sent(
    pair: tuple[BufferedClient, socket.socket, list[Raw]],
) -> None:
    client, _broker, _ = pair
    client.queue_puback(5)
    replacement, other_end = socket.socketpair()
    client._sock = replacement
    try:
        assert client.flush_pubacks() == MQTTErrorCode.MQTT_ERR_NO_CONN
        client.queue_puback(6)
        client.flush_pubacks()
        assert other_end.recv(64) == b"\x40\x02\x00\x06"
    finally:
        replacement.close()
        other_end.close()


def test_the_paho_internals_we_override_still_exist() -> None:
    # A paho upgrade that renames these would silently bypass the fast path.
    for name in ("_packet_read", "_packet_handle", "_packet_queue", "_sock_recv", "_in_packet"):
        assert hasattr(mqtt.Client(CallbackAPIVersion.VERSION2), name), name
