"""The paho-mqtt 2.x adapter: a persistent-session subscriber driven from one thread.

Every paho call (network loop, callbacks, PUBACKs, reconnects) happens on the thread that
calls :meth:`MqttSource.poll`, so acknowledging a message never races with paho's network
thread: there is none. A PUBACK names a packet id that only means something on the
connection that delivered it, so each Delivery remembers its connection (``connection``)
and a stale one is never acknowledged: the broker delivers it again after the reconnect.

MQTT 5 first (session expiry, receive maximum as back-pressure); a broker that only
speaks 3.1.1 (amqtt, the embedded demo broker) gets a 3.1.1 persistent session instead.

The client is :class:`ingest.fastmqtt.BufferedClient` (chunked reads, batched PUBACKs) and
this class drives it with its own ``select``: one network round reads and handles every
whole packet that has arrived, not one packet per round as ``Client.loop()`` does.
Acknowledgements collect during a round and go out together in :meth:`MqttSource.flush_acks`.
"""

from __future__ import annotations

import functools
import logging
import random
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.clock import SystemClock
from core.ports import Clock
from core.settings import Settings
from ingest.fastmqtt import (
    RECONNECT_MAX_S,
    RECONNECT_MIN_S,
    BufferedClient,
    ClientFactory,
    connect_properties,
    make_client,
)
from ingest.topics import subscription_filters

log = logging.getLogger("cityops.ingest")

DISCONNECT_TIMEOUT_S = 5.0
CONNACK_TIMEOUT_S = 3.0  # a broker on the LAN answers CONNECT in milliseconds
_UNSUPPORTED_PROTOCOL = 0x84  # CONNACK reason; paho maps a 3.1.1 broker's code 1 to it


@dataclass(frozen=True, slots=True)
class Delivery:
    """One received message, with what is needed to acknowledge it later."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime
    connection: int  # which connection delivered it; PUBACK only on that one


class MqttSource:
    """Subscribes with a persistent session and hands each message to ``on_delivery``."""

    def __init__(
        self,
        settings: Settings,
        on_delivery: Callable[[Delivery], None],
        *,
        client_factory: ClientFactory = make_client,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._on_delivery = on_delivery
        self._client_factory = client_factory
        self._clock: Clock = clock or SystemClock()
        self._filters = subscription_filters(settings.ingest)
        self._protocol = (
            MQTTProtocolVersion.MQTTv311
            if settings.broker.protocol == "3.1.1"
            else MQTTProtocolVersion.MQTTv5
        )
        self._client: BufferedClient | None = None
        self._round_at = self._clock.now()  # when the current network round began
        self._connection = 0
        self._connected = False
        self._subscribed = False
        self._downgrade = False
        self._need_connect = True
        self._connect_sent = 0.0
        self._v5_answered = False
        self._reconnect_at = 0.0
        self._reconnect_delay = float(RECONNECT_MIN_S)
        self.callback_errors = 0
        self.connects = 0

    # -- state -------------------------------------------------------------------------

    @property
    def connection(self) -> int:
        """Number of the current connection (0 before the first)."""
        return self._connection

    @property
    def ready(self) -> bool:
        """Connected and every subscription granted."""
        return self._connected and self._subscribed

    @property
    def protocol(self) -> MQTTProtocolVersion:
        return self._protocol

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Build the client; the first poll connects. Connects nothing by itself."""
        self._client = self._build(self._protocol)

    def _build(self, protocol: MQTTProtocolVersion) -> BufferedClient:
        client = self._client_factory(self._settings, protocol)
        client.on_raw_publish = self._guarded("on_message", self._handle_raw_publish)
        client.on_connect = self._guarded("on_connect", self._handle_connect)
        client.on_disconnect = self._guarded("on_disconnect", self._handle_disconnect)
        client.on_subscribe = self._guarded("on_subscribe", self._handle_subscribe)
        client.on_message = self._guarded("on_message", self._handle_message)
        broker = self._settings.broker
        if protocol == MQTTProtocolVersion.MQTTv5:
            client.connect_async(
                broker.host,
                broker.port,
                broker.keepalive_s,
                clean_start=False,
                properties=connect_properties(self._settings),
            )
        else:
            client.connect_async(broker.host, broker.port, broker.keepalive_s)
        return client

    def poll(self, timeout_s: float, *, read: bool = True) -> None:
        """Run the network for up to ``timeout_s``: connect if due, read, write, ping.
        ``read=False`` leaves what arrives in the socket (back-pressure: TCP then keeps
        the backlog in the broker); PUBACKs and pings still go out."""
        client = self._require_client()
        if (self._need_connect or client.socket() is None) and not self._try_connect(
            client, timeout_s
        ):
            return
        rc = self._network_round(client, timeout_s, read)
        if self._downgrade:
            self._downgrade_to_v311("it answered 'unsupported protocol version'")
        elif rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._connection_lost(f"network loop: {mqtt.error_string(rc)}")
        elif not self._connected and time.monotonic() - self._connect_sent > CONNACK_TIMEOUT_S:
            self._no_connack()

    def ack(self, delivery: Delivery) -> bool:
        """Acknowledge one message if its connection is still the current one. A QoS 1
        PUBACK is sent with the others of this round by :meth:`flush_acks`."""
        if delivery.qos == 0:
            return True
        if not self._connected or delivery.connection != self._connection:
            return False
        client = self._require_client()
        if delivery.qos == 1:
            client.queue_puback(delivery.mid)
            return True
        client.flush_pubacks()  # QoS 2: PUBCOMP through paho, after the PUBACKs before it
        return client.ack(delivery.mid, delivery.qos) == MQTTErrorCode.MQTT_ERR_SUCCESS

    def flush_acks(self) -> None:
        """Send the PUBACKs collected since the last flush, in order, in one write."""
        if self._client is not None:
            self._client.flush_pubacks()

    def close(self, timeout_s: float = DISCONNECT_TIMEOUT_S) -> None:
        """Send what is queued (PUBACKs), then DISCONNECT; the broker keeps the session."""
        client = self._client
        if client is None:
            return
        if client.socket() is not None:
            client.flush_pubacks()
            client.disconnect()
            deadline = time.monotonic() + timeout_s
            while client.socket() is not None and time.monotonic() < deadline:
                client.loop(timeout=0.05)
        self._connected = False
        self._client = None  # paho closes its remaining sockets when the client is collected

    # -- internals ---------------------------------------------------------------------

    def _network_round(
        self, client: BufferedClient, timeout_s: float, read: bool = True
    ) -> MQTTErrorCode:
        """Wait up to ``timeout_s`` for the socket, then read and handle everything that has
        arrived, write what is queued and keep the connection alive (keepalive pings)."""
        sock = client.socket()
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        pending = getattr(sock, "pending", None)  # TLS may hold bytes select cannot see
        tls_pending = read and pending is not None and pending() > 0
        writing = [sock] if client.want_write() else []
        reading = [sock] if read else []
        try:
            readable, _, _ = select.select(reading, writing, [], 0.0 if tls_pending else timeout_s)
        except (OSError, ValueError, TypeError):  # closed under us
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        self._round_at = self._clock.now()
        if readable or tls_pending:
            rc = client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
            if client.socket() is None:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if client.want_write():
            rc = client.loop_write()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
        return client.loop_misc()

    def _require_client(self) -> BufferedClient:
        if self._client is None:
            raise RuntimeError("MqttSource.open() was not called")
        return self._client

    def _try_connect(self, client: BufferedClient, timeout_s: float) -> bool:
        wait = self._reconnect_at - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, timeout_s))
            return False
        broker = self._settings.broker
        try:
            client.reconnect()  # closes the previous socket, if any
        except (OSError, ValueError) as exc:
            self._connection_lost(f"cannot reach {broker.host}:{broker.port}: {exc}")
            return False
        self._need_connect = False
        self._connect_sent = time.monotonic()
        return True

    def _connection_lost(self, why: str) -> None:
        self._connected = False
        self._subscribed = False
        self._need_connect = True
        # Jitter (half to all of the backoff): workers that lost the broker together do not
        # all come back in the same second.
        delay = self._reconnect_delay * random.uniform(0.5, 1.0)
        self._reconnect_at = time.monotonic() + delay
        self._reconnect_delay = min(float(RECONNECT_MAX_S), self._reconnect_delay * 2)
        log.warning("MQTT broker connection down (%s); next attempt in %.1f s", why, delay)

    def _no_connack(self) -> None:
        # An MQTT 3.1.1-only broker may choke on the MQTT 5 properties and never answer
        # (amqtt 0.12 does); a broker that answered MQTT 5 before is only slow or stuck.
        v5_may_be_unknown = self._settings.broker.protocol == "auto" and not self._v5_answered
        if self._protocol == MQTTProtocolVersion.MQTTv5 and v5_may_be_unknown:
            self._downgrade_to_v311(f"no CONNACK within {CONNACK_TIMEOUT_S:.0f} s")
        else:
            self._connection_lost(f"no CONNACK within {CONNACK_TIMEOUT_S:.0f} s")

    def _downgrade_to_v311(self, why: str) -> None:
        self._downgrade = False
        self._protocol = MQTTProtocolVersion.MQTTv311
        log.warning(
            "MQTT broker %s:%s does not take MQTT 5 (%s); using 3.1.1 with a persistent session",
            self._settings.broker.host,
            self._settings.broker.port,
            why,
        )
        old = self._require_client()
        stale_socket = old.socket()
        if stale_socket is not None:
            stale_socket.close()
        self._client = self._build(self._protocol)
        self._need_connect = True
        self._reconnect_at = 0.0

    def _guarded(self, name: str, callback: Callable[..., None]) -> Callable[..., None]:
        """paho re-raises a callback's exception out of the network loop; count and log it
        instead, so one bad message or bug never stops ingest."""

        @functools.wraps(callback)
        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except Exception:
                self.callback_errors += 1
                log.exception("MQTT callback %s failed", name)

        return guarded

    def _handle_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            speaks_v5 = self._protocol == MQTTProtocolVersion.MQTTv5
            if reason.value == _UNSUPPORTED_PROTOCOL and speaks_v5:
                self._downgrade = True
                return
            log.warning("MQTT broker refused the connection: %s", reason.getName())
            return
        self._connection += 1
        self.connects += 1
        if self._protocol == MQTTProtocolVersion.MQTTv5:
            self._v5_answered = True
        self._connected = True
        self._reconnect_delay = float(RECONNECT_MIN_S)
        log.info(
            "MQTT connected to %s:%s (MQTT %s, session present: %s); subscribing to %s",
            self._settings.broker.host,
            self._settings.broker.port,
            "5" if self._protocol == MQTTProtocolVersion.MQTTv5 else "3.1.1",
            flags.session_present,
            ", ".join(self._filters),
        )
        qos = self._settings.ingest.qos
        topics: list[tuple[str, Any]]
        if self._protocol == MQTTProtocolVersion.MQTTv5:
            topics = [(topic, SubscribeOptions(qos=qos)) for topic in self._filters]
        else:
            topics = [(topic, qos) for topic in self._filters]
        client.subscribe(topics)

    def _handle_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._connected = False
        self._subscribed = False
        if reason.is_failure:
            log.info("MQTT disconnected: %s", reason.getName())

    def _handle_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        refused = [
            f"{topic}: {reason.getName()}"
            for topic, reason in zip(self._filters, reasons, strict=False)
            if reason.is_failure
        ]
        if refused:
            log.error("MQTT broker refused subscriptions: %s", "; ".join(refused))
            return
        self._subscribed = True

    def _handle_raw_publish(self, topic: bytes, payload: bytes, mid: int, qos: int) -> None:
        """A QoS 0/1 PUBLISH from the buffered reader (no MQTTMessage is built)."""
        try:
            text = topic.decode("utf-8")
        except UnicodeDecodeError:
            text = "(topic is not UTF-8)"  # decode refuses it; the payload is still kept
        self._on_delivery(Delivery(text, payload, mid, qos, self._round_at, self._connection))

    def _handle_message(
        self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "(topic is not UTF-8)"  # decode refuses it; the payload is still kept
        self._on_delivery(
            Delivery(
                topic=topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                received_at=self._clock.now(),
                connection=self._connection,
            )
        )
