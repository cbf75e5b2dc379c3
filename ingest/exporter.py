"""The worker's metrics for Prometheus: the text exposition format 0.0.4, served on
``GET /metrics`` by a stdlib HTTP server in a daemon thread.

Format rules (prometheus.io, "Exposition formats"): UTF-8 lines ending in ``\\n``; ``# HELP``
(backslash and line feed escaped) and ``# TYPE`` before a family's samples, each family in
one group; label values escape backslash, double quote and line feed; a histogram ``x``
gives ``x_bucket{le="…"}`` in increasing ``le`` order ending with ``+Inf`` (equal to
``x_count``), then ``x_sum`` and ``x_count``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from core.errors import ConfigError
from core.ports import Clock
from core.settings import IngestSettings
from ingest.metrics import PREFIX, HistogramSnapshot, IngestMetrics, MetricsSnapshot

log = logging.getLogger("cityops.ingest")

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
METRICS_PATH: Final = "/metrics"

# (name without prefix, type, help, attribute of MetricsSnapshot)
_SIMPLE: Final = (
    ("received_total", "counter", "MQTT messages received.", "received"),
    ("stored_total", "counter", "Messages whose points are in the store.", "stored"),
    ("spooled_total", "counter", "Messages acknowledged once in the disk spool.", "spooled"),
    ("batches_written_total", "counter", "Successful store writes.", "batches_written"),
    ("write_errors_total", "counter", "Failed store writes (each is retried).", "write_errors"),
    ("store_retries_total", "counter", "Store writes retrying failed data.", "store_retries"),
    ("connects_total", "counter", "MQTT connections made (first and reconnects).", "connects"),
    ("pending", "gauge", "Messages received and not yet acknowledged.", "pending"),
    ("spool_bytes", "gauge", "Bytes in the disk spool.", "spool_bytes"),
    ("spool_batches", "gauge", "Batches in the disk spool.", "spool_batches"),
    ("mqtt_connected", "gauge", "1 while the MQTT session is up, else 0.", "mqtt_connected"),
)


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


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{key}="{escape_label_value(v)}"' for key, v in pairs.items()) + "}"


def _family(name: str, kind: str, help_text: str) -> Iterator[str]:
    yield f"# HELP {PREFIX}{name} {escape_help(help_text)}"
    yield f"# TYPE {PREFIX}{name} {kind}"


def _histogram(
    name: str, help_text: str, histogram: HistogramSnapshot, worker: dict[str, str]
) -> Iterator[str]:
    yield from _family(name, "histogram", help_text)
    cumulative = histogram.cumulative()
    for bound, count in zip((*histogram.bounds, math.inf), cumulative, strict=True):
        labels = _labels(worker | {"le": format_value(bound)})
        yield f"{PREFIX}{name}_bucket{labels} {count}"
    yield f"{PREFIX}{name}_sum{_labels(worker)} {format_value(histogram.sum)}"
    yield f"{PREFIX}{name}_count{_labels(worker)} {cumulative[-1]}"


def render_prometheus(snapshot: MetricsSnapshot, worker: str) -> str:
    """The exposition text of one snapshot; every sample carries ``worker="<client_id>"``."""
    labels = {"worker": worker}
    lines: list[str] = []
    for name, kind, help_text, attribute in _SIMPLE:
        lines.extend(_family(name, kind, help_text))
        lines.append(f"{PREFIX}{name}{_labels(labels)} {getattr(snapshot, attribute)}")
    lines.extend(
        _family("dead_lettered_total", "counter", "Messages kept in dead-letter, by reason.")
    )
    for reason, count in snapshot.dead_lettered.items():
        lines.append(f"{PREFIX}dead_lettered_total{_labels(labels | {'reason': reason})} {count}")
    lines.extend(
        _histogram(
            "write_latency_seconds", "Duration of successful store writes.",
            snapshot.write_latency, labels,
        )
    )  # fmt: skip
    lines.extend(
        _histogram(
            "lag_seconds", "Device timestamp to stored, per point (ahead counts as 0).",
            snapshot.lag, labels,
        )
    )  # fmt: skip
    if snapshot.lag_last_s is not None:
        lines.extend(
            _family("lag_last_seconds", "gauge", "Lag of the oldest point of the last batch.")
        )
        last = format_value(snapshot.lag_last_s)
        lines.append(f"{PREFIX}lag_last_seconds{_labels(labels)} {last}")
    return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    server: _MetricsServer

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        if self.path.split("?", 1)[0] != METRICS_PATH:
            self._send(404, b"not found: the metrics are at /metrics\n", with_body=with_body)
            return
        try:
            body = self.server.render().encode("utf-8")
        except Exception:  # a bug here must not kill the exporter thread, nor go unseen
            self.server.errors += 1
            log.exception("rendering the ingest metrics failed")
            self._send(500, b"internal error\n", with_body=with_body)
            return
        self._send(200, body, with_body=with_body, content_type=CONTENT_TYPE)

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
        log.debug("metrics exporter: " + format, *args)


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], render: Callable[[], str]) -> None:
        super().__init__(address, _Handler)
        self.render = render
        self.errors = 0


class MetricsExporter:
    """Serves ``GET /metrics`` on ``host:port`` (port 0 picks a free one, see :attr:`port`)
    from a daemon thread. Binding happens in :meth:`start`; :meth:`stop` closes the socket
    and joins the thread."""

    def __init__(
        self, metrics: IngestMetrics, *, worker: str, host: str, port: int, clock: Clock
    ) -> None:
        self._metrics = metrics
        self._worker = worker
        self._host = host
        self._port = port
        self._clock = clock
        self._server: _MetricsServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one picked for port 0)."""
        return self._server.server_address[1] if self._server is not None else self._port

    @property
    def errors(self) -> int:
        """Requests that failed inside the exporter (logged with their traceback)."""
        return self._server.errors if self._server is not None else 0

    def render(self) -> str:
        return render_prometheus(self._metrics.snapshot(self._clock.now()), self._worker)

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("MetricsExporter.start() called twice")
        try:
            self._server = _MetricsServer((self._host, self._port), self.render)
        except OSError as exc:
            raise ConfigError(
                "ingest.metrics_port",
                self._port,
                f"must be a free port on ingest.metrics_host {self._host} ({exc.strerror})",
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="cityops-metrics",
            daemon=True,
        )
        self._thread.start()
        log.info("ingest metrics on http://%s:%d%s", self._host, self.port, METRICS_PATH)

    def stop(self, timeout_s: float = 5.0) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()  # returns once serve_forever has left its loop
        server.server_close()
        if thread is not None:
            thread.join(timeout_s)


def make_exporter(
    settings: IngestSettings, metrics: IngestMetrics, clock: Clock
) -> MetricsExporter | None:
    """The exporter the settings ask for (not started); None when ingest.metrics_port is null."""
    if settings.metrics_port is None:
        return None
    return MetricsExporter(
        metrics,
        worker=settings.client_id,
        host=settings.metrics_host,
        port=settings.metrics_port,
        clock=clock,
    )
