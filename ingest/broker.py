"""The demo's in-process MQTT broker: amqtt on its own event loop in a background thread.

``cityops demo`` needs a broker without installing Mosquitto. amqtt speaks MQTT 3.1.1 only:
an MQTT 5 CONNECT is answered "unsupported protocol version", which the ingest client
takes as its cue to fall back to a 3.1.1 persistent session.

amqtt's own anonymous-auth plugin marks every session anonymous, and amqtt then drops
anonymous sessions on disconnect and queues nothing for them. The demo's ingest worker
relies on a persistent session (QoS 1 messages queued while it restarts), so connections
are let in by :class:`OpenAccessAuthPlugin`, which accepts everyone without that mark.
The listener binds 127.0.0.1 only by default: it is never meant to face a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from types import TracebackType
from typing import Any

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

from core.errors import ConfigError

log = logging.getLogger("cityops.broker")

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 1.0  # then connections that did not close are cut
DEFAULT_SESSION_EXPIRY_S = 86400


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it; another process may take it
    before we bind, so callers that picked it retry once on a bind failure)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class OpenAccessAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt has no type hints
    """Accepts every client, with or without a user name, and keeps its session persistent
    (unlike amqtt's AnonymousAuthPlugin, whose sessions lose their queued messages)."""

    async def authenticate(self, *, session: Session) -> bool:
        return True


class _ConnectionTrackingBroker(Broker):  # type: ignore[misc]
    """amqtt's Broker, remembering each client's stream so shutdown can cut it, and closing
    every stream when its connection ends.

    amqtt stops a connection by cancelling its reader, which waits in ``asyncio.wait_for``.
    On Python 3.11, wait_for swallows a cancellation that arrives just as a packet does
    (a PUBACK at shutdown is enough), and the broker then waits for that reader forever."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.client_writers: set[asyncio.StreamWriter] = set()

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        self.client_writers.add(writer)
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            self.client_writers.discard(writer)
            # amqtt leaves the socket open when a connection ends before its CONNECT.
            if not writer.is_closing():
                writer.close()

    def cut_connections(self) -> None:
        for writer in list(self.client_writers):
            writer.transport.abort()


def broker_config(host: str, port: int, session_expiry_s: int | None) -> dict[str, Any]:
    """amqtt's configuration: one TCP listener, open access, no $SYS plugin (it needs psutil
    and warns about it), disconnected sessions kept for ``session_expiry_s``."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "session_expiry_interval": session_expiry_s,
        "plugins": {f"{__name__}.{OpenAccessAuthPlugin.__name__}": {}},
    }


class EmbeddedBroker:
    """An amqtt broker on ``host:port`` in a daemon thread; ``port=0`` picks a free port.

    ``start()`` returns once the listener accepts connections; ``stop()`` shuts the broker
    down, cancels what is left on its loop and joins the thread. Also a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        session_expiry_s: int | None = DEFAULT_SESSION_EXPIRY_S,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError("broker.port", port, "must be an integer from 0 to 65535")
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._session_expiry_s = session_expiry_s
        self._start_timeout_s = start_timeout_s
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        """The port the broker listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("EmbeddedBroker.port is known only after start()")
        return self._port

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._ready.is_set()

    def start(self) -> EmbeddedBroker:
        """Start listening. Raises ConfigError when the port cannot be bound and
        TimeoutError when the broker does not come up within the start timeout."""
        if self._thread is not None:
            raise RuntimeError("EmbeddedBroker.start() called twice")
        # A port we picked ourselves may be taken by someone else before we bind: try another.
        attempts = 3 if self._requested_port == 0 else 1
        for attempt in range(attempts):
            port = self._requested_port or free_port(self.host)
            try:
                self._start_on(port)
                return self
            except ConfigError:
                if attempt == attempts - 1:
                    raise
                log.info("embedded broker: port %d was taken meanwhile, trying another", port)
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_on(self, port: int) -> None:
        self._port = port
        self._ready.clear()
        self._failure = None
        thread = threading.Thread(
            target=self._serve_in_thread, name=f"cityops-broker-{port}", daemon=True
        )
        self._thread = thread
        thread.start()
        if not self._ready.wait(self._start_timeout_s):
            self.stop()
            raise TimeoutError(
                f"embedded MQTT broker did not start on {self.host}:{port} "
                f"within {self._start_timeout_s} s"
            )
        if self._failure is not None:
            failure = self._failure
            thread.join(STOP_TIMEOUT_S)
            self._thread = None
            self._port = None
            raise ConfigError(
                "broker.port",
                port,
                f"must be a free port on {self.host} (embedded broker: {failure})",
            ) from failure
        log.info("embedded MQTT broker listening on %s:%d", self.host, port)

    def _serve_in_thread(self) -> None:
        # asyncio.run gives the thread its own loop, cancels leftover tasks and closes the loop.
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        broker = _ConnectionTrackingBroker(
            broker_config(self.host, self.port, self._session_expiry_s)
        )
        try:
            await broker.start()
        except Exception as exc:  # amqtt wraps OSError (port in use) in BrokerError
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop_requested.wait()
        shutdown = asyncio.ensure_future(broker.shutdown())
        done, _ = await asyncio.wait({shutdown}, timeout=SHUTDOWN_GRACE_S)
        if not done:
            log.debug("embedded broker: cutting client connections that did not stop")
            broker.cut_connections()
            done, _ = await asyncio.wait({shutdown}, timeout=STOP_TIMEOUT_S)
        if done and shutdown.exception() is not None:
            log.warning("embedded broker shutdown: %r", shutdown.exception())
        broker.cut_connections()
        # What is left (connection handlers) ends here, bounded, rather than in asyncio.run.
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Shut down and join the thread (bounded). Safe to call twice or before start()."""
        thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
        if thread is None:
            return
        if loop is not None and stop_requested is not None and not loop.is_closed():
            # RuntimeError: the loop closed between the check and the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_requested.set)
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            raise TimeoutError(f"embedded MQTT broker did not stop within {STOP_TIMEOUT_S} s")
        self._thread = None
        self._loop = None
        self._stop_requested = None
        self._ready.clear()
        log.info("embedded MQTT broker on %s:%s stopped", self.host, self._port)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
