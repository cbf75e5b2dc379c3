"""Ingest latency: from publish to queryable in InfluxDB, at a steady rate, in one run.

    .venv/bin/python -m bench.bench_latency [--rate 1000] [--seconds 30] [--devices 1000]

Starts a private Mosquitto and influxd (as bench_ingest does) and one ``cityops ingest``
with the shipped settings (batch_size, flush_interval_s). A paho publisher sends ``rate``
QoS 1 messages a second, evenly spaced, for ``seconds``, each device once a second with
its own timestamp, and notes when each was published. A poller asks InfluxDB
``SELECT count(pm25) FROM air`` every 20 ms: the worker stores in arrival order, so when
the count first reaches i + 1, message i is queryable. Latency = that moment - its publish
moment (resolution: the 20 ms poll plus the query time). CPU per message = the worker's
utime+stime over the run / messages.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.bench_ingest import (
    cpu_seconds,
    private_mosquitto,
    stored_count,
    versions,
    wait_for,
    worker_config,
    worker_process,
)
from bench.bench_store import private_influxd
from bench.results import markdown_table, write_section
from core.settings import load_settings
from ingest.demo_devices import make_demo_devices
from layers.geography import Geography
from layers.registry import write_registry

REPO = Path(__file__).resolve().parent.parent
POLL_S = 0.02


def publish_steadily(port: int, devices: list[str], rate: int, seconds: int) -> list[float]:
    """Publish rate x seconds messages, evenly spaced; their publish times (epoch s)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-latency-pub")
    client.max_inflight_messages_set(1000)
    acknowledged = threading.Semaphore(0)
    client.on_publish = lambda *_args: acknowledged.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    published: list[float] = []
    began = time.perf_counter()
    try:
        for n in range(rate * seconds):
            due = began + n / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            now = time.time()
            device = devices[n % len(devices)]
            payload = b'{"ts": %d, "pm25": %d.5}' % (int(now * 1000), n % 300)
            client.publish(f"city/air/{device}", payload, qos=1)
            published.append(now)
        for _ in published:  # disconnecting earlier would drop what paho still queues
            if not acknowledged.acquire(timeout=60):
                raise SystemExit("the broker stopped acknowledging publishes")
    finally:
        client.disconnect()
        client.loop_stop()
    return published


def poll_counts(influx_url: str, total: int, stop: threading.Event) -> list[tuple[float, int]]:
    seen: list[tuple[float, int]] = []
    while not stop.is_set():
        count = stored_count(influx_url)
        seen.append((time.time(), count))
        if count >= total:
            break
        time.sleep(POLL_S)
    return seen


def latencies(published: list[float], counts: list[tuple[float, int]]) -> list[float]:
    result: list[float] = []
    index = 0
    for moment, count in counts:
        while index < min(count, len(published)):
            result.append(moment - published[index])
            index += 1
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--no-results", action="store_true", help="Do not write RESULTS.md.")
    args = parser.parse_args()
    settings = load_settings(REPO / "config.yaml")
    devices = make_demo_devices(Geography.from_settings(settings), air_devices=args.devices,
                                water_stations=False, seed=2025)  # fmt: skip
    total = args.rate * args.seconds
    with tempfile.TemporaryDirectory(prefix="cityops-bench-latency-") as folder:
        root = Path(folder)
        write_registry(root / "devices.csv", devices)
        with private_mosquitto(root) as port, private_influxd(root) as influx_url:
            config = worker_config(root, port, influx_url, root / "devices.csv")
            with worker_process(config, root / "worker.log") as worker:
                time.sleep(1.0)
                cpu_before = cpu_seconds(worker.pid)
                stop = threading.Event()
                counts: list[tuple[float, int]] = []
                poller = threading.Thread(
                    target=lambda: counts.extend(poll_counts(influx_url, total, stop))
                )
                poller.start()
                published = publish_steadily(port, [d.device_id for d in devices],
                                             args.rate, args.seconds)  # fmt: skip
                poller.join(timeout=60)
                stop.set()
                wait_for(lambda: stored_count(influx_url) >= total, "all stored", 60, 0.5)
                cpu = cpu_seconds(worker.pid) - cpu_before
    waits = sorted(latencies(published, counts))
    if len(waits) != total:
        raise SystemExit(f"only {len(waits)} of {total} messages became queryable")
    p50 = statistics.median(waits)
    p99 = waits[int(0.99 * (len(waits) - 1))]
    cells = [
        ["rate msg/s", "messages", "p50 s", "p99 s", "max s", "worker CPU µs/msg"],
        [f"{args.rate:,}", f"{total:,}", f"{p50:.3f}", f"{p99:.3f}", f"{waits[-1]:.3f}",
         f"{cpu / total * 1e6:.1f}"],
    ]  # fmt: skip
    widths = [max(len(row[c]) for row in cells) for c in range(len(cells[0]))]
    for row in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    if not args.no_results:
        write_section(
            f"Ingest latency: publish to queryable at {args.rate:,} msg/s",
            [
                f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {versions()} · "
                f"`python -m bench.bench_latency --rate {args.rate} --seconds {args.seconds}`",
                "",
                *markdown_table(cells),
                "",
                __doc__.split("\n\n", 2)[2].strip(),
            ],
        )


if __name__ == "__main__":
    main()
