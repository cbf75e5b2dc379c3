"""Errors that tell the caller what to do.

    CityOpsError
     ├── ConfigError        a setting is wrong: fix the file or the environment; do not start
     ├── DecodeError        a message cannot be ingested: dead-letter it and go on
     ├── RetryableError     server unreachable or busy (broker, store, SMTP 4xx): keep, retry
     │    └── PartialWriteError  some points were accepted, the others are kept for retry
     └── PermanentError     retrying cannot help (SMTP 5xx, rejected data, bad address)

Always ``raise ... from exc`` so the cause stays in the log.
"""

from __future__ import annotations

from typing import Any


class CityOpsError(Exception):
    """Base of every error cityops raises on purpose."""


class ConfigError(CityOpsError):
    """A configuration key has a bad value. The message names key, value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"{key} {allowed}: {shown}")


class DecodeError(CityOpsError):
    """A message cannot be turned into a reading. ``reason`` is shown in dead-letter."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RetryableError(CityOpsError):
    """A remote part is unreachable or busy; the same call may succeed later."""


class PartialWriteError(RetryableError):
    """Some points were stored, the rest were not; ``rejected`` are the ones to retry."""

    def __init__(self, message: str, accepted: int, rejected: int) -> None:
        self.accepted = accepted
        self.rejected = rejected
        super().__init__(message)


class PermanentError(CityOpsError):
    """Retrying cannot help: the request itself is wrong."""
