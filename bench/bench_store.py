"""Store write and read throughput, SQLite and InfluxDB, printed as a table.

    .venv/bin/python -m bench.bench_store [--devices 150] [--steps 200] [--batch 1000 5000]
                                          [--influx-url URL]

With ``--influx-url`` it writes into databases ``bench_<batch>`` there; without it, a
private influxd (Debian's /usr/bin/influxd) is started on a free loopback port in a
temporary folder and stopped at the end. Numbers depend on the machine
and disk: compare runs on one machine, never assert on them in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench.machine import machine_line
from bench.results import markdown_table, write_section
from core.ports import Store
from core.settings import InfluxSettings
from core.store import InfluxStore, SqliteStore
from core.types import MetricRef, Point, UnitRef
from tests.fixtures.influxd import influxd_config
from tests.fixtures.process import free_port

START = datetime(2026, 11, 2, tzinfo=UTC)
STEP = timedelta(seconds=5)
COMMUNES = [f"{20000 + n:05d}" for n in range(94)]


def make_points(devices: int, steps: int, seed: int = 2025) -> list[Point]:
    """``devices`` air sensors spread over 94 communes, one reading every 5 s."""
    rng = random.Random(seed)
    homes = [COMMUNES[n % len(COMMUNES)] for n in range(devices)]
    return [
        Point(
            "air",
            {"device": f"aq-{n:04d}", "province": "48", "commune": homes[n]},
            {"pm25": rng.uniform(5, 120), "pm10": rng.uniform(10, 200)},
            START + step * STEP,
        )
        for step in range(steps)
        for n in range(devices)
    ]


def timed(action: Callable[[], object], repeat: int = 1) -> float:
    began = time.perf_counter()
    for _ in range(repeat):
        action()
    return (time.perf_counter() - began) / repeat


def measure(name: str, store: Store, points: Sequence[Point], batch: int) -> list[str]:
    def write_all() -> None:
        for offset in range(0, len(points), batch):
            store.write(points[offset : offset + batch])

    write_s = timed(write_all)
    end = points[-1].ts + STEP
    metric = MetricRef("air", "pm25")
    latest_s = timed(
        lambda: store.latest_by_unit(metric, "commune", since=end - timedelta(minutes=15)), 5
    )
    series_s = timed(
        lambda: store.series(
            metric,
            UnitRef("province", "48"),
            start=START,
            end=end,
            every=timedelta(minutes=15),
        ),
        5,
    )
    return [
        name,
        str(batch),
        f"{len(points):,}",
        f"{len(points) / write_s:,.0f}",
        f"{latest_s * 1000:,.1f}",
        f"{series_s * 1000:,.1f}",
    ]


@contextlib.contextmanager
def private_influxd(root: Path) -> Iterator[str]:
    http_port, rpc_port = free_port(), free_port()
    (root / "influxdb.conf").write_text(influxd_config(root, http_port, rpc_port))
    url = f"http://127.0.0.1:{http_port}"
    with (root / "influxd.log").open("wb") as log:
        process = subprocess.Popen(
            ["/usr/bin/influxd", "run", "-config", str(root / "influxdb.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/ping", timeout=1).status_code == 204:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit(f"influxd did not start; see {root / 'influxd.log'}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=150)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--influx-url", default=None)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    points = make_points(args.devices, args.steps)
    rows = [["store", "batch", "points", "writes/s", "latest ms", "series ms"]]
    with tempfile.TemporaryDirectory(prefix="cityops-bench-") as folder:
        root = Path(folder)
        with contextlib.ExitStack() as stack:
            url = args.influx_url or stack.enter_context(private_influxd(root))
            for batch in args.batch:
                sqlite = SqliteStore(root / f"bench-{batch}.sqlite")
                rows.append(measure("sqlite", sqlite, points, batch))
                sqlite.close()
                influx = InfluxStore(InfluxSettings(url=url, database=f"bench_{batch}"))
                rows.append(measure("influxdb", influx, points, batch))
                influx.close()
    rows = with_ratios(rows)
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    if not args.no_write:
        write_section(
            "Store: writes and reads, SQLite (baseline) and InfluxDB",
            [
                f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine_line()} · "
                f"`python -m bench.bench_store --devices {args.devices} --steps {args.steps} "
                f"--batch {' '.join(map(str, args.batch))}`",
                "",
                *markdown_table(rows),
                "",
                "Ratios are InfluxDB's figure over SQLite's for the same batch size (writes/s: "
                "above 1 = InfluxDB faster; ms: above 1 = InfluxDB slower). latest = the last "
                "value per commune over 15 min; series = the province at 15-min buckets.",
            ],
        )


def with_ratios(rows: list[list[str]]) -> list[list[str]]:
    """Add InfluxDB/SQLite ratio columns (SQLite, the embedded default, is the baseline)."""
    head, body = rows[0], rows[1:]
    sqlite = {row[1]: row for row in body if row[0] == "sqlite"}
    out = [[*head, "writes ratio", "latest ratio", "series ratio"]]
    for row in body:
        base = sqlite.get(row[1])
        if base is None or row[0] == "sqlite":
            out.append(
                [*row, "1.00", "1.00", "1.00"] if row[0] == "sqlite" else [*row, "-", "-", "-"]
            )
            continue
        ratios = [
            float(row[i].replace(",", "")) / float(base[i].replace(",", "")) for i in (3, 4, 5)
        ]
        out.append([*row, *(f"{r:.2f}" for r in ratios)])
    return out


if __name__ == "__main__":
    main()
