"""The ingest worker: MQTT → decode → enrich → batch → store, bad input → dead-letter.

At-least-once: a message is acknowledged only after its batch is in the store, or after
it is kept in dead-letter. While the store is down the batch is kept and retried with
backoff, unacknowledged; the broker holds the rest (persistent session, receive maximum =
``ingest.max_in_flight``) and delivers again whatever was not acknowledged when we
reconnect. Writes are idempotent (timestamp from the device), so a redelivery never
duplicates a point.

:class:`IngestPipeline` is the logic, with no network; :class:`IngestWorker` drives it and
the MQTT adapter from one thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.clock import SystemClock
from core.errors import DecodeError, PermanentError, RetryableError
from core.ports import Clock, DeadLetterStore, Store
from core.settings import Settings
from core.types import DeadLetter, Point
from ingest.batch import AckSequencer, Backoff, Batcher
from ingest.decode import decode
from ingest.enrich import Enricher
from ingest.mqtt import ClientFactory, Delivery, MqttSource, make_client

if TYPE_CHECKING:
    from layers.geography import Geography
    from layers.registry import Device

log = logging.getLogger("cityops.ingest")

RETRY_FIRST_S = 0.25
RETRY_MAX_S = 30.0
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


@dataclass(frozen=True, slots=True)
class _Message:
    seq: int
    delivery: Delivery
    points: Sequence[Point] = ()


class IngestPipeline:
    """Decides what happens to each delivery and when it may be acknowledged.

    ``ack`` sends the acknowledgement (returns False when the delivering connection is gone;
    the broker then redelivers). Called from one thread only."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        enricher: Enricher,
        dead_letters: DeadLetterStore,
        ack: Callable[[Delivery], bool],
        *,
        clock: Clock,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self._ingest = settings.ingest
        self._store = store
        self._enricher = enricher
        self._dead_letters = dead_letters
        self._ack = ack
        self._clock = clock
        self._batcher: Batcher[_Message] = Batcher(
            self._ingest.batch_size, self._ingest.flush_interval_s
        )
        self._sequencer: AckSequencer[int] = AckSequencer()
        self._in_flight: dict[int, Delivery] = {}
        self._unwritten: list[_Message] = []  # a batch the store refused for now, oldest first
        self._write_backoff = Backoff(retry_first_s, retry_max_s)
        self._letters_waiting: list[tuple[DeadLetter, _Message]] = []
        self._letter_backoff = Backoff(retry_first_s, retry_max_s)
        self._next_seq = 0
        self._over_limit = False
        self.received = self.stored = self.dead_lettered = self.write_errors = 0
        self.acks_skipped = 0  # acks not sent because the connection changed

    @property
    def pending(self) -> int:
        return len(self._sequencer)

    # -- input -------------------------------------------------------------------------

    def receive(self, delivery: Delivery) -> None:
        """Called for every MQTT message (inside the network loop: no store I/O here)."""
        self._next_seq += 1
        message = _Message(self._next_seq, delivery)
        self.received += 1
        self._sequencer.received(message.seq)
        self._in_flight[message.seq] = delivery
        self._watch_in_flight()
        now = self._clock.now()
        try:
            reading = decode(
                delivery.topic,
                delivery.payload,
                now=now,
                max_clock_skew_s=self._ingest.max_clock_skew_s,
            )
            points = self._enricher.points_for(reading)
        except DecodeError as exc:
            self._dead_letter(message, exc.reason)
            return
        except Exception as exc:  # a bug must cost one message (kept), not the stream
            log.exception("decoding %s failed unexpectedly", delivery.topic)
            self._dead_letter(message, f"internal error while decoding: {exc!r}")
            return
        self._batcher.add(points, _Message(message.seq, delivery, points), now)

    def _watch_in_flight(self) -> None:
        # The broker enforces the limit through MQTT 5 receive maximum; a 3.1.1 broker may not.
        over = self.pending > self._ingest.max_in_flight
        if over and not self._over_limit:
            log.warning(
                "%d messages unacknowledged, more than ingest.max_in_flight = %d",
                self.pending,
                self._ingest.max_in_flight,
            )
        self._over_limit = over

    # -- time-driven work --------------------------------------------------------------

    def seconds_until_due(self, now: datetime) -> float | None:
        """How long the caller may wait before :meth:`step` has work; None = only on input."""
        moments = [
            backoff.retry_at
            for backoff, waiting in (
                (self._write_backoff, self._unwritten),
                (self._letter_backoff, self._letters_waiting),
            )
            if waiting and backoff.retry_at is not None
        ]
        oldest = self._batcher.oldest_at()
        if oldest is not None and not self._unwritten:
            if self._batcher.due(now):
                return 0.0
            moments.append(oldest + self._batcher.max_age)
        if not moments:
            return None
        return max(0.0, (min(moments) - now).total_seconds())

    def step(self) -> None:
        """Write a due batch, retry what waits for the store or the dead-letter database."""
        now = self._clock.now()
        if self._letters_waiting and self._letter_backoff.ready(now):
            self._retry_letters(now)
        if not self._unwritten and self._batcher.due(now):
            self._unwritten = self._batcher.take()[1]
        if self._unwritten and self._write_backoff.ready(now):
            self._write(now)

    def drain(self) -> None:
        """On stop: one attempt to store everything waiting; the rest stays unacknowledged."""
        now = self._clock.now()
        if self._letters_waiting:
            self._retry_letters(now)
        while True:
            if not self._unwritten:
                self._unwritten = self._batcher.take()[1]
            if not self._unwritten or not self._write(now):
                return

    # -- store -------------------------------------------------------------------------

    def _write(self, now: datetime) -> bool:
        """Write the unwritten batch; True when it is done (stored or dead-lettered)."""
        batch = self._unwritten
        points = [point for message in batch for point in message.points]
        try:
            self._store.write(points)
        except PermanentError as exc:
            log.warning("store refused part of a batch (%s); writing message by message", exc)
            return self._write_one_by_one(now)
        except RetryableError as exc:
            self._write_failed(now, str(exc))
            return False
        except Exception as exc:  # an adapter bug: keep the batch, as for RetryableError
            log.exception("store write failed unexpectedly")
            self._write_failed(now, repr(exc))
            return False
        self._write_backoff.succeeded()
        self._unwritten = []
        self.stored += len(batch)
        for message in batch:
            self._finished(message)
        return True

    def _write_one_by_one(self, now: datetime) -> bool:
        while self._unwritten:
            message = self._unwritten[0]
            try:
                self._store.write(message.points)
            except PermanentError as exc:
                self._unwritten.pop(0)
                self._dead_letter(message, f"store refused the reading: {exc}")
                continue
            except RetryableError as exc:
                self._write_failed(now, str(exc))
                return False
            self._unwritten.pop(0)
            self.stored += 1
            self._finished(message)
        self._write_backoff.succeeded()
        return True

    def _write_failed(self, now: datetime, why: str) -> None:
        self.write_errors += 1
        delay = self._write_backoff.failed(now)
        log.warning(
            "store write of %d messages failed (%s); kept unacknowledged, retry in %.1f s",
            len(self._unwritten),
            why,
            delay,
        )

    # -- dead letters ------------------------------------------------------------------

    def _dead_letter(self, message: _Message, reason: str) -> None:
        delivery = message.delivery
        letter = DeadLetter(delivery.received_at, delivery.topic, delivery.payload, reason)
        log.info("dead letter from %s: %s", delivery.topic, reason)
        if self._letters_waiting:  # keep their order: the database is known to be down
            self._letters_waiting.append((letter, message))
            return
        try:
            self._dead_letters.put(letter)
        except RetryableError as exc:
            self._letters_waiting.append((letter, message))
            delay = self._letter_backoff.failed(self._clock.now())
            log.warning("dead letter not stored (%s); retry in %.1f s", exc, delay)
            return
        self.dead_lettered += 1
        self._finished(message)

    def _retry_letters(self, now: datetime) -> None:
        while self._letters_waiting:
            letter, message = self._letters_waiting[0]
            try:
                self._dead_letters.put(letter)
            except RetryableError as exc:
                delay = self._letter_backoff.failed(now)
                log.warning("dead letters still not stored (%s); retry in %.1f s", exc, delay)
                return
            self._letters_waiting.pop(0)
            self.dead_lettered += 1
            self._finished(message)
        self._letter_backoff.succeeded()

    # -- acknowledgement ---------------------------------------------------------------

    def _finished(self, message: _Message) -> None:
        for seq in self._sequencer.done(message.seq):
            if not self._ack(self._in_flight.pop(seq)):
                self.acks_skipped += 1


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
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._source = MqttSource(
            settings, self._receive, client_factory=client_factory, clock=self._clock
        )
        self._pipeline = IngestPipeline(
            settings,
            store,
            Enricher.for_geography(devices, geography),
            dead_letters,
            self._source.ack,
            clock=self._clock,
            retry_first_s=retry_first_s,
            retry_max_s=retry_max_s,
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
                self._source.close()
                self._ready.clear()

    def _receive(self, delivery: Delivery) -> None:
        self._pipeline.receive(delivery)

    def _run_once(self) -> None:
        try:
            due = self._pipeline.seconds_until_due(self._clock.now())
            self._source.poll(POLL_MAX_S if due is None else min(POLL_MAX_S, due))
            if self._source.ready:
                self._ready.set()
            else:
                self._ready.clear()
            self._pipeline.step()
        except Exception:  # a bug in one round must not end ingest
            log.exception("ingest loop round failed")
            time.sleep(1.0)
