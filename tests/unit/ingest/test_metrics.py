"""The ingest self-metrics: registry, histogram quantiles, the Prometheus text (checked by a
strict parser, itself tested on broken input), the snapshot Point and its timer."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import RetryableError
from core.types import Point
from ingest.exporter import escape_label_value, format_value, render_prometheus
from ingest.metrics import (
    DEAD_LETTER_REASONS,
    LAG_BUCKETS_S,
    LATENCY_BUCKETS_S,
    Histogram,
    IngestMetrics,
    SnapshotWriter,
    snapshot_point,
)
from tests.promtext import ExpositionError, parse

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def busy_metrics() -> IngestMetrics:
    metrics = IngestMetrics()
    metrics.received = 1234
    metrics.spooled = 7
    metrics.write_errors = 2
    metrics.store_retries = 3
    metrics.connects = 2
    metrics.pending = 40
    metrics.spool_bytes = 65536
    metrics.spool_batches = 1
    metrics.mqtt_connected = 1
    metrics.dead_letter("not_json", 5)
    metrics.dead_letter("store_refused")
    stored_at = T0 + timedelta(seconds=60)
    for latency in (0.004, 0.02, 0.02, 0.3, 12.0):
        metrics.batch_stored(200, latency, [T0 + timedelta(seconds=59)], stored_at)
    return metrics


# -- registry and histogram --------------------------------------------------------------


def test_counters_and_dead_letters_by_reason() -> None:
    metrics = IngestMetrics()
    metrics.dead_letter("not_json")
    metrics.dead_letter("not_json", 2)
    metrics.dead_letter("payload is not JSON")  # free text must not become a label
    counted = {reason: n for reason, n in metrics.dead_lettered.items() if n}
    assert counted == {"not_json": 3, "other": 1}
    assert tuple(metrics.dead_lettered) == DEAD_LETTER_REASONS


def test_batch_stored_counts_messages_latency_and_lag() -> None:
    metrics = IngestMetrics()
    stored_at = T0 + timedelta(seconds=10)
    device_ts = [T0, T0 + timedelta(seconds=9.5), T0 + timedelta(seconds=30)]  # last: ahead
    metrics.batch_stored(3, 0.042, device_ts, stored_at)
    assert (metrics.stored, metrics.batches_written) == (3, 1)
    latency = metrics.write_latency.snapshot()
    assert latency.count == 1
    assert latency.counts[LATENCY_BUCKETS_S.index(0.05)] == 1
    lag = metrics.lag.snapshot()
    assert lag.count == 3
    assert lag.sum == pytest.approx(10.5)  # the clock ahead counts as 0, not -20
    assert lag.counts[0] == 1  # 0 (ahead)
    assert lag.counts[LAG_BUCKETS_S.index(0.5)] == 1  # 0.5 s: ≤ 0.5
    assert lag.counts[LAG_BUCKETS_S.index(10.0)] == 1  # exactly 10 s: in le="10"
    assert metrics.lag_last_s == pytest.approx(10.0)  # the oldest point of the batch


def test_a_clock_ahead_shows_as_negative_last_lag() -> None:
    metrics = IngestMetrics()
    metrics.observe_lag([T0 + timedelta(seconds=5)], T0)
    assert metrics.lag_last_s == pytest.approx(-5.0)
    metrics.observe_lag([], T0)  # nothing stored: the last value stays
    assert metrics.lag_last_s == pytest.approx(-5.0)


@pytest.mark.parametrize("bounds", [(), (1.0, 1.0), (2.0, 1.0), (1.0, math.inf)])
def test_histogram_refuses_bad_bounds(bounds: Sequence[float]) -> None:
    with pytest.raises(ValueError, match="bounds"):
        Histogram(bounds)


def test_quantiles_interpolate_like_prometheus() -> None:
    histogram = Histogram((1.0, 2.0, 4.0))
    assert histogram.snapshot().quantile(0.5) is None
    for value in (0.5, 1.5, 1.5, 3.0):
        histogram.observe(value)
    snapshot = histogram.snapshot()
    # rank 2 of 4: one value ≤ 1, two in (1, 2] → halfway through (1, 2]
    assert snapshot.quantile(0.5) == pytest.approx(1.5)
    assert snapshot.quantile(1.0) == pytest.approx(4.0)
    assert snapshot.quantile(0.25) == pytest.approx(1.0)
    histogram.observe(100.0)  # above every bound: the highest bound is the answer
    assert histogram.snapshot().quantile(0.99) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="quantile"):
        snapshot.quantile(1.5)


def test_window_since_an_earlier_snapshot_and_after_a_restart() -> None:
    histogram = Histogram((1.0, 2.0))
    histogram.observe(0.5)
    earlier = histogram.snapshot()
    histogram.observe(1.5)
    histogram.observe(1.5)
    window = histogram.snapshot().since(earlier)
    assert window.counts == (0, 2, 0)
    assert window.sum == pytest.approx(3.0)
    assert window.quantile(0.99) == pytest.approx(1.99)
    restarted = Histogram((1.0, 2.0)).snapshot()
    assert restarted.since(earlier) is restarted  # counts went down: no window


# -- Prometheus text ----------------------------------------------------------------------


def test_exposition_parses_strictly_with_the_right_values() -> None:
    text = render_prometheus(busy_metrics().snapshot(T0), "cityops-ingest")
    families = parse(text)
    for name, family in families.items():
        assert name.startswith("cityops_ingest_")
        assert family.help
        if family.type == "counter":
            assert name.endswith("_total"), name
        for _, labels, _ in family.samples:
            assert labels["worker"] == "cityops-ingest"

    def value(name: str, **labels: str) -> float:
        family = name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
        for sample, got, number in families[family].samples:
            if sample == name and got == {"worker": "cityops-ingest", **labels}:
                return number
        raise AssertionError(f"no sample {name} {labels}")

    assert families["cityops_ingest_received_total"].type == "counter"
    assert value("cityops_ingest_received_total") == 1234
    assert value("cityops_ingest_stored_total") == 1000
    assert value("cityops_ingest_batches_written_total") == 5
    assert value("cityops_ingest_dead_lettered_total", reason="not_json") == 5
    assert value("cityops_ingest_dead_lettered_total", reason="internal") == 0
    assert families["cityops_ingest_pending"].type == "gauge"
    assert value("cityops_ingest_pending") == 40
    assert value("cityops_ingest_mqtt_connected") == 1
    assert families["cityops_ingest_write_latency_seconds"].type == "histogram"
    assert value("cityops_ingest_write_latency_seconds_bucket", le="0.005") == 1
    assert value("cityops_ingest_write_latency_seconds_bucket", le="0.025") == 3
    assert value("cityops_ingest_write_latency_seconds_bucket", le="10.0") == 4
    assert value("cityops_ingest_write_latency_seconds_bucket", le="+Inf") == 5
    assert value("cityops_ingest_write_latency_seconds_count") == 5
    assert value("cityops_ingest_write_latency_seconds_sum") == pytest.approx(12.344)
    assert value("cityops_ingest_lag_seconds_count") == 5
    assert value("cityops_ingest_lag_last_seconds") == pytest.approx(1.0)


def test_label_values_are_escaped() -> None:
    worker = 'trạm "A"\\phường\nHải Vân'
    assert escape_label_value(worker) == 'trạm \\"A\\"\\\\phường\\nHải Vân'
    families = parse(render_prometheus(IngestMetrics().snapshot(T0), worker))
    _, labels, _ = families["cityops_ingest_received_total"].samples[0]
    assert labels["worker"] == worker
    assert "cityops_ingest_lag_last_seconds" not in families  # nothing stored yet


def test_values_are_go_floats() -> None:
    assert format_value(3) == "3"
    assert format_value(0.25) == "0.25"
    assert format_value(math.inf) == "+Inf"
    assert format_value(-math.inf) == "-Inf"
    assert format_value(math.nan) == "NaN"
    assert format_value(1e-7) == "1e-07"


_GOOD_HISTOGRAM = """# TYPE x histogram
x_bucket{le="1"} 1
x_bucket{le="+Inf"} 2
x_sum 3.5
x_count 2
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# TYPE a counter\na 1", "line feed"),
        ('a{l="x"y"} 1\n', "label set"),
        ('a{l="\\t"} 1\n', "label set"),
        ("a 1\nb 1\na 2\n", "uninterrupted"),
        ("a 1\na 2\n", "twice"),
        ("a 1\n# TYPE a counter\n", "too late"),
        ("# HELP a x\n# HELP a y\na 1\n", "second HELP"),
        ("a one\n", "not a sample"),
        (_GOOD_HISTOGRAM.replace('le="+Inf"', 'le="2"'), "no .Inf"),
        (_GOOD_HISTOGRAM.replace("x_count 2", "x_count 3"), "differs"),
        (_GOOD_HISTOGRAM.replace('x_bucket{le="1"} 1', 'x_bucket{le="1"} 3'), "cumulative"),
        (_GOOD_HISTOGRAM.replace("x_sum 3.5\n", ""), "one _sum"),
    ],
)
def test_the_parser_refuses_broken_expositions(text: str, problem: str) -> None:
    assert parse(_GOOD_HISTOGRAM)["x"].type == "histogram"
    with pytest.raises(ExpositionError, match=problem):
        parse(text)


# -- the snapshot Point -------------------------------------------------------------------


def test_snapshot_point_holds_counters_gauges_and_interval_quantiles() -> None:
    metrics = busy_metrics()
    first = metrics.snapshot(T0)
    point = snapshot_point(first, None, worker="ingest-a", interval_s=15)
    assert point.measurement == "cityops_ingest"
    assert point.tags == {"worker": "ingest-a"}
    assert point.ts == T0
    fields = point.fields
    assert fields["received"] == 1234
    assert fields["stored"] == 1000
    assert fields["dead_lettered"] == 6
    assert fields["dead_lettered_not_json"] == 5
    assert fields["dead_lettered_store_refused"] == 1
    assert fields["pending"] == 40
    assert fields["spool_bytes"] == 65536
    assert fields["interval_s"] == 15
    assert fields["write_latency_count"] == 5
    # rank 2.5 of 5: 1 value ≤ 0.01, then 1.5 of the 2 in (0.01, 0.025]
    assert fields["write_latency_p50_s"] == pytest.approx(0.01 + 0.015 * 1.5 / 2)
    assert fields["write_latency_p99_s"] == pytest.approx(10.0 + 20.0 * 0.95)
    assert fields["lag_last_s"] == pytest.approx(1.0)
    assert all(isinstance(value, float) for value in fields.values())

    # Next interval: one fast write. Quantiles cover only the interval.
    metrics.batch_stored(10, 0.002, [T0], T0 + timedelta(seconds=15))
    second = snapshot_point(
        metrics.snapshot(T0 + timedelta(seconds=15)), first, worker="ingest-a", interval_s=15
    )
    assert second.fields["write_latency_count"] == 1
    assert second.fields["write_latency_p99_s"] < 0.005
    assert second.fields["stored"] == 1010  # counters stay cumulative

    # An interval without writes: no quantile fields (an old p99 must not look current).
    idle = snapshot_point(
        metrics.snapshot(T0 + timedelta(seconds=30)),
        metrics.snapshot(T0 + timedelta(seconds=15)),
        worker="ingest-a",
        interval_s=15,
    )
    assert idle.fields["write_latency_count"] == 0
    assert "write_latency_p50_s" not in idle.fields
    assert "lag_p99_s" not in idle.fields


class _Store:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.points: list[Point] = []

    def write(self, points: Sequence[Point]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.points.extend(points)


def test_snapshot_writer_writes_every_interval_and_skips_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = IngestMetrics()
    store = _Store([RetryableError("InfluxDB is down")])
    writer = SnapshotWriter(metrics, store, worker="w", interval_s=15)  # type: ignore[arg-type]
    assert writer.seconds_until_due(T0) == 0.0
    with caplog.at_level(logging.WARNING, "cityops.ingest"):
        assert writer.write_if_due(T0) is False  # the store is down: logged, skipped
    assert "InfluxDB is down" in caplog.text
    assert writer.failures == 1
    assert writer.seconds_until_due(T0 + timedelta(seconds=5)) == pytest.approx(10.0)
    assert writer.write_if_due(T0 + timedelta(seconds=5)) is False  # not due
    metrics.received = 3
    assert writer.write_if_due(T0 + timedelta(seconds=15)) is True
    assert writer.write_if_due(T0 + timedelta(seconds=29)) is False
    assert writer.write_if_due(T0 + timedelta(seconds=30)) is True
    assert [point.ts for point in store.points] == [
        T0 + timedelta(seconds=15),
        T0 + timedelta(seconds=30),
    ]
    assert store.points[0].fields["received"] == 3
