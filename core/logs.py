"""Logging for every cityops service: text lines for a terminal, or one JSON object per
line for journald and log shippers (``logging.format``), with a correlation id.

The correlation id lives in a :class:`contextvars.ContextVar`: the dashboard sets it per
HTTP request, the alert engine per round and per e-mail, the ingest worker per batch.
:class:`CorrelationFilter` on the handler copies it onto each record, so any logger
(ours, waitress', SQLAlchemy's) gets it. A new thread starts without one, so ids never
leak between the server's threads. Setting one costs a ContextVar.set (~50 ns): callers
set it per batch or request, never per message.

JSON line fields: ``ts`` (ISO 8601 UTC, milliseconds, ``Z``), ``level``, ``logger``,
``msg``, ``service``, then ``correlation_id`` when one is set, ``exc`` (the formatted
traceback) when the record carries an exception, ``stack`` for ``stack_info``.
Design: docs/design/016-self-monitoring.md.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import IO, Final, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")

_correlation: ContextVar[str | None] = ContextVar("cityops_correlation_id", default=None)


def correlation_id() -> str | None:
    """The id of what this thread (or task) is doing now, if any."""
    return _correlation.get()


def set_correlation_id(value: str | None) -> Token[str | None]:
    """Set the id; give the token to :func:`reset_correlation_id` when the work is done."""
    return _correlation.set(value)


def reset_correlation_id(token: Token[str | None]) -> None:
    _correlation.reset(token)


@contextmanager
def correlation(value: str | None) -> Iterator[str | None]:
    """``with correlation("round-3f2a…"):`` — the id for the records logged inside."""
    token = _correlation.set(value)
    try:
        yield value
    finally:
        _correlation.reset(token)


def new_id() -> str:
    """A fresh id: 16 hex digits (64 random bits)."""
    return uuid.uuid4().hex[:16]


def sane_request_id(value: str | None) -> str | None:
    """``value`` when it is a usable id (1–64 of ``A-Z a-z 0-9 . _ -``), else None: an
    incoming X-Request-ID must not inject line feeds, quotes or megabytes into the logs."""
    if value is None or not REQUEST_ID.fullmatch(value):
        return None
    return value


class CorrelationFilter(logging.Filter):
    """Puts ``correlation_id`` (None when unset) and ``service`` on every record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = _correlation.get()
        record.service = self.service
        return True


def iso_utc(created: float) -> str:
    """A record's time as ``2026-11-02T01:00:00.123Z``."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line (non-ASCII kept as is: Vietnamese stays readable)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "service": getattr(record, "service", self.service),
        }
        correlation = getattr(record, "correlation_id", None)
        if correlation is None:
            correlation = _correlation.get()  # a handler without the filter
        if correlation is not None:
            entry["correlation_id"] = correlation
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The usual line, with `` [id]`` after the logger name while a correlation id is set."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        correlation = getattr(record, "correlation_id", None)
        if correlation is None:
            return line
        head, colon, rest = line.partition(": ")
        return f"{head} [{correlation}]{colon}{rest}"


def make_handler(
    log_format: LogFormat, service: str, stream: IO[str] | None = None
) -> logging.Handler:
    """A stream handler (stderr by default) with the filter and the formatter."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(CorrelationFilter(service))
    handler.setFormatter(JsonFormatter(service) if log_format == "json" else TextFormatter())
    handler.set_name(f"cityops-{log_format}")
    return handler


def configure_logging(
    *,
    log_format: LogFormat = "text",
    level: str = "INFO",
    service: str = "cityops",
    stream: IO[str] | None = None,
) -> logging.Handler:
    """The root logger writes through one handler of ours: called again (settings read
    after the command started), it replaces the handler it installed before, and any
    handler ``logging.basicConfig`` put there. Returns the handler."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"logging.level must be DEBUG, INFO, WARNING or ERROR: {level!r}")
    root = logging.getLogger()
    for old in list(root.handlers):
        # ours, or basicConfig's plain one; pytest's capture handlers (subclasses) stay
        if (old.get_name() or "").startswith("cityops-") or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    handler = make_handler(log_format, service, stream)
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler
