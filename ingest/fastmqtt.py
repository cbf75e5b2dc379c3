"""A paho-mqtt client that reads the socket in large chunks and batches its PUBACKs.

paho-mqtt 2.2 reads one packet per network round: ``select``, then ``recv(1)`` for the
command byte, ``recv(1)`` per byte of the remaining length and ``recv(n)`` for the rest,
then builds an ``MQTTMessage`` with a parsed MQTT 5 ``Properties`` object, logs it and calls
``on_message``; each ``ack()`` is one more ``send`` (and a wake-up byte on a socket pair
when ``loop()`` drives it). At tens of thousands of messages a second that per-packet
Python work and those syscalls are most of the worker's CPU (docs/design/006).

:class:`BufferedClient` keeps everything else of paho (connect, CONNACK, SUBACK, keepalive,
reconnect, TLS, QoS 2) and replaces only the read path and the PUBACK path:

* ``_packet_read`` receives up to :data:`READ_SIZE` bytes at once and handles every whole
  packet in them; a QoS 0/1 PUBLISH goes straight to :attr:`BufferedClient.on_raw_publish`
  as ``(topic bytes, payload bytes, mid, qos)``, with no ``MQTTMessage``; every other packet
  (and QoS 2) is handed to paho's own ``_packet_handle`` unchanged;
* :meth:`BufferedClient.queue_puback` collects PUBACKs and :meth:`BufferedClient.flush_pubacks`
  queues them as one write on paho's outgoing queue, so they keep their order with
  everything paho sends.

It overrides private paho methods: ``requirements.lock`` pins paho-mqtt, and
tests/unit/ingest/test_fastmqtt.py checks the overridden names still exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.settings import Settings

log = logging.getLogger("cityops.ingest")

READ_SIZE = 256 * 1024  # one recv: about 3,000 small messages
PUBLISH = 0x30
PUBACK = 0x40
_FAST_PUBLISH = (PUBLISH, PUBLISH | 0x02)
_PUBACK_HEADER = bytes((PUBACK, 0x02))  # MQTT 3.1.1 and 5 (reason Success, no properties)

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30

RawPublish = Callable[[bytes, bytes, int, int], None]


class MalformedStream(Exception):
    """The broker sent bytes that are not MQTT: the connection must be dropped."""


class BufferedClient(mqtt.Client):
    """paho's client with a chunked read path and batched PUBACKs (see the module text)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_raw_publish: RawPublish | None = None
        self._rbuf = bytearray()
        self._rbuf_socket: object | None = None
        self._pubacks = bytearray()
        self._pubacks_socket: object | None = None
        self.bytes_read = 0
        self.reads = 0

    # -- read path ---------------------------------------------------------------------

    def _packet_read(self) -> MQTTErrorCode:
        sock = self._sock
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if sock is not self._rbuf_socket:  # a new connection: bytes of the old one are void
            self._rbuf.clear()
            self._rbuf_socket = sock
        while True:
            try:
                data = self._sock_recv(READ_SIZE)
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            if not data:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            self.reads += 1
            self.bytes_read += len(data)
            self._rbuf += data
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
            rc = self._handle_buffered(sock)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is not sock:
                return rc
            pending = getattr(sock, "pending", None)  # TLS: decrypted bytes select cannot see
            if pending is None or not pending():
                return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_buffered(self, sock: object) -> MQTTErrorCode:
        """Handle every whole packet in the buffer; keep an incomplete tail for later."""
        buf = self._rbuf
        size = len(buf)
        pos = 0
        v5 = self._protocol == MQTTProtocolVersion.MQTTv5
        raw = self.on_raw_publish
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        try:
            while pos + 1 < size:
                header = buf[pos]
                body, end = _remaining_length(buf, pos + 1, size)
                if end > size:
                    break  # the rest of this packet is still on its way
                # QoS 0 or 1 PUBLISH (the mask ignores DUP and RETAIN); QoS 2 needs paho's state
                if (
                    raw is None
                    or header & 0xF6 not in _FAST_PUBLISH
                    or not _publish(buf, header, body, end, v5, raw)
                ):
                    rc = self._paho_handles(header, buf[body:end])
                pos = end
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is not sock:
                    return rc
        except MalformedStream as exc:
            self._easy_log(mqtt.MQTT_LOG_ERR, "malformed packet from the broker: %s", exc)
            pos = size
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        finally:
            if self._sock is sock:
                del buf[:pos]
            else:
                buf.clear()
        return rc

    def _paho_handles(self, header: int, body: bytearray) -> MQTTErrorCode:
        """Give one whole packet to paho's own handler, as its reader would."""
        self._in_packet = {
            "command": header,
            "have_remaining": 1,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": len(body),
            "packet": body,
            "to_process": 0,
            "pos": 0,
        }
        try:
            return self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        finally:
            self._in_packet = {
                "command": 0,
                "have_remaining": 0,
                "remaining_count": [],
                "remaining_mult": 1,
                "remaining_length": 0,
                "packet": bytearray(b""),
                "to_process": 0,
                "pos": 0,
            }

    # -- PUBACK path -------------------------------------------------------------------

    def queue_puback(self, mid: int) -> None:
        """Remember a PUBACK for a QoS 1 message of the current connection."""
        if self._sock is not self._pubacks_socket:
            self._pubacks.clear()  # PUBACKs name packet ids of a connection that is gone
            self._pubacks_socket = self._sock
        self._pubacks += _PUBACK_HEADER
        self._pubacks += mid.to_bytes(2, "big")

    def flush_pubacks(self) -> MQTTErrorCode:
        """Queue the collected PUBACKs as one write (paho sends it now if it can)."""
        if not self._pubacks:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        if self._sock is None or self._sock is not self._pubacks_socket:
            self._pubacks.clear()
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        data = bytes(self._pubacks)
        self._pubacks.clear()
        return self._packet_queue(PUBACK, data, 0, 0)


def _remaining_length(buf: bytearray, start: int, size: int) -> tuple[int, int]:
    """(where the body starts, where the packet ends); end > size when incomplete."""
    length = 0
    shift = 0
    index = start
    while True:
        if index >= size:
            return index, size + 1
        byte = buf[index]
        index += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return index, index + length
        shift += 7
        if shift > 21:
            raise MalformedStream("remaining length longer than 4 bytes")


def _publish(buf: bytearray, header: int, body: int, end: int, v5: bool, raw: RawPublish) -> bool:
    """Hand a QoS 0/1 PUBLISH to ``raw``; False when paho must handle it (topic alias)."""
    if end - body < 2:
        raise MalformedStream("PUBLISH shorter than its topic length")
    topic_end = body + 2 + (buf[body] << 8 | buf[body + 1])
    if topic_end == body + 2 and v5:
        return False  # an empty topic means a topic alias: paho resolves (and refuses) those
    qos = (header >> 1) & 0x03
    position = topic_end
    mid = 0
    if qos:
        mid = buf[position] << 8 | buf[position + 1]
        position += 2
    if v5:
        position, properties_end = _remaining_length(buf, position, end)
        position = properties_end
    if position > end:
        raise MalformedStream("PUBLISH shorter than its header")
    raw(bytes(buf[body + 2 : topic_end]), bytes(buf[position:end]), mid, qos)
    return True


class ClientFactory(Protocol):
    """Builds an unconnected paho client; tests pass their own to observe or break it."""

    def __call__(
        self, settings: Settings, protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5
    ) -> BufferedClient: ...


def use_broker_settings(client: mqtt.Client, settings: Settings) -> None:
    """Credentials (the password from the environment) and TLS from ``settings.broker``."""
    broker = settings.broker
    if broker.username is not None:
        password = broker.password.get_secret_value() if broker.password is not None else None
        client.username_pw_set(broker.username, password)
    if broker.tls:
        client.tls_set()


def make_client(
    settings: Settings, protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5
) -> BufferedClient:
    """The production client: manual acks, credentials and TLS from ``settings.broker``."""
    v5 = protocol == MQTTProtocolVersion.MQTTv5
    client = BufferedClient(
        CallbackAPIVersion.VERSION2,
        client_id=settings.ingest.client_id,
        protocol=protocol,
        manual_ack=True,
        clean_session=None if v5 else False,  # MQTT 5: clean_start=False at connect instead
    )
    use_broker_settings(client, settings)
    # Used by paho's own loops; MqttSource applies the same bounds when it reconnects.
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


def connect_properties(settings: Settings) -> Properties:
    """MQTT 5 CONNECT: keep the session (and queue our messages) for ``session_expiry_s``
    while we are away; never have more than ``max_in_flight`` unacknowledged messages."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = settings.ingest.session_expiry_s
    properties.ReceiveMaximum = settings.ingest.max_in_flight
    return properties
