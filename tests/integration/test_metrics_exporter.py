"""The ingest metrics exporter over real HTTP on 127.0.0.1: GET /metrics in the Prometheus
text format, 404 elsewhere, a clean stop that frees the port, a busy port named as a
configuration error."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator

import pytest

from core.errors import ConfigError
from core.settings import parse_settings
from ingest.exporter import CONTENT_TYPE, MetricsExporter, make_exporter
from ingest.metrics import IngestMetrics
from tests.conftest import FakeClock
from tests.promtext import parse

pytestmark = pytest.mark.integration


def get(port: int, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


@pytest.fixture
def metrics() -> IngestMetrics:
    return IngestMetrics()


@pytest.fixture
def exporter(metrics: IngestMetrics, clock: FakeClock) -> Iterator[MetricsExporter]:
    running = MetricsExporter(metrics, worker="ingest-a", host="127.0.0.1", port=0, clock=clock)
    running.start()
    yield running
    running.stop()


def test_get_metrics_serves_the_exposition(
    exporter: MetricsExporter, metrics: IngestMetrics
) -> None:
    metrics.received = 41
    metrics.dead_letter("not_json")
    status, content_type, body = get(exporter.port, "/metrics")
    assert status == 200
    assert content_type == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    families = parse(body.decode("utf-8"))
    assert families["cityops_ingest_received_total"].samples == [
        ("cityops_ingest_received_total", {"worker": "ingest-a"}, 41.0)
    ]
    metrics.received += 1  # each scrape reads the registry anew
    assert (
        b'cityops_ingest_received_total{worker="ingest-a"} 42\n'
        in get(exporter.port, "/metrics")[2]
    )
    status, _, body = get(exporter.port, "/metrics", method="HEAD")
    assert (status, body) == (200, b"")


@pytest.mark.parametrize("path", ["/", "/metricsx", "/metrics/extra", "/favicon.ico"])
def test_other_paths_are_not_found(exporter: MetricsExporter, path: str) -> None:
    status, _, body = get(exporter.port, path)
    assert status == 404
    assert b"/metrics" in body


def test_stop_closes_the_port_and_is_idempotent(metrics: IngestMetrics, clock: FakeClock) -> None:
    exporter = MetricsExporter(metrics, worker="w", host="127.0.0.1", port=0, clock=clock)
    exporter.start()
    port = exporter.port
    assert get(port, "/metrics")[0] == 200
    exporter.stop()
    exporter.stop()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass


def test_a_busy_port_is_a_configuration_error(
    exporter: MetricsExporter, metrics: IngestMetrics, clock: FakeClock
) -> None:
    second = MetricsExporter(metrics, worker="w", host="127.0.0.1", port=exporter.port, clock=clock)
    with pytest.raises(ConfigError, match=r"ingest\.metrics_port must be a free port"):
        second.start()


def test_settings_pick_the_exporter(metrics: IngestMetrics, clock: FakeClock) -> None:
    off = parse_settings({"ingest": {"metrics_port": None}}, environ={})
    assert make_exporter(off.ingest, metrics, clock) is None
    settings = parse_settings({"ingest": {"metrics_port": 0, "client_id": "ingest-b"}}, environ={})
    exporter = make_exporter(settings.ingest, metrics, clock)
    assert exporter is not None
    exporter.start()
    try:
        body = get(exporter.port, "/metrics")[2].decode()
        assert 'worker="ingest-b"' in body
    finally:
        exporter.stop()
