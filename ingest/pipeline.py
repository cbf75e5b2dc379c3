"""The ingest pipeline: decode → enrich → batch → store, bad input → dead-letter.

At-least-once: a message is acknowledged only after its batch is in the store, in the
local disk spool (fsync'd, when one is given), or kept in dead-letter. While the store is
down, batches go to the spool and are acknowledged; while the spool holds batches, new
ones go there too (order), and the oldest is written back one per round, with backoff.
Without a spool, or when it is full, the batch is kept and retried with backoff,
unacknowledged; the broker holds the rest (persistent session, receive maximum =
``ingest.max_in_flight``) and delivers again whatever was not acknowledged when we
reconnect. Writes are idempotent (timestamp from the device), so a redelivery never
duplicates a point.

:class:`IngestPipeline` is the logic, with no network; :class:`ingest.worker.IngestWorker`
drives it and the MQTT adapter from one thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.errors import DecodeError, PermanentError, RetryableError, reason_code
from core.logs import correlation
from core.ports import Clock, DeadLetterStore, Store
from core.settings import Settings
from core.types import DeadLetter, Point
from ingest.batch import AckSequencer, Backoff, Batcher
from ingest.enrich import Enricher
from ingest.letters import LetterQueue
from ingest.metrics import IngestMetrics
from ingest.mqtt import Delivery
from ingest.spool import DiskSpool, SpoolFullError, drain_oldest

if TYPE_CHECKING:
    pass

log = logging.getLogger("cityops.ingest")

RETRY_FIRST_S = 0.25
RETRY_MAX_S = 30.0
STORE_REFUSED = "store_refused"  # the dead-letter count for points the store refused
WRITE_POLL_S = 0.002  # how often the loop looks at a write running on the writer thread
POLL_MAX_S = 0.1
STOP_TIMEOUT_S = 30.0


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
        spool: DiskSpool | None = None,
        writer: Executor | None = None,
        metrics: IngestMetrics | None = None,
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
        self._letters: LetterQueue[_Message] = LetterQueue(
            dead_letters, self._letter_kept, retry_first_s=retry_first_s, retry_max_s=retry_max_s
        )
        self._next_seq = 0
        self._spool = spool
        self._spool_full = False  # the last append did not fit; wait for a drained batch
        # With a writer (one thread), a batch is written while the next one is received.
        self._writer = writer
        self._writing: Future[float] | None = None  # its result: how long the write took
        self.metrics = metrics if metrics is not None else IngestMetrics()
        self.acks_skipped = 0  # acks not sent because the connection changed

    # Counters live in ``metrics`` (exported, snapshotted); these names read them.
    @property
    def received(self) -> int:
        return self.metrics.received

    @property
    def stored(self) -> int:
        return self.metrics.stored

    @property
    def dead_lettered(self) -> int:
        return sum(self.metrics.dead_lettered.values())

    @property
    def write_errors(self) -> int:
        return self.metrics.write_errors

    @property
    def spooled(self) -> int:
        return self.metrics.spooled

    @property
    def pending(self) -> int:
        return len(self._sequencer)

    @property
    def spool(self) -> DiskSpool | None:
        return self._spool

    @property
    def _spooling(self) -> bool:
        """The spool holds batches: new ones queue behind them, in order."""
        return self._spool is not None and self._spool.batches > 0

    # -- input -------------------------------------------------------------------------

    def receive(self, delivery: Delivery) -> None:
        """Called for every MQTT message (inside the network loop: no store I/O here)."""
        self._next_seq += 1
        message = _Message(self._next_seq, delivery)
        self.metrics.received += 1
        self._sequencer.received(message.seq)
        self._in_flight[message.seq] = delivery
        now = self._clock.now()
        try:
            points = self._enricher.points_for_message(
                delivery.topic, delivery.payload, now, self._ingest
            )
        except DecodeError as exc:
            self._dead_letter(message, exc.reason, exc.code)
            return
        except Exception as exc:  # a bug must cost one message (kept), not the stream
            log.exception("decoding %s failed unexpectedly", delivery.topic)
            reason = f"internal error while decoding: {exc!r}"
            self._dead_letter(message, reason, reason_code(exc))
            return
        self._batcher.add(points, _Message(message.seq, delivery, points), now)

    @property
    def store_up(self) -> bool:
        """The last store write succeeded (or none failed yet)."""
        return self._write_backoff.failures == 0

    @property
    def accepting(self) -> bool:
        """Fewer than ``ingest.max_in_flight`` messages are unacknowledged: read more.

        The worker stops reading the socket otherwise, and TCP keeps the rest in the broker.
        MQTT 5 receive maximum alone is not enough: Mosquitto 2.0.11 sends past it once
        acknowledgements flow (measured, docs/design/006), and a 3.1.1 broker has only its
        own ``max_inflight_messages``."""
        return self.pending < self._ingest.max_in_flight

    # -- time-driven work --------------------------------------------------------------

    def seconds_until_due(self, now: datetime) -> float | None:
        """How long the caller may wait before :meth:`step` has work; None = only on input."""
        if self._writing is not None:
            return 0.0 if self._writing.done() else WRITE_POLL_S
        if self._spooling and (
            self._write_backoff.retry_at is None or (self._unwritten and not self._spool_full)
        ):
            return 0.0  # a spooled batch to drain, or a batch to append behind them
        moments = [
            moment
            for moment in (
                self._write_backoff.retry_at if self._unwritten or self._spooling else None,
                self._letters.retry_at,
            )
            if moment is not None
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
        self._letters.retry(now)
        if self._writing is not None:
            if not self._writing.done():
                return  # the batch is on its way; the next one keeps filling
            self._write_finished(now, *_outcome(self._writing))
            self._writing = None
        if not self._unwritten and self._batcher.due(now):
            self._unwritten = self._batcher.take()[1]
        spooling = self._spooling
        if self._unwritten and (
            not self._spool_full if spooling else self._write_backoff.ready(now)
        ):
            self._write(now)
        if spooling and self._write_backoff.ready(now):
            self._drain_spool(now)

    def drain(self) -> None:
        """On stop: one attempt to store (or spool) everything waiting; the rest stays
        unacknowledged."""
        now = self._clock.now()
        self._letters.retry(now, force=True)
        if self._writing is not None:
            outcome = _outcome(self._writing)  # waits for the write under way
            self._writing = None
            if not self._write_finished(now, *outcome):
                return
        while True:
            if not self._unwritten:
                self._unwritten = self._batcher.take()[1]
            if not self._unwritten or not self._write(now, wait=True):
                return

    # -- store -------------------------------------------------------------------------

    def _write(self, now: datetime, *, wait: bool = False) -> bool:
        """Write the unwritten batch; True when it is done (stored, spooled, dead-lettered).
        With a writer and not ``wait``, start the write and return False: :meth:`step`
        finishes it when the writer is done."""
        if self._spooling:
            return self._to_spool()
        if self._write_backoff.failures:
            self.metrics.store_retries += 1
        points = [point for message in self._unwritten for point in message.points]
        if self._writer is not None and not wait:
            try:
                self._writing = self._writer.submit(_timed_write, self._store, points)
                return False
            except RuntimeError:  # the writer was shut down (interpreter exit): write here
                pass
        try:
            seconds = _timed_write(self._store, points)
        except Exception as exc:
            return self._write_finished(now, 0.0, exc)
        return self._write_finished(now, seconds, None)

    def _write_finished(self, now: datetime, seconds: float, exc: BaseException | None) -> bool:
        """What follows a write (logged with the batch's id: ``batch-<first message's seq>``)."""
        batch = f"batch-{self._unwritten[0].seq}" if self._unwritten else None
        with correlation(batch):
            return self._after_write(now, seconds, exc)

    def _after_write(self, now: datetime, seconds: float, exc: BaseException | None) -> bool:
        """What the store said about the unwritten batch; True when it is done."""
        if exc is None:
            self._write_backoff.succeeded()
            self._stored(self._unwritten, seconds)
            self._unwritten = []
            return True
        if isinstance(exc, PermanentError):
            log.warning("store refused part of a batch (%s); finding the refused by halves", exc)
            return self._write_by_halves(now, exc)
        if isinstance(exc, RetryableError):
            return self._write_failed(now, str(exc))
        # an adapter bug: keep the batch, as for RetryableError
        log.error("store write failed unexpectedly", exc_info=exc)
        return self._write_failed(now, repr(exc))

    def _write_by_halves(self, now: datetime, refused: PermanentError) -> bool:
        """The store refused some messages of the batch (and, like InfluxDB, may have kept
        the rest: writing a point again is harmless). Write halves of halves until each
        refused message stands alone: about log2(batch) writes per refused message instead
        of one write per message."""
        if len(self._unwritten) == 1:
            reason = f"store refused the reading: {refused}"
            self._dead_letter(self._unwritten.pop(), reason, STORE_REFUSED)
            self._write_backoff.succeeded()
            return True
        middle = len(self._unwritten) // 2
        stack = [self._unwritten[middle:], self._unwritten[:middle]]  # first half on top
        while stack:
            group = stack.pop()
            try:
                seconds = _timed_write(
                    self._store, [point for message in group for point in message.points]
                )
            except PermanentError as exc:
                if len(group) == 1:
                    reason = f"store refused the reading: {exc}"
                    self._dead_letter(group[0], reason, STORE_REFUSED)
                else:
                    middle = len(group) // 2
                    stack += [group[middle:], group[:middle]]
                continue
            except Exception as exc:  # the store went away meanwhile: keep the rest, in order
                self._unwritten = group + [message for rest in reversed(stack) for message in rest]
                return self._write_failed(now, str(exc))
            self._stored(group, seconds)
        self._unwritten = []
        self._write_backoff.succeeded()
        return True

    def _stored(self, messages: Sequence[_Message], seconds: float) -> None:
        device_ts = (message.points[0].ts for message in messages if message.points)
        self.metrics.batch_stored(len(messages), seconds, device_ts, self._clock.now())
        for message in messages:
            self._finished(message)

    def _write_failed(self, now: datetime, why: str) -> bool:
        """Count the failure, then spool the batch; True when it is in the spool."""
        self.metrics.write_errors += 1
        delay = self._write_backoff.failed(now)
        count = len(self._unwritten)
        if self._spool is not None and self._to_spool():
            log.warning("store write of %d messages failed (%s); spooled to disk", count, why)
            return True
        log.warning(
            "store write of %d messages failed (%s); kept unacknowledged, retry in %.1f s",
            count,
            why,
            delay,
        )
        return False

    # -- disk spool --------------------------------------------------------------------

    def _to_spool(self) -> bool:
        """Append the unwritten batch to the spool and acknowledge it; False if it did not fit
        (or the disk failed): then it stays unacknowledged and the broker keeps the rest."""
        assert self._spool is not None
        batch = self._unwritten
        try:
            self._spool.append([point for message in batch for point in message.points])
        except (SpoolFullError, OSError) as exc:
            if not self._spool_full:
                log.warning("cannot spool a batch (%s); kept unacknowledged", exc)
            self._spool_full = True
            return False
        self._spool_full = False
        self._unwritten = []
        self.metrics.spooled += len(batch)
        for message in batch:
            self._finished(message)
        return True

    def _drain_spool(self, now: datetime) -> None:
        """Write the oldest spooled batch to the store (one per round: input keeps flowing)."""
        assert self._spool is not None
        self.metrics.store_retries += 1
        try:
            refused = drain_oldest(self._spool, self._store, self._dead_letters, now)
        except Exception as exc:  # the batch stays on disk and is retried
            self.metrics.write_errors += 1
            delay = self._write_backoff.failed(now)
            bug = not isinstance(exc, RetryableError)
            log.warning("spooled batch not stored (%r); retry in %.1f s", exc, delay, exc_info=bug)
            return
        self.metrics.dead_letter(STORE_REFUSED, refused)
        self.metrics.batches_written += 1
        self._spool_full = False  # room again: a waiting batch may follow
        self._write_backoff.succeeded()

    # -- dead letters ------------------------------------------------------------------

    def _dead_letter(self, message: _Message, reason: str, code: str) -> None:
        """Keep the message with its reason; acknowledged and counted once it is kept."""
        delivery = message.delivery
        letter = DeadLetter(delivery.received_at, delivery.topic, delivery.payload, reason)
        with correlation(f"{delivery.topic}#{delivery.mid}"):
            self._letters.put(letter, message, code, self._clock.now())

    def _letter_kept(self, message: _Message, code: str) -> None:
        self.metrics.dead_letter(code)
        self._finished(message)

    # -- acknowledgement ---------------------------------------------------------------

    def _finished(self, message: _Message) -> None:
        for seq in self._sequencer.done(message.seq):
            if not self._ack(self._in_flight.pop(seq)):
                self.acks_skipped += 1


def _timed_write(store: Store, points: Sequence[Point]) -> float:
    """Write, and return how long the store took (seconds)."""
    began = time.perf_counter()
    store.write(points)
    return time.perf_counter() - began


def _outcome(write: Future[float]) -> tuple[float, BaseException | None]:
    """(seconds, None) for a finished write, (0, the error) for a failed one; waits."""
    exc = write.exception()
    return (0.0, exc) if exc is not None else (write.result(), None)
