"""The Simulator publishing over real brokers (the embedded amqtt and a private Mosquitto),
with a paho subscriber receiving every device's message of a round."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.errors import RetryableError
from core.settings import Settings, load_settings
from ingest.broker import EmbeddedBroker, free_port
from ingest.decode import decode
from ingest.demo_devices import make_demo_devices
from ingest.simulate import Simulator, topic_for
from layers.geography import Geography
from layers.registry import Device
from tests.conftest import FakeClock

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 10.0


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    at: float  # monotonic


class Subscriber:
    """A paho subscriber to ``city/#`` (QoS 1) recording what arrives and when."""

    def __init__(self, port: int) -> None:
        self.messages: queue.Queue[Received] = queue.Queue()
        ready: queue.Queue[str] = queue.Queue()
        messages = self.messages  # the callbacks hold the queues, not self: no cycle
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sub-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.paho.on_connect = lambda _c, _u, _f, reason, _p: ready.put(f"connect {reason}")
        self.paho.on_subscribe = lambda _c, _u, _m, reasons, _p: ready.put(f"suback {reasons}")
        self.paho.on_message = lambda _c, _u, m: messages.put(
            Received(m.topic, bytes(m.payload), m.qos, time.monotonic())
        )
        self.paho.connect("127.0.0.1", port, keepalive=10)
        self.paho.loop_start()
        assert ready.get(timeout=WAIT_S) == "connect Success"
        self.paho.subscribe("city/#", qos=1)
        assert ready.get(timeout=WAIT_S).startswith("suback")

    def take(self, count: int) -> list[Received]:
        deadline = time.monotonic() + WAIT_S
        got: list[Received] = []
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"received {len(got)} of {count} messages within {WAIT_S} s")
            try:
                got.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                continue
        return got

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker_port(request: pytest.FixtureRequest) -> int:
    if request.param == "amqtt":
        return int(request.getfixturevalue("embedded").port)
    return int(request.getfixturevalue("mosquitto").port)


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ={})


@pytest.fixture(scope="module")
def devices(base_settings: Settings) -> list[Device]:
    geography = Geography.from_settings(base_settings)
    return make_demo_devices(geography, air_devices=12, water_stations=True, seed=7)


def settings_for(
    base: Settings, port: int, *, interval_s: float, episode: str | None = None
) -> Settings:
    return base.model_copy(
        update={
            "broker": base.broker.model_copy(update={"host": "127.0.0.1", "port": port}),
            "simulator": base.simulator.model_copy(
                update={
                    "interval_s": interval_s,
                    "client_id": f"sim-{uuid.uuid4().hex[:8]}",
                    "episode_commune": episode,
                }
            ),
        }
    )


@pytest.fixture
def subscriber(broker_port: int) -> Iterator[Subscriber]:
    running = Subscriber(broker_port)
    yield running
    running.close()


def test_one_round_reaches_the_subscriber_spread_over_the_interval(
    base_settings: Settings, devices: list[Device], broker_port: int, subscriber: Subscriber
) -> None:
    episode_unit = devices[0].unit_code
    settings = settings_for(base_settings, broker_port, interval_s=1.0, episode=episode_unit)
    clock = FakeClock(datetime(2026, 3, 2, 1, 0, 0, 250000, tzinfo=UTC))
    simulator = Simulator(settings, devices, clock=clock)

    stats = simulator.run(threading.Event(), max_rounds=1)

    assert (stats.rounds, stats.published, stats.acknowledged, stats.dropped) == (
        1,
        len(devices),
        len(devices),
        0,
    )
    received = subscriber.take(len(devices))
    assert sorted(message.topic for message in received) == sorted(map(topic_for, devices))
    assert {message.qos for message in received} == {1}
    # 18 devices over 1 s: the last leaves ~0.94 s after the first, not all at once.
    assert received[-1].at - received[0].at > 0.6
    by_topic = {message.topic: message for message in received}
    for device in devices:
        reading = decode(
            topic_for(device),
            by_topic[topic_for(device)].payload,
            now=clock.now(),
            max_clock_skew_s=0,
        )
        assert reading.ts == clock.now()  # stamped by the injected clock
        pm25 = reading.values.get("pm25")
        if device.unit_code == episode_unit:
            assert pm25 is not None
            assert pm25 > 100  # the episode starts with the simulator
        elif pm25 is not None:
            assert pm25 < 100
    assert subscriber.messages.empty()


def test_the_stop_event_ends_a_run_mid_round(
    base_settings: Settings, devices: list[Device], broker_port: int, subscriber: Subscriber
) -> None:
    settings = settings_for(base_settings, broker_port, interval_s=6.0)  # one device per 1/3 s
    simulator = Simulator(settings, devices)
    stop = threading.Event()
    runner = threading.Thread(target=simulator.run, args=(stop,), daemon=True)
    runner.start()
    first = subscriber.take(1)[0]
    assert json.loads(first.payload)["ts"] > 0
    stop.set()
    runner.join(WAIT_S)
    assert not runner.is_alive()
    stats = simulator.stats
    assert stats.rounds == 0
    assert 1 <= stats.published < len(devices)
    assert stats.acknowledged == stats.published


def test_an_unreachable_broker_is_a_retryable_error_naming_it(
    base_settings: Settings, devices: list[Device]
) -> None:
    port = free_port()  # nobody listens here
    settings = settings_for(base_settings, port, interval_s=1.0)
    with pytest.raises(RetryableError, match=rf"MQTT broker at 127\.0\.0\.1:{port}"):
        Simulator(settings, devices).run(threading.Event(), max_rounds=1)


def test_two_rounds_follow_each_other_at_the_interval(
    base_settings: Settings, devices: list[Device], embedded: EmbeddedBroker
) -> None:
    receiver = Subscriber(embedded.port)
    try:
        settings = settings_for(base_settings, embedded.port, interval_s=0.5)
        started = time.monotonic()
        stats = Simulator(settings, devices[:4]).run(threading.Event(), max_rounds=2)
        assert (stats.rounds, stats.published) == (2, 8)
        received = receiver.take(8)
        assert [m.topic for m in received] == [topic_for(d) for d in devices[:4]] * 2
        assert received[4].at - received[0].at == pytest.approx(0.5, abs=0.2)
        assert time.monotonic() - started < 0.5 + 0.375 + 1.0  # no wait after the last round
    finally:
        receiver.close()
