"""Self-monitoring shared by the services: the Prometheus text exposition format 0.0.4, a
thread-safe histogram, health probes with a timeout, and the small stdlib HTTP server that
serves ``GET /metrics`` and ``GET /health`` from a daemon thread (ingest, alerts; the
dashboard serves both from its own Flask server).

Format rules (prometheus.io, "Exposition formats"): UTF-8 lines ending in ``\\n``; ``# HELP``
(backslash and line feed escaped) and ``# TYPE`` before a family's samples, each family in
one group; label values escape backslash, double quote and line feed; a histogram ``x``
gives ``x_bucket{le="…"}`` in increasing ``le`` order ending with ``+Inf`` (equal to
``x_count``), then ``x_sum`` and ``x_count``. Design: docs/design/016-self-monitoring.md.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any, Final, Protocol

from core.errors import ConfigError

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
JSON_TYPE: Final = "application/json"
METRICS_PATH: Final = "/metrics"
HEALTH_PATH: Final = "/health"

# status, content type, body
Answer = tuple[int, str, bytes]
Route = Callable[[], Answer]


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Go's ParseFloat reads it back: integers without ``.0``, ``+Inf``/``-Inf``/``NaN``."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def labels_text(pairs: Mapping[str, str]) -> str:
    """``{a="1",b="2"}``; empty pairs give an empty string (a sample without labels)."""
    if not pairs:
        return ""
    return "{" + ",".join(f'{key}="{escape_label_value(v)}"' for key, v in pairs.items()) + "}"


def family(name: str, kind: str, help_text: str) -> Iterator[str]:
    yield f"# HELP {name} {escape_help(help_text)}"
    yield f"# TYPE {name} {kind}"


class HistogramValues(Protocol):
    """What a histogram's samples are rendered from (ingest's HistogramSnapshot too)."""

    @property
    def bounds(self) -> tuple[float, ...]: ...
    @property
    def sum(self) -> float: ...
    def cumulative(self) -> list[int]: ...


def histogram_samples(
    name: str, histogram: HistogramValues, labels: Mapping[str, str]
) -> Iterator[str]:
    """The ``_bucket`` lines (cumulative, ending with ``+Inf``), ``_sum`` and ``_count``."""
    cumulative = histogram.cumulative()
    for bound, count in zip((*histogram.bounds, math.inf), cumulative, strict=True):
        bucket = labels_text({**labels, "le": format_value(bound)})
        yield f"{name}_bucket{bucket} {count}"
    yield f"{name}_sum{labels_text(labels)} {format_value(histogram.sum)}"
    yield f"{name}_count{labels_text(labels)} {cumulative[-1]}"


@dataclass(frozen=True, slots=True)
class HistogramCopy:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket, the last one above every bound
    sum: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[int]:
        running, out = 0, []
        for count in self.counts:
            running += count
            out.append(running)
        return out


def histogram_bounds(bounds: Sequence[float]) -> tuple[float, ...]:
    """Bucket upper bounds, checked: finite and increasing (ValueError naming them)."""
    if not bounds or any(not math.isfinite(bound) for bound in bounds):
        raise ValueError(f"histogram bounds must be finite numbers: {bounds!r}")
    if any(low >= high for low, high in pairwise(bounds)):
        raise ValueError(f"histogram bounds must increase: {bounds!r}")
    return tuple(float(bound) for bound in bounds)


class Histogram:
    """Fixed buckets, safe to observe from several threads (the dashboard's server threads,
    the alert engine and its exporter). The ingest worker has a lock-free one for its single
    writer (ingest/metrics.py)."""

    __slots__ = ("_lock", "bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = histogram_bounds(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self.counts[bisect_left(self.bounds, value)] += 1  # le: a bound's own bucket
            self.sum += value

    def copy(self) -> HistogramCopy:
        with self._lock:
            return HistogramCopy(self.bounds, tuple(self.counts), self.sum)


class Exposition:
    """Builds one scrape's text, family by family."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> Exposition:
        self._lines.extend(family(name, kind, help_text))
        return self

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        self._lines.append(f"{name}{labels_text(labels or {})} {format_value(value)}")

    def simple(
        self,
        name: str,
        kind: str,
        help_text: str,
        value: float,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.family(name, kind, help_text).sample(name, value, labels)

    def histogram(self, name: str, values: HistogramValues, labels: Mapping[str, str]) -> None:
        self._lines.extend(histogram_samples(name, values, labels))

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


# -- health -------------------------------------------------------------------------------


def probe(check: Callable[[], object], timeout_s: float) -> str | None:
    """Run ``check`` in a daemon thread; None when it returned within ``timeout_s``, else
    what went wrong (its exception, or "no answer in N s": the thread is left to finish)."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            check()
        except Exception as exc:  # any failure is the probe's answer, not a crash
            outcome.append(f"{type(exc).__name__}: {exc}"[:300])
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, name="cityops-health-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        return f"no answer in {timeout_s:g} s"
    return outcome[0]


def health_answer(payload: Mapping[str, Any]) -> Answer:
    """200 for "ok" and "degraded", 503 for "down"; the payload as compact JSON."""
    status = 503 if payload.get("status") == "down" else 200
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return status, JSON_TYPE, body + b"\n"


def worst(*statuses: str) -> str:
    order = ("ok", "degraded", "down")
    return max(statuses, key=order.index, default="ok")


# -- the HTTP server ----------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self._send(404, self.server.not_found, with_body=with_body)
            return
        try:
            status, content_type, body = route()
        except Exception:  # a bug here must not kill the server thread, nor go unseen
            self.server.errors += 1
            self.server.log.exception("answering %s failed (%s)", self.path, self.server.what)
            self._send(500, b"internal error\n", with_body=with_body)
            return
        self._send(status, body, with_body=with_body, content_type=content_type)

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        with_body: bool,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        self.server.log.debug(f"{self.server.what}: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        routes: Mapping[str, Route],
        *,
        what: str,
        log: logging.Logger,
        tick: Callable[[], None] | None,
    ) -> None:
        super().__init__(address, _Handler)
        self.routes = dict(routes)
        self.what = what
        self.log = log
        self.tick = tick
        self.errors = 0
        self.not_found = f"not found: try {' or '.join(routes)}\n".encode()

    def service_actions(self) -> None:
        # Called by serve_forever every poll interval: a cheap watcher without a thread.
        if self.tick is not None:
            try:
                self.tick()
            except Exception:
                self.errors += 1
                self.tick = None  # logged once, not five times a second
                self.log.exception("the %s watcher failed and was stopped", self.what)


class HttpEndpoint:
    """Serves ``routes`` (path → answer) on ``host:port`` (port 0 picks a free one, see
    :attr:`port`) from a daemon thread; 404 elsewhere. Binding happens in :meth:`start`
    (a busy port is a ConfigError naming ``port_key``); :meth:`stop` closes the socket and
    joins the thread. ``tick`` runs in the server thread every ``poll_s``."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        *,
        host: str,
        port: int,
        port_key: str,
        host_key: str,
        what: str,
        log: logging.Logger,
        tick: Callable[[], None] | None = None,
        poll_s: float = 0.2,
    ) -> None:
        self._routes = routes
        self._host = host
        self._port = port
        self._port_key = port_key
        self._host_key = host_key
        self._what = what
        self._log = log
        self._tick = tick
        self._poll_s = poll_s
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one picked for port 0)."""
        return self._server.server_address[1] if self._server is not None else self._port

    @property
    def errors(self) -> int:
        """Requests (and watcher runs) that failed inside the server (logged)."""
        return self._server.errors if self._server is not None else 0

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f"{self._what}: start() called twice")
        try:
            self._server = _Server(
                (self._host, self._port),
                self._routes,
                what=self._what,
                log=self._log,
                tick=self._tick,
            )
        except OSError as exc:
            raise ConfigError(
                self._port_key,
                self._port,
                f"must be a free port on {self._host_key} {self._host} ({exc.strerror})",
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self._poll_s},
            name="cityops-metrics",
            daemon=True,
        )
        self._thread.start()
        self._log.info("%s on http://%s:%d%s", self._what, self._host, self.port, METRICS_PATH)

    def stop(self, timeout_s: float = 5.0) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()  # returns once serve_forever has left its loop
        server.server_close()
        if thread is not None:
            thread.join(timeout_s)


class ServedEndpoint:
    """What a service's exporter shows of its :class:`HttpEndpoint` (``self._endpoint``):
    the bound port, the failed requests, start and stop."""

    _endpoint: HttpEndpoint

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one picked for port 0)."""
        return self._endpoint.port

    @property
    def errors(self) -> int:
        """Requests that failed inside the endpoint (logged with their traceback)."""
        return self._endpoint.errors

    def start(self) -> None:
        self._endpoint.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._endpoint.stop(timeout_s)
