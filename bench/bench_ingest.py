"""Ingest: one worker process against the broker's own delivery limit, in one run.

    .venv/bin/python -m bench.bench_ingest [--messages 200000] [--devices 1000] [--repeat 3]

Starts a private Mosquitto and influxd on free loopback ports in a temporary folder. The
same backlog of N QoS 1 messages (``city/air/<device>``, JSON ``{"ts", "pm25", "pm10"}``,
distinct timestamps per device) is queued twice for a persistent session that is offline:

* limit: ``mosquitto_sub -q 1 -c`` (a C client) reconnects and receives all N, timed from
  its start until it exits after N (``-C N``, stdout counted through a pipe);
* worker: ``cityops ingest`` (shipped config.yaml settings) in a subprocess reconnects;
  timed from its "MQTT connected" log line until ``SELECT count(pm25) FROM air`` (polled
  every 0.5 s) reaches N. CPU per message = (utime+stime when done - utime+stime when an
  idle worker was ready) / N, from /proc; peak RSS = VmHWM.

Each case runs ``--repeat`` times (default 3), alternating, on a fresh backlog; the table
shows the run with the median time of each case.

Numbers depend on the machine: compare runs on one machine, never assert on them in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import requests
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.bench_store import private_influxd
from bench.results import markdown_table, write_section
from core.settings import load_settings
from ingest.demo_devices import make_demo_devices
from layers.geography import Geography
from layers.registry import write_registry
from tests.fixtures.mosquitto import mqtt_answers
from tests.fixtures.process import free_port, stop_process

REPO = Path(__file__).resolve().parent.parent
MOSQUITTO = "/usr/sbin/mosquitto"
CITYOPS = str(REPO / ".venv" / "bin" / "cityops")
SUB_ID = "bench-sub"
WORKER_ID = "bench-ingest"
DATABASE = "bench_ingest"
PUBLISH_INFLIGHT = 1000
STEP_MS = 1000  # one reading per device per second, so no two share a timestamp
PHASE_TIMEOUT_S = 600.0
POLL_S = 0.5


@dataclass(frozen=True)
class Row:
    case: str
    messages: int
    seconds: float
    cpu_s: float | None
    rss_mb: float | None

    def cells(self, limit_rate: float) -> list[str]:
        rate = self.messages / self.seconds
        cpu = "-" if self.cpu_s is None else f"{self.cpu_s / self.messages * 1e6:.1f}"
        rss = "-" if self.rss_mb is None else f"{self.rss_mb:.0f}"
        return [self.case, f"{self.messages:,}", f"{self.seconds:.2f}", f"{rate:,.0f}",
                f"{rate / limit_rate:.2f}", cpu, rss]  # fmt: skip


def wait_for(check: Callable[[], bool], what: str, timeout_s: float, every_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(every_s)


@contextlib.contextmanager
def private_mosquitto(root: Path) -> Iterator[int]:
    """Queues without limit (the whole backlog waits in memory), 10,000 in flight per
    client: the same window the worker asks for with MQTT 5 receive maximum."""
    port = free_port()
    config = root / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 10000\n"
        "log_dest stderr\nlog_type error\nlog_type warning\n"
    )
    with (root / "mosquitto.log").open("wb") as log:
        process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=log, stderr=log)
    try:
        wait_for(lambda: mqtt_answers("127.0.0.1", port), "mosquitto answers", 10, 0.05)
        yield port
    finally:
        stop_process(process)


def make_workload(devices: list[str], messages: int) -> list[tuple[str, bytes]]:
    rng = random.Random(2025)
    steps = -(-messages // len(devices))
    first_ms = int(datetime.now(UTC).timestamp() * 1000) - (steps + 60) * STEP_MS
    workload = []
    for n in range(messages):
        step, device = divmod(n, len(devices))
        payload = '{"ts": %d, "pm25": %.2f, "pm10": %.2f}' % (  # noqa: UP031 - hot loop
            first_ms + step * STEP_MS, rng.uniform(5, 120), rng.uniform(10, 200)
        )  # fmt: skip
        workload.append((f"city/air/{devices[device]}", payload.encode()))
    return workload


def publish(port: int, workload: list[tuple[str, bytes]]) -> float:
    """Publish everything at QoS 1; return once the broker acknowledged all (seconds).

    At most PUBLISH_INFLIGHT unacknowledged: paho scans its whole outgoing queue on every
    PUBACK, so a queue of 200,000 would take hours."""
    window = threading.Semaphore(PUBLISH_INFLIGHT)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
    client.max_inflight_messages_set(PUBLISH_INFLIGHT)
    client.on_publish = lambda *_args: window.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    began = time.perf_counter()
    try:
        for topic, payload in [*workload, *[("", b"")] * PUBLISH_INFLIGHT]:
            if not window.acquire(timeout=60):
                raise SystemExit("the broker stopped acknowledging publishes")
            if topic:
                client.publish(topic, payload, qos=1)
        return time.perf_counter() - began  # the last acquires waited for the last PUBACKs
    finally:
        client.disconnect()
        client.loop_stop()


def subscriber(port: int, *extra: str, keep: bool = True) -> list[str]:
    session = ["-c"] if keep else []  # -c: a persistent session
    return ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", *session,
            "-i", SUB_ID, "-t", "city/#", *extra]  # fmt: skip


def measure_limit(port: int, workload: list[tuple[str, bytes]]) -> Row:
    subprocess.run(subscriber(port, "-E"), check=True, timeout=10)  # create the session
    publish_s = publish(port, workload)
    print(f"  limit: backlog published in {publish_s:.1f} s", flush=True)
    total = len(workload)
    began = time.perf_counter()
    process = subprocess.Popen(subscriber(port, "-C", str(total)), stdout=subprocess.PIPE)
    assert process.stdout is not None
    lines, deadline = 0, time.monotonic() + PHASE_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=1.0):
                chunk = os.read(process.stdout.fileno(), 1 << 16)
                if not chunk:
                    break
                lines += chunk.count(b"\n")
    if lines < total:
        process.kill()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    if lines != total:
        raise SystemExit(f"mosquitto_sub received {lines} of {total} messages")
    # End the session, or the worker's backlog would be queued for this client too.
    subprocess.run(subscriber(port, "-E", keep=False), check=True, timeout=10)
    # No RSS: Linux counts in ru_maxrss the forked copy of this process before the exec.
    return Row("limit: mosquitto_sub", total, seconds, usage.ru_utime + usage.ru_stime, None)


def worker_config(root: Path, port: int, influx_url: str, registry: Path) -> Path:
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["hierarchy"]["units_file"] = str(REPO / raw["hierarchy"]["units_file"])
    boundaries = raw["layers"]["boundaries"]
    raw["layers"]["boundaries"] = {level: str(REPO / path) for level, path in boundaries.items()}
    raw["broker"].update(host="127.0.0.1", port=port)
    raw["store"]["backend"] = "influxdb"
    raw["store"]["influxdb"].update(url=influx_url, database=DATABASE)
    raw["database"]["url"] = f"sqlite:///{root / 'state.sqlite'}"
    raw["devices"]["registry"] = str(registry)
    raw["ingest"].update(client_id=WORKER_ID, spool_dir=str(root / "spool"), metrics_port=None)
    path = root / "bench-ingest.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    load_settings(path)  # a bad file stops here, not in the subprocess
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def worker_process(config: Path, log_path: Path, profile: Path | None = None
                   ) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    command = [CITYOPS, "ingest", "--config", str(config)]
    if profile is not None:  # the stats are written when the worker stops (SIGTERM)
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command,
                                   stdout=log, stderr=log, cwd=config.parent)  # fmt: skip
    try:
        wait_for(lambda: "MQTT connected" in log_path.read_text(errors="replace")
                 or process.poll() is not None, "the worker connects", 60, 0.01)  # fmt: skip
        if process.poll() is not None:
            raise SystemExit(f"the worker exited; see {log_path}")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        stop_process(process)


def stored_count(influx_url: str) -> int:
    query = {"q": "SELECT count(pm25) FROM air"}
    answer = requests.post(
        f"{influx_url}/query", params={"db": DATABASE}, data=query, timeout=10
    ).json()
    series = answer["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def measure_worker(root: Path, port: int, influx_url: str, registry: Path,
                   workload: list[tuple[str, bytes]], profile: Path | None = None
                   ) -> Row:  # fmt: skip
    config = worker_config(root, port, influx_url, registry)
    with worker_process(config, root / "worker-1.log") as idle:
        time.sleep(1.0)  # subscribed; the idle cost is the baseline taken off the CPU time
        baseline_cpu = cpu_seconds(idle.pid)
    publish_s = publish(port, workload)
    print(f"  worker: backlog published in {publish_s:.1f} s", flush=True)
    total = len(workload)
    with worker_process(config, root / "worker-2.log", profile) as worker:
        began = time.perf_counter()
        wait_for(lambda: stored_count(influx_url) >= total, f"{total} points in InfluxDB",
                 PHASE_TIMEOUT_S, POLL_S)  # fmt: skip
        seconds = time.perf_counter() - began
        cpu, rss = cpu_seconds(worker.pid) - baseline_cpu, peak_rss_mb(worker.pid)
    found = stored_count(influx_url)
    if found != total:
        print(f"  WARNING: {found} points stored for {total} messages", flush=True)
    requests.post(f"{influx_url}/query", data={"q": f"DROP DATABASE {DATABASE}"}, timeout=30)
    return Row("worker: cityops ingest", total, seconds, cpu, rss)


def median_row(rows: list[Row]) -> Row:
    """The run with the median time (the others only make it a median)."""
    return sorted(rows, key=lambda row: row.seconds)[len(rows) // 2]


def versions() -> str:
    mosquitto = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, timeout=10)
    influxd = subprocess.run(["/usr/bin/influxd", "version"], capture_output=True, text=True,
                             timeout=10)  # fmt: skip
    return (f"nproc {os.cpu_count()}, Python {platform.python_version()}, "
            f"{mosquitto.stdout.splitlines()[0]}, {influxd.stdout.strip()}, "
            f"paho-mqtt publisher")  # fmt: skip


def table(rows: list[Row]) -> list[list[str]]:
    limit_rate = rows[0].messages / rows[0].seconds
    head = ["case", "messages", "seconds", "msg/s", "ratio to limit", "CPU µs/msg", "peak RSS MB"]
    return [head, *(row.cells(limit_rate) for row in rows)]


def write_results(cells: list[list[str]], machine: str, args: argparse.Namespace) -> None:
    write_section(
        f"Ingest: one worker vs the broker's delivery limit, {args.messages:,} messages",
        [
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine} · "
            f"`python -m bench.bench_ingest --messages {args.messages} --devices {args.devices}"
            f" --repeat {args.repeat}`",
            "",
            *markdown_table(cells),
            "",
            __doc__.split("\n\n", 2)[2].split("Numbers depend")[0].strip(),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--no-results", action="store_true", help="Do not write RESULTS.md.")
    parser.add_argument("--repeat", type=int, default=3,
                        help="Runs of each case, alternating; the median is reported.")  # fmt: skip
    parser.add_argument("--profile", type=Path, help="cProfile the measured worker into this file "
                        "(slower: implies --no-results).")  # fmt: skip
    args = parser.parse_args()
    if args.profile is not None:
        args.no_results = True
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    settings = load_settings(REPO / "config.yaml")
    devices = make_demo_devices(Geography.from_settings(settings), air_devices=args.devices,
                                water_stations=False, seed=2025)  # fmt: skip
    workload = make_workload([device.device_id for device in devices], args.messages)
    size = sum(len(topic) + len(payload) for topic, payload in workload) / len(workload)
    print(f"{len(devices)} devices, {len(workload):,} messages, {size:.0f} B topic+payload",
          flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cityops-bench-ingest-") as folder:
        root = Path(folder)
        write_registry(root / "devices.csv", devices)
        with private_mosquitto(root) as port, private_influxd(root) as influx_url:
            limits, workers = [], []
            for _ in range(1 if args.profile else args.repeat):
                limits.append(measure_limit(port, workload))
                workers.append(measure_worker(root, port, influx_url, root / "devices.csv",
                                              workload, args.profile))  # fmt: skip
            rows = [median_row(limits), median_row(workers)]
    cells = table(rows)
    widths = [max(len(row[column]) for row in cells) for column in range(len(cells[0]))]
    for row in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    if not args.no_results:
        write_results(cells, versions(), args)
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(f"(bench process itself: {own.ru_utime + own.ru_stime:.1f} s CPU)", file=sys.stderr)


if __name__ == "__main__":
    main()
