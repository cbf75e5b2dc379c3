"""Limits password guessing at sign-in (issue #5): pure, with an injected clock."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.ports import Clock


@dataclass(slots=True)
class _Attempts:
    failures: deque[datetime]
    locked_until: datetime | None = None


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
        self._state: dict[tuple[str, str], _Attempts] = {}

    @staticmethod
    def _key(username: str, address: str) -> tuple[str, str]:
        return (username.strip().lower(), address)

    def locked_for(self, username: str, address: str) -> timedelta | None:
        """How long this pair stays locked, or None when it may try now."""
        state = self._state.get(self._key(username, address))
        if state is None or state.locked_until is None:
            return None
        left = state.locked_until - self._clock.now()
        return left if left > timedelta(0) else None

    def is_locked(self, username: str, address: str) -> bool:
        return self.locked_for(username, address) is not None

    def record_failure(self, username: str, address: str) -> None:
        now = self._clock.now()
        key = self._key(username, address)
        state = self._state.get(key)
        if state is None:
            if len(self._state) >= self._max_keys:
                self._forget_stale(now)
            state = self._state[key] = _Attempts(deque())
        if state.locked_until is not None:
            if now < state.locked_until:
                return  # already locked: failures while locked do not extend it
            state.locked_until = None
        while state.failures and now - state.failures[0] >= self._window:
            state.failures.popleft()
        state.failures.append(now)
        if len(state.failures) >= self._max_failures:
            state.locked_until = now + self._lockout
            state.failures.clear()

    def record_success(self, username: str, address: str) -> None:
        self._state.pop(self._key(username, address), None)

    def _forget_stale(self, now: datetime) -> None:
        for key, state in list(self._state.items()):
            locked = state.locked_until is not None and now < state.locked_until
            recent = bool(state.failures) and now - state.failures[-1] < self._window
            if not locked and not recent:
                del self._state[key]
