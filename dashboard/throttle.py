"""Limits password guessing at sign-in (issue #5): pure, with an injected clock.

:class:`LoginThrottle` keeps its counts in memory (one process); dashboard/throttle_sql.py
keeps the same counts in the state database, shared by every dashboard worker and host.
Both apply :func:`count_failure`."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from core.ports import Clock


class Throttle(Protocol):
    """What the sign-in asks of a throttle (in memory here, or throttle_sql's)."""

    def locked_for(self, username: str, address: str) -> timedelta | None: ...

    def record_failure(self, username: str, address: str) -> None: ...

    def record_success(self, username: str, address: str) -> None: ...


@dataclass(slots=True)
class Attempts:
    """The recent failures of one (username, address) pair, and its lock."""

    failures: deque[datetime]
    locked_until: datetime | None = None


def pair_key(username: str, address: str) -> tuple[str, str]:
    """The account however typed, and the address."""
    return (username.strip().lower(), address)


def lock_left(state: Attempts | None, now: datetime) -> timedelta | None:
    """How long ``state``'s lock lasts from ``now``, or None when the pair may try."""
    if state is None or state.locked_until is None:
        return None
    left = state.locked_until - now
    return left if left > timedelta(0) else None


def count_failure(
    state: Attempts, now: datetime, max_failures: int, window: timedelta, lockout: timedelta
) -> None:
    """One more failure: ``max_failures`` within ``window`` lock the pair for ``lockout``
    (failures while locked do not extend it; after the lock the count starts again)."""
    if state.locked_until is not None:
        if now < state.locked_until:
            return
        state.locked_until = None
    while state.failures and now - state.failures[0] >= window:
        state.failures.popleft()
    state.failures.append(now)
    if len(state.failures) >= max_failures:
        state.locked_until = now + lockout
        state.failures.clear()


class LoginThrottle:
    """Limits password guessing per (username, client address).

    ``max_failures`` failures within ``window`` lock that pair for ``lockout``; a
    successful sign-in clears it. Kept in memory (one process); the clock is injected."""

    def __init__(
        self,
        clock: Clock,
        max_failures: int = 5,
        window: timedelta = timedelta(minutes=15),
        lockout: timedelta = timedelta(minutes=15),
        max_keys: int = 100_000,
    ) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures must be at least 1: {max_failures}")
        self._clock = clock
        self._max_failures = max_failures
        self._window = window
        self._lockout = lockout
        self._max_keys = max_keys
        self._state: dict[tuple[str, str], Attempts] = {}

    def locked_for(self, username: str, address: str) -> timedelta | None:
        """How long this pair stays locked, or None when it may try now."""
        return lock_left(self._state.get(pair_key(username, address)), self._clock.now())

    def is_locked(self, username: str, address: str) -> bool:
        return self.locked_for(username, address) is not None

    def record_failure(self, username: str, address: str) -> None:
        now = self._clock.now()
        key = pair_key(username, address)
        state = self._state.get(key)
        if state is None:
            if len(self._state) >= self._max_keys:
                self._forget_stale(now)
            state = self._state[key] = Attempts(deque())
        count_failure(state, now, self._max_failures, self._window, self._lockout)

    def record_success(self, username: str, address: str) -> None:
        self._state.pop(pair_key(username, address), None)

    def _forget_stale(self, now: datetime) -> None:
        for key, state in list(self._state.items()):
            locked = state.locked_until is not None and now < state.locked_until
            recent = bool(state.failures) and now - state.failures[-1] < self._window
            if not locked and not recent:
                del self._state[key]
