"""Replay dead letters: an operator fixed the cause (registry, device firmware, config) and
sends the kept messages through the broker again, exactly as they arrived.

Each letter is published with QoS 1 to its original topic and deleted only once the
broker has acknowledged it; a letter whose cause is not fixed comes back to dead-letter
with its reason, so nothing is lost either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import paho.mqtt.client as mqtt

from core.errors import RetryableError
from core.settings import Settings
from ingest.deadletter import SqlDeadLetterStore, StoredLetter
from ingest.simulate import make_publisher

log = logging.getLogger("cityops.ingest")
PUBLISH_TIMEOUT_S = 10.0
REPLAY_CLIENT_ID = "cityops-replay"


def replay(
    settings: Settings,
    store: SqlDeadLetterStore,
    letters: list[StoredLetter],
    *,
    client_factory: Callable[[Settings, str], mqtt.Client] = make_publisher,
) -> int:
    """Publish ``letters`` to the broker in order; delete each one the broker took.
    Returns how many were replayed. Raises RetryableError when the broker cannot be reached
    (nothing is deleted then)."""
    if not letters:
        return 0
    client = client_factory(settings, REPLAY_CLIENT_ID)
    broker = settings.broker
    try:
        client.connect(broker.host, broker.port, keepalive=broker.keepalive_s)
    except OSError as exc:
        raise RetryableError(f"MQTT broker {broker.host}:{broker.port} unreachable: {exc}") from exc
    client.loop_start()
    replayed: list[int] = []
    try:
        for stored in letters:
            info = client.publish(stored.letter.topic, stored.letter.payload, qos=1)
            try:
                info.wait_for_publish(timeout=PUBLISH_TIMEOUT_S)
            except (RuntimeError, ValueError) as exc:  # paho: not connected, queue full
                log.warning("replay of dead letter %d failed: %s", stored.id, exc)
                break
            if not info.is_published():
                log.warning("broker did not acknowledge replay of dead letter %d", stored.id)
                break
            replayed.append(stored.id)
    finally:
        store.remove(replayed)
        client.disconnect()
        client.loop_stop()
    return len(replayed)
