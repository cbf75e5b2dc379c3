"""The demo's embedded amqtt broker, driven by real paho-mqtt 2.x clients on loopback."""

from __future__ import annotations

import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.errors import ConfigError
from ingest.broker import EmbeddedBroker, free_port

pytestmark = pytest.mark.integration

WAIT_S = 5.0
SYSTEM_MQTT_PORT = 1883  # held by the machine's own Mosquitto; the tests never touch it


class Client:
    """A paho client with its network thread, recording CONNACKs and messages."""

    def __init__(
        self,
        port: int,
        *,
        client_id: str | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311,
        clean_session: bool = True,
    ) -> None:
        self.port = port
        self.connacks: queue.Queue[str] = queue.Queue()
        self.subacks: queue.Queue[int] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        session = {} if protocol == MQTTProtocolVersion.MQTTv5 else {"clean_session": clean_session}
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
            protocol=protocol,
            **session,  # type: ignore[arg-type]
        )
        # The callbacks hold the queues, not self: no reference cycle, so paho's sockets are
        # closed when the client goes away rather than by a later garbage collection.
        connacks, subacks, messages = self.connacks, self.subacks, self.messages
        self.paho.on_connect = lambda _c, _u, _f, reason, _p: connacks.put(str(reason))
        self.paho.on_subscribe = lambda _c, _u, mid, _r, _p: subacks.put(mid)
        self.paho.on_message = lambda _c, _u, message: messages.put(message)

    def connect(self) -> str:
        self.paho.connect("127.0.0.1", self.port, keepalive=10)
        self.paho.loop_start()
        return self.connacks.get(timeout=WAIT_S)

    def subscribe(self, topic: str) -> None:
        _, mid = self.paho.subscribe(topic, qos=1)
        assert self.subacks.get(timeout=WAIT_S) == mid

    def publish(self, topic: str, payload: bytes) -> None:
        self.paho.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)

    def next_message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=WAIT_S)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """Clients a test opens; all closed at the end even when the test fails."""
    opened: list[Client] = []
    yield opened
    for client in opened:
        client.close()


def connected(clients: list[Client], port: int, **options: object) -> Client:
    client = Client(port, **options)  # type: ignore[arg-type]
    clients.append(client)
    assert client.connect() == "Success"
    return client


def test_it_listens_on_a_port_of_its_own_beside_the_system_broker(
    broker: EmbeddedBroker,
) -> None:
    assert broker.running
    assert broker.host == "127.0.0.1"
    assert broker.port != SYSTEM_MQTT_PORT


def test_a_qos1_message_reaches_a_mqtt311_subscriber(
    broker: EmbeddedBroker, clients: list[Client]
) -> None:
    subscriber = connected(clients, broker.port)
    subscriber.subscribe("city/air/+")
    publisher = connected(clients, broker.port)
    publisher.publish("city/air/aq-0001", b'{"ts": 1764300000000, "pm25": 35.2}')
    message = subscriber.next_message()
    assert message.topic == "city/air/aq-0001"
    assert message.payload == b'{"ts": 1764300000000, "pm25": 35.2}'
    assert message.qos == 1


def test_an_mqtt5_connect_is_refused_as_unsupported_so_clients_fall_back(
    broker: EmbeddedBroker, clients: list[Client]
) -> None:
    # amqtt speaks 3.1.1 only; ingest/mqtt.py retries with 3.1.1 on exactly this answer.
    client = Client(broker.port, protocol=MQTTProtocolVersion.MQTTv5)
    clients.append(client)
    assert client.connect() == "Unsupported protocol version"


def test_a_persistent_session_keeps_qos1_messages_while_the_subscriber_is_away(
    broker: EmbeddedBroker, clients: list[Client]
) -> None:
    client_id = f"worker-{uuid.uuid4().hex[:8]}"
    worker = connected(clients, broker.port, client_id=client_id, clean_session=False)
    worker.subscribe("city/water/#")
    worker.close()
    publisher = connected(clients, broker.port)
    publisher.publish("city/water/wl-camle", b'{"ts": 1764300000000, "level": 1.02}')
    back = connected(clients, broker.port, client_id=client_id, clean_session=False)
    message = back.next_message()
    assert (message.topic, message.payload) == (
        "city/water/wl-camle",
        b'{"ts": 1764300000000, "level": 1.02}',
    )


def test_two_brokers_run_side_by_side_without_sharing_messages(clients: list[Client]) -> None:
    with EmbeddedBroker() as first, EmbeddedBroker() as second:
        assert first.port != second.port
        on_first = connected(clients, first.port)
        on_second = connected(clients, second.port)
        for subscriber in (on_first, on_second):
            subscriber.subscribe("city/#")
        connected(clients, second.port).publish("city/air/aq-0002", b"second")
        connected(clients, first.port).publish("city/air/aq-0001", b"first")
        assert on_first.next_message().payload == b"first"
        assert on_second.next_message().payload == b"second"
        assert on_first.messages.empty()
        assert on_second.messages.empty()
        for client in clients:
            client.close()


def test_stop_closes_the_port_and_ends_the_thread() -> None:
    embedded = EmbeddedBroker(port=free_port())
    embedded.start()
    port = embedded.port
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S):
        pass
    started = time.monotonic()
    embedded.stop()
    assert time.monotonic() - started < WAIT_S
    assert not embedded.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    assert not [t for t in threading.enumerate() if t.name == f"cityops-broker-{port}"]
    embedded.stop()  # a second stop is harmless


def test_stop_while_clients_are_connected_is_clean(clients: list[Client]) -> None:
    embedded = EmbeddedBroker().start()
    subscriber = connected(clients, embedded.port, clean_session=False)
    subscriber.subscribe("city/#")
    connected(clients, embedded.port).publish("city/air/aq-0001", b"x")
    subscriber.next_message()
    embedded.stop()  # warnings or pending-task errors would fail the test (filterwarnings=error)
    assert not embedded.running


def test_a_port_already_taken_is_a_clear_error(broker: EmbeddedBroker) -> None:
    with pytest.raises(ConfigError, match=rf"broker\.port must be a free port.*{broker.port}"):
        EmbeddedBroker(port=broker.port).start()
    assert broker.running  # the broker holding the port is unharmed


def test_the_port_is_unknown_before_start_and_bad_ports_are_refused() -> None:
    with pytest.raises(RuntimeError, match="after start"):
        _ = EmbeddedBroker().port
    with pytest.raises(ConfigError, match=r"broker\.port must be an integer from 0 to 65535"):
        EmbeddedBroker(port=70000)
