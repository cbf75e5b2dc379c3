"""The ingest worker: runs :class:`ingest.pipeline.IngestPipeline` on a persistent MQTT
session (:class:`ingest.mqtt.MqttSource`) from one thread until stopped."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.clock import SystemClock
from core.ports import Clock, DeadLetterStore, Store, UnassignedDevices
from core.settings import Settings
from core.types import Point
from ingest.enrich import Enricher
from ingest.fastmqtt import ClientFactory, make_client
from ingest.metrics import IngestMetrics, SnapshotWriter
from ingest.mqtt import Delivery, MqttSource
from ingest.pipeline import RETRY_FIRST_S, RETRY_MAX_S, IngestPipeline
from ingest.spool import DiskSpool

if TYPE_CHECKING:
    from layers.geography import Geography
    from layers.registry import Device

log = logging.getLogger("cityops.ingest")

POLL_MAX_S = 0.1
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class IngestStats:
    """Counters since start; ``pending`` = received and not yet acknowledged."""

    received: int = 0
    stored: int = 0  # messages whose points are in the store
    dead_lettered: int = 0  # messages kept in dead-letter with their reason
    write_errors: int = 0  # failed store writes (each retried)
    pending: int = 0
    callback_errors: int = 0  # exceptions caught in MQTT callbacks (bugs)
    connects: int = 0
    spooled: int = 0  # messages acknowledged once their batch was in the disk spool
    spool_batches: int = 0  # batches in the disk spool now
    spool_bytes: int = 0


class IngestWorker:
    """Runs the pipeline on a persistent MQTT session until stopped."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        devices: Mapping[str, Device],
        geography: Geography,
        dead_letters: DeadLetterStore,
        *,
        client_factory: ClientFactory = make_client,
        clock: Clock | None = None,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
        spool: DiskSpool | None = None,
        unassigned: UnassignedDevices | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        # One thread writes a batch to the store while this one receives the next.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="cityops-store")
        self.metrics = IngestMetrics()
        # Snapshots for the dashboard's /pipeline page, through the writer thread too:
        # one thread talks to the store.
        self._snapshots = SnapshotWriter(
            self.metrics,
            _ThroughWriter(store, self._writer),
            worker=settings.ingest.client_id,
            interval_s=settings.ingest.metrics_interval_s,
        )
        self._source = MqttSource(
            settings, self._receive, client_factory=client_factory, clock=self._clock
        )
        self._pipeline = IngestPipeline(
            settings,
            store,
            Enricher.for_geography(devices, geography, unassigned=unassigned),
            dead_letters,
            self._source.ack,
            clock=self._clock,
            retry_first_s=retry_first_s,
            retry_max_s=retry_max_s,
            spool=spool,
            writer=self._writer,
            metrics=self.metrics,
        )
        self._stop_requested = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stats(self) -> IngestStats:
        pipeline = self._pipeline
        return IngestStats(
            received=pipeline.received,
            stored=pipeline.stored,
            dead_lettered=pipeline.dead_lettered,
            write_errors=pipeline.write_errors,
            pending=pipeline.pending,
            callback_errors=self._source.callback_errors,
            connects=self._source.connects,
            spooled=pipeline.spooled,
            spool_batches=spool.batches if (spool := pipeline.spool) is not None else 0,
            spool_bytes=spool.bytes_used if spool is not None else 0,
        )

    def wait_ready(self, timeout_s: float) -> bool:
        """True once connected and subscribed (within ``timeout_s``)."""
        return self._ready.wait(timeout_s)

    def start(self) -> None:
        """Run in a background thread; :meth:`stop` ends it."""
        if self._thread is not None:
            raise RuntimeError("IngestWorker.start() called twice")
        self._stop_requested.clear()
        self._thread = threading.Thread(
            target=self.run_forever, args=(self._stop_requested,), name="cityops-ingest"
        )
        self._thread.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Flush what is pending, acknowledge it, disconnect (the session stays)."""
        self._stop_requested.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("ingest worker did not stop within %.0f s", timeout_s)
            self._thread = None

    def run_forever(self, stop_event: threading.Event) -> None:
        """Connect, then receive and write until ``stop_event`` (or :meth:`stop`) is set."""
        self._source.open()
        try:
            while not (stop_event.is_set() or self._stop_requested.is_set()):
                self._run_once()
        finally:
            try:
                self._pipeline.drain()
            finally:
                self._writer.shutdown(wait=True)
                self._source.close()
                self._ready.clear()
                if (spool := self._pipeline.spool) is not None:
                    spool.close()  # the next worker on this folder may take it

    def _update_gauges(self) -> None:
        metrics, spool = self.metrics, self._pipeline.spool
        metrics.pending = self._pipeline.pending
        metrics.mqtt_connected = int(self._source.ready)
        metrics.connects = self._source.connects
        metrics.spool_batches = spool.batches if spool is not None else 0
        metrics.spool_bytes = spool.bytes_used if spool is not None else 0

    def _receive(self, delivery: Delivery) -> None:
        self._pipeline.receive(delivery)

    def _run_once(self) -> None:
        try:
            now = self._clock.now()
            due = self._pipeline.seconds_until_due(now)
            wait = min(POLL_MAX_S, self._snapshots.seconds_until_due(now))
            self._source.poll(
                wait if due is None else min(wait, due), read=self._pipeline.accepting
            )
            if self._source.ready:
                self._ready.set()
            else:
                self._ready.clear()
            self._pipeline.step()
            self._source.flush_acks()  # this round's PUBACKs, in order, in one write
            self._update_gauges()
            if self._pipeline.store_up:  # no snapshot queued behind a store that times out
                self._snapshots.write_if_due(self._clock.now())
        except Exception:  # a bug in one round must not end ingest
            log.exception("ingest loop round failed")
            time.sleep(1.0)


class _ThroughWriter:
    """Writes that run on ``writer`` behind the batches, for the occasional write the loop
    makes itself (metrics snapshots): the loop never waits for them."""

    def __init__(self, store: Store, writer: Executor) -> None:
        self._store = store
        self._writer = writer

    def write(self, points: Sequence[Point]) -> None:
        """Queue the write behind the batch under way and return; a failure is logged."""
        with contextlib.suppress(RuntimeError):  # RuntimeError: shut down (interpreter exit)
            self._writer.submit(self._store.write, points).add_done_callback(_log_failure)


def _log_failure(future: Future[None]) -> None:
    if (exc := future.exception()) is not None:
        log.warning("ingest metrics snapshot not stored: %s", exc)
