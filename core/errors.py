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


# Stable reason codes of DecodeError, so dead letters can be counted by cause (a bounded
# label set: the reason text names values and would explode a metric's series).
DECODE_CODES: tuple[str, ...] = (
    "bad_topic",  # the topic does not match its contract's template (or no contract)
    "empty",  # the payload has no bytes
    "too_large",  # more than ingest.max_payload_bytes
    "bad_utf8",
    "not_json",  # not parseable, or nested too deeply
    "bad_shape",  # valid JSON of the wrong shape (not an object, a SenML record not an object)
    "duplicate_key",  # a key twice in one object, or one metric twice at one time in a pack
    "no_ts",
    "bad_ts",  # ts of the wrong type or format, or out of range
    "ts_future",  # further ahead than ingest.max_clock_skew_s
    "ts_past",  # before 2000 (clock never set) or older than ingest.max_age_days
    "bad_metric_name",
    "not_numeric",  # a metric that is a string, boolean, null, object; SenML vs/vb/vd
    "nan_or_inf",
    "out_of_range",  # a negative counter
    "no_metrics",
    "bad_position",  # lat/lon missing one half, not a number, out of range
    "no_device",  # SenML: neither the topic nor the names say which device
    "unknown_unit",  # gov: the unit code is not a unit of the configured geography
    "kind_mismatch",  # the registry says another kind than the topic
    "unsupported",  # valid input this contract does not take (SenML sum, bver > 10 ...)
    "invalid",  # any other refusal
)


class DecodeError(CityOpsError):
    """A message cannot be turned into a reading. ``reason`` is shown in dead-letter,
    ``code`` (one of DECODE_CODES) is what dead letters are counted by."""

    def __init__(self, reason: str, code: str = "invalid") -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason)


def reason_code(exc: BaseException) -> str:
    """The counting label of a refused message: DecodeError's code, "internal" for a bug."""
    return exc.code if isinstance(exc, DecodeError) else "internal"


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
