"""The worker's self-metrics on real parts: Mosquitto → IngestWorker → influxd, then the
counters through the Prometheus exporter and the snapshot point in the store."""

from __future__ import annotations

import pytest
import requests

from core.clock import SystemClock
from ingest.exporter import MetricsExporter
from tests.fixtures.waiting import eventually
from tests.integration.test_ingest_mosquitto import (  # noqa: F401 - fixtures used by name
    Rig,
    geography,
    now_ms,
    rig,
)
from tests.promtext import parse

pytestmark = pytest.mark.integration


def test_counters_reach_prometheus_and_the_store(rig: Rig) -> None:  # noqa: F811
    worker = rig.worker()
    base = now_ms() - 60_000
    for n in range(10):
        rig.publish("city/air/aq-hc1", {"ts": base + n * 1000, "pm25": 10.0 + n})
    rig.publish("city/air/aq-hc1", b"{not json")
    rig.publish("city/air/aq-hc1", {"ts": base, "pm25": "high"})
    eventually(lambda: worker.stats.stored == 10 and worker.stats.dead_lettered == 2, "all in")

    metrics = worker.metrics
    assert (metrics.received, metrics.stored) == (12, 10)
    assert {code: n for code, n in metrics.dead_lettered.items() if n} == {
        "not_json": 1,
        "not_numeric": 1,
    }
    assert metrics.write_latency.snapshot().count >= 1
    assert metrics.lag_last_s is not None
    assert 50 < metrics.lag_last_s < 120  # the timestamps were about a minute old

    exporter = MetricsExporter(
        metrics, worker=rig.settings.ingest.client_id, host="127.0.0.1", port=0,
        clock=SystemClock(),
    )  # fmt: skip
    exporter.start()
    try:
        answer = requests.get(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5)
    finally:
        exporter.stop()
    samples = {
        (name, labels.get("reason")): value
        for family in parse(answer.text).values()
        for name, labels, value in family.samples
    }
    assert samples[("cityops_ingest_received_total", None)] == 12
    assert samples[("cityops_ingest_dead_lettered_total", "not_numeric")] == 1
    assert samples[("cityops_ingest_dead_lettered_total", "bad_utf8")] == 0

    # The first snapshot is written on the first round: the dashboard's /pipeline reads it.
    eventually(lambda: rig.count("cityops_ingest", "received") >= 1, "a snapshot point")
    (row,) = rig.rows('SELECT last("received") AS received, "worker" FROM "cityops_ingest"')
    assert row["worker"] == rig.settings.ingest.client_id


def test_a_reading_influxdb_refuses_is_dead_lettered_with_its_reason(rig: Rig) -> None:  # noqa: F811
    # Another writer made "co2" a string field of "air": InfluxDB refuses any point with a
    # numeric co2 (HTTP 400 partial write) and keeps the others of the batch.
    answer = requests.post(
        f"{rig.influxd.url}/write",
        params={"db": rig.database, "precision": "ms"},
        data=f'air,device=legacy co2="n/a" {now_ms() - 3_600_000}',
        timeout=10,
    )
    assert answer.status_code == 204, answer.text
    worker = rig.worker()
    base = now_ms() - 60_000
    for n in range(12):
        reading = {"ts": base + n * 1000, "pm25": float(n)}
        if n == 7:
            reading["co2"] = 415.0
        rig.publish("city/air/aq-hc1", reading)
    eventually(lambda: worker.stats.pending == 0 and worker.stats.received == 12, "all done")

    assert rig.count() == 11
    (letter,) = rig.dead_letters.recent(10)
    assert b'"co2": 415.0' in letter.payload
    assert "field type conflict" in letter.reason
    assert worker.metrics.dead_lettered["store_refused"] == 1
