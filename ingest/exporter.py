"""The worker's metrics for Prometheus and its health: ``GET /metrics`` (text exposition
format 0.0.4, rendered with core/exposition.py) and ``GET /health`` (JSON, 200 or 503),
served by the shared stdlib HTTP server in a daemon thread.

Health (docs/design/016-self-monitoring.md): "down" (503) when the broker has been
disconnected for more than :data:`DISCONNECTED_DOWN_S` or the spool is fuller than
:data:`SPOOL_DOWN_FRACTION` of ``ingest.spool_max_mb``; "degraded" while disconnected for
less, while the spool holds batches, or within :data:`WRITE_ERROR_RECENT_S` of a failed
store write. The server thread samples the gauges every 0.2 s to time those states.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Final

from core.exposition import (
    CONTENT_TYPE as CONTENT_TYPE,  # importable from here, as before
)
from core.exposition import (
    HEALTH_PATH,
    METRICS_PATH,
    Answer,
    HttpEndpoint,
    ServedEndpoint,
    family,
    health_answer,
    histogram_samples,
    labels_text,
    worst,
)
from core.exposition import escape_help as escape_help
from core.exposition import escape_label_value as escape_label_value
from core.exposition import format_value as format_value
from core.ports import Clock
from core.settings import IngestSettings
from ingest.metrics import PREFIX, HistogramSnapshot, IngestMetrics, MetricsSnapshot

log = logging.getLogger("cityops.ingest")

DISCONNECTED_DOWN_S: Final = 30.0
SPOOL_DOWN_FRACTION: Final = 0.8
WRITE_ERROR_RECENT_S: Final = 60.0

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


def _histogram(
    name: str, help_text: str, histogram: HistogramSnapshot, worker: dict[str, str]
) -> list[str]:
    return [
        *family(PREFIX + name, "histogram", help_text),
        *histogram_samples(PREFIX + name, histogram, worker),
    ]


def render_prometheus(snapshot: MetricsSnapshot, worker: str) -> str:
    """The exposition text of one snapshot; every sample carries ``worker="<client_id>"``."""
    labels = {"worker": worker}
    lines: list[str] = []
    for name, kind, help_text, attribute in _SIMPLE:
        lines.extend(family(PREFIX + name, kind, help_text))
        lines.append(f"{PREFIX}{name}{labels_text(labels)} {getattr(snapshot, attribute)}")
    dead = PREFIX + "dead_lettered_total"
    lines.extend(family(dead, "counter", "Messages kept in dead-letter, by reason."))
    for reason, count in snapshot.dead_lettered.items():
        lines.append(f"{dead}{labels_text(labels | {'reason': reason})} {count}")
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
        last_name = PREFIX + "lag_last_seconds"
        lines.extend(family(last_name, "gauge", "Lag of the oldest point of the last batch."))
        lines.append(f"{last_name}{labels_text(labels)} {format_value(snapshot.lag_last_s)}")
    return "\n".join(lines) + "\n"


class _Watch:
    """When the broker went away and when a store write last failed, from samples of the
    worker's gauges (the worker itself keeps no timestamps: its hot path stays lean)."""

    def __init__(self, metrics: IngestMetrics, clock: Clock) -> None:
        self._metrics = metrics
        self._clock = clock
        self.disconnected_since: datetime | None = clock.now()  # not connected yet
        self.write_errors = metrics.write_errors
        self.last_write_error_at: datetime | None = None

    def sample(self) -> None:
        metrics, now = self._metrics, self._clock.now()
        if metrics.mqtt_connected:
            self.disconnected_since = None
        elif self.disconnected_since is None:
            self.disconnected_since = now
        errors = metrics.write_errors
        if errors != self.write_errors:
            self.write_errors = errors
            self.last_write_error_at = now


class MetricsExporter(ServedEndpoint):
    """Serves ``GET /metrics`` and ``GET /health`` on ``host:port`` (port 0 picks a free
    one, see :attr:`port`) from a daemon thread. Binding happens in :meth:`start`;
    :meth:`stop` closes the socket and joins the thread. ``spool_max_bytes`` (None: no
    spool) is the capacity the health check compares ``spool_bytes`` with."""

    def __init__(
        self,
        metrics: IngestMetrics,
        *,
        worker: str,
        host: str,
        port: int,
        clock: Clock,
        spool_max_bytes: int | None = None,
    ) -> None:
        self._metrics = metrics
        self._worker = worker
        self._clock = clock
        self._spool_max_bytes = spool_max_bytes
        self._watch = _Watch(metrics, clock)
        self._endpoint = HttpEndpoint(
            {METRICS_PATH: self._metrics_answer, HEALTH_PATH: self._health_answer},
            host=host,
            port=port,
            port_key="ingest.metrics_port",
            host_key="ingest.metrics_host",
            what="ingest metrics",
            log=log,
            tick=self._watch.sample,
        )

    def render(self) -> str:
        return render_prometheus(self._metrics.snapshot(self._clock.now()), self._worker)

    def health(self) -> dict[str, Any]:
        """The /health document: ``status`` ok | degraded | down, and what it is made of."""
        self._watch.sample()
        now = self._clock.now()
        metrics, watch = self._metrics, self._watch
        since = watch.disconnected_since
        disconnected_s = None if since is None else (now - since).total_seconds()
        error_at = watch.last_write_error_at
        error_age_s = None if error_at is None else (now - error_at).total_seconds()
        spool_used = metrics.spool_bytes / self._spool_max_bytes if self._spool_max_bytes else None
        broker = "ok"
        if disconnected_s is not None:
            broker = "down" if disconnected_s > DISCONNECTED_DOWN_S else "degraded"
        spool = "ok"
        if spool_used is not None and spool_used > SPOOL_DOWN_FRACTION:
            spool = "down"
        elif metrics.spool_batches:
            spool = "degraded"  # the store is behind: batches wait on disk
        store = (
            "degraded" if error_age_s is not None and error_age_s < WRITE_ERROR_RECENT_S else "ok"
        )
        return {
            "status": worst(broker, spool, store),
            "worker": self._worker,
            "mqtt_connected": bool(metrics.mqtt_connected),
            "disconnected_s": disconnected_s,
            "spool_bytes": metrics.spool_bytes,
            "spool_used": None if spool_used is None else round(spool_used, 4),
            "last_write_error_age_s": error_age_s,
            "checks": {"broker": broker, "spool": spool, "store": store},
        }

    def _metrics_answer(self) -> Answer:
        return 200, CONTENT_TYPE, self.render().encode("utf-8")

    def _health_answer(self) -> Answer:
        return health_answer(self.health())


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
        spool_max_bytes=settings.spool_max_mb * 1024 * 1024 if settings.spool_dir else None,
    )
