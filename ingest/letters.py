"""Dead letters on their way to the state database, in arrival order.

A message is acknowledged only once its dead letter is kept: while the database is down
(``RetryableError``) the letters wait here, in order, and are retried with backoff; the
messages stay unacknowledged meanwhile, so the broker still holds them if we stop.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from core.errors import RetryableError
from core.ports import DeadLetterStore
from core.types import DeadLetter
from ingest.batch import Backoff
from ingest.loglimit import LimitedLog

log = logging.getLogger("cityops.ingest")

Token = TypeVar("Token")


class LetterQueue(Generic[Token]):
    """Keeps dead letters; calls ``kept(token, code)`` for each once it is in the database."""

    def __init__(
        self,
        store: DeadLetterStore,
        kept: Callable[[Token, str], None],
        *,
        retry_first_s: float,
        retry_max_s: float,
    ) -> None:
        self._store = store
        self._kept = kept
        self._waiting: deque[tuple[DeadLetter, Token, str]] = deque()
        self._backoff = Backoff(retry_first_s, retry_max_s)
        self._log = LimitedLog(log, what="dead letters (cityops deadletter list)")

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def retry_at(self) -> datetime | None:
        """When the next retry is due; None when nothing waits."""
        return self._backoff.retry_at if self._waiting else None

    def put(self, letter: DeadLetter, token: Token, code: str, now: datetime) -> None:
        """Keep ``letter`` (reason ``code``), behind any that wait for the database."""
        self._log.info("dead letter from %s: %s", letter.topic, letter.reason)
        if self._waiting:  # keep their order: the database is known to be down
            self._waiting.append((letter, token, code))
            return
        try:
            self._store.put(letter)
        except RetryableError as exc:
            self._waiting.append((letter, token, code))
            delay = self._backoff.failed(now)
            log.warning("dead letter not stored (%s); retry in %.1f s", exc, delay)
            return
        self._kept(token, code)

    def retry(self, now: datetime, *, force: bool = False) -> None:
        """Store the waiting letters, oldest first, if the backoff allows (or ``force``)."""
        if not self._waiting or not (force or self._backoff.ready(now)):
            return
        while self._waiting:
            letter, token, code = self._waiting[0]
            try:
                self._store.put(letter)
            except RetryableError as exc:
                delay = self._backoff.failed(now)
                log.warning("dead letters still not stored (%s); retry in %.1f s", exc, delay)
                return
            self._waiting.popleft()
            self._kept(token, code)
        self._backoff.succeeded()
