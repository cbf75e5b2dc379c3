"""Batching, in-order acknowledgement and retry backoff for the ingest worker.

Pure-ish: no I/O, time passed in. The worker owns one of each and calls them from one thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from core.types import Point

Token = TypeVar("Token")
Key = TypeVar("Key", bound=Hashable)


@dataclass(slots=True)
class _Entry(Generic[Token]):
    points: Sequence[Point]
    token: Token
    added_at: datetime


class Batcher(Generic[Token]):
    """Points waiting to be written, each message's points kept with its ack token.

    A batch is due when ``max_points`` are waiting or the oldest waited ``max_age``.
    ``take`` hands out whole messages, oldest first, up to ``max_points`` points (at least
    one message, even if it alone has more)."""

    def __init__(self, max_points: int, max_age_s: float) -> None:
        if max_points < 1 or max_age_s <= 0:
            raise ValueError(f"need max_points >= 1 and max_age_s > 0: {max_points}, {max_age_s}")
        self.max_points = max_points
        self.max_age = timedelta(seconds=max_age_s)
        self._entries: deque[_Entry[Token]] = deque()
        self._points = 0

    @property
    def pending_points(self) -> int:
        return self._points

    @property
    def pending_messages(self) -> int:
        return len(self._entries)

    def add(self, points: Sequence[Point], token: Token, now: datetime) -> None:
        self._entries.append(_Entry(points, token, now))
        self._points += len(points)

    def oldest_at(self) -> datetime | None:
        return self._entries[0].added_at if self._entries else None

    def due(self, now: datetime) -> bool:
        if not self._entries:
            return False
        return self._points >= self.max_points or now - self._entries[0].added_at >= self.max_age

    def take(self) -> tuple[list[Point], list[Token]]:
        points: list[Point] = []
        tokens: list[Token] = []
        while self._entries:
            entry = self._entries[0]
            if tokens and len(points) + len(entry.points) > self.max_points:
                break
            self._entries.popleft()
            self._points -= len(entry.points)
            points.extend(entry.points)
            tokens.append(entry.token)
        return points, tokens


class AckSequencer(Generic[Key]):
    """Releases acknowledgements in the order the messages arrived.

    MQTT requires PUBACKs in the order the PUBLISH packets were received (MQTT 3.1.1 §4.6,
    5.0 §4.6); a bad message dead-lettered at once must wait for the valid messages before
    it that are still in a batch."""

    def __init__(self) -> None:
        self._order: deque[Key] = deque()
        self._done: set[Key] = set()

    def __len__(self) -> int:
        """Messages received and not yet released: the in-flight count."""
        return len(self._order)

    def received(self, key: Key) -> None:
        self._order.append(key)

    def done(self, key: Key) -> list[Key]:
        """Mark one message finished; returns the keys now ready to ack, oldest first."""
        self._done.add(key)
        ready: list[Key] = []
        while self._order and self._order[0] in self._done:
            head = self._order.popleft()
            self._done.discard(head)
            ready.append(head)
        return ready


class Backoff:
    """Exponential delay between retries: ``first``, doubling, at most ``cap`` seconds."""

    def __init__(self, first_s: float, cap_s: float) -> None:
        if not 0 < first_s <= cap_s:
            raise ValueError(f"need 0 < first_s <= cap_s: {first_s}, {cap_s}")
        self.first_s = first_s
        self.cap_s = cap_s
        self._failures = 0
        self.retry_at: datetime | None = None

    @property
    def failures(self) -> int:
        return self._failures

    def failed(self, now: datetime) -> float:
        """Record a failure; returns the delay until the next attempt."""
        delay: float = min(self.cap_s, self.first_s * float(2 ** min(self._failures, 32)))
        self._failures += 1
        self.retry_at = now + timedelta(seconds=delay)
        return delay

    def succeeded(self) -> None:
        self._failures = 0
        self.retry_at = None

    def ready(self, now: datetime) -> bool:
        return self.retry_at is None or now >= self.retry_at
