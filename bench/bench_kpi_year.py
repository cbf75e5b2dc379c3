"""KPI windows over a year: raw readings only vs hourly roll-ups (design 017).

    .venv/bin/python -m bench.bench_kpi_year [--devices 50] [--every-min 15] [--days 365]
                                             [--repeat 5] [--influx-url URL] [--no-write]

A year of ``air`` readings (``--devices`` sensors over 10 communes, one reading every
``--every-min`` minutes, ending an hour ago) is written to SQLite and to InfluxDB (a
private influxd unless ``--influx-url``) through stores with ``store.retention`` (raw
kept 400 days so the raw answer exists, roll-ups 1100), then ``downsample`` runs as the
periodic job would, a week per run, until the year is rolled up (the table gives the
total and the longest run: what one alert round waits for). Each window is [local
midnight N days ago, now) — a KPI "so far" — read by ``window_by_unit(pm25, commune,
mean)`` on a store without retention (raw only) and on the retention store (whole hours
from the roll-ups, the ragged end raw); both answers are checked equal (counts exact,
values to 1e-9), the table shows the median of ``--repeat`` runs. Numbers are for
comparing runs on one machine.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.bench_store import private_influxd
from bench.machine import machine_line
from bench.results import markdown_table, write_section
from core.settings import InfluxSettings
from core.settings_retention import RetentionSettings
from core.store import InfluxStore, SqliteStore
from core.store.downsample import CATCH_UP_MS
from core.types import MetricRef, Point, UnitValue

PM25 = MetricRef("air", "pm25")
RETENTION = RetentionSettings(raw_days=400, rollup_days=1100)
LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
WINDOWS = {"week": 7, "month": 30, "year": 364}
BATCH = 5000

Store = SqliteStore | InfluxStore


def readings(devices: int, every: timedelta, days: int, end: datetime) -> Iterator[list[Point]]:
    """Batches of points, oldest first; each device starts at its own second of the step."""
    rng = random.Random(2025)
    tags = [
        {"device": f"aq-{n:03d}", "province": "48", "commune": f"{20000 + n % 10:05d}"}
        for n in range(devices)
    ]
    offsets = [timedelta(seconds=rng.randrange(int(every.total_seconds()))) for _ in tags]
    batch: list[Point] = []
    at = end - timedelta(days=days)
    while at < end:
        for tag, offset in zip(tags, offsets, strict=True):
            value = rng.randrange(20, 3000) * 0.1
            batch.append(Point("air", tag, {"pm25": value, "pm10": value * 1.7}, at + offset))
            if len(batch) == BATCH:
                yield batch
                batch = []
        at += every
    if batch:
        yield batch


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def check_same(raw: list[UnitValue], rolled: list[UnitValue], label: str) -> None:
    same = [(u.code, u.devices, u.ts) for u in raw] == [(u.code, u.devices, u.ts) for u in rolled]
    close = all(
        abs(a.value - b.value) <= 1e-9 * abs(a.value) for a, b in zip(raw, rolled, strict=True)
    )
    if not (same and close):
        raise SystemExit(f"{label}: roll-up answer differs from the raw one")


def measure(
    name: str, writer: Store, raw_only: Store, args: argparse.Namespace, now: datetime
) -> list[list[str]]:
    end = now - timedelta(hours=1)
    every = timedelta(minutes=args.every_min)
    count = 0

    def write_all() -> None:
        nonlocal count
        for batch in readings(args.devices, every, args.days, end):
            writer.write(batch)
            count += len(batch)

    write_s = timed(write_all)
    runs: list[float] = []

    def catch_up() -> None:
        """The periodic job's runs until one is not cut by the bound (a week per run)."""
        while True:
            began = time.perf_counter()
            hours = writer.downsample(now)
            runs.append(time.perf_counter() - began)
            if hours < CATCH_UP_MS // 3_600_000:
                return

    rollup_s = timed(catch_up)
    print(
        f"{name}: {count:,} points written in {write_s:.1f} s, rolled up in {rollup_s:.1f} s "
        f"({len(runs)} runs, longest {max(runs):.2f} s)"
    )
    rows = [[name, "write", f"{count:,} points", f"{write_s:.1f} s", "", ""]]
    rows.append([name, "catch-up downsample", f"{len(runs)} runs", f"{rollup_s:.1f} s", "", ""])
    rows.append([name, "longest run (one job)", "≤ 7 days", f"{max(runs):.2f} s", "", ""])
    midnight = now.astimezone(LOCAL).replace(hour=0, minute=0, second=0, microsecond=0)
    for label, days in WINDOWS.items():
        start = (midnight - timedelta(days=days)).astimezone(UTC)
        times: dict[str, list[float]] = {"raw": [], "rollup": []}
        answers: dict[str, list[UnitValue]] = {}
        for _ in range(args.repeat):
            for kind, store in (("raw", raw_only), ("rollup", writer)):
                began = time.perf_counter()
                answers[kind] = store.window_by_unit(
                    PM25, "commune", start=start, end=now, aggregation="mean"
                )
                times[kind].append(time.perf_counter() - began)
        check_same(answers["raw"], answers["rollup"], f"{name} {label}")
        raw_ms = statistics.median(times["raw"]) * 1000
        rolled_ms = statistics.median(times["rollup"]) * 1000
        rows.append(
            [name, f"{label} mean by commune", f"{days} days", f"{raw_ms:,.1f} ms",
             f"{rolled_ms:,.1f} ms", f"{raw_ms / rolled_ms:,.1f}×"]
        )  # fmt: skip
        print("  ".join(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--every-min", type=int, default=15)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--influx-url", default=None)
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args()
    now = datetime.now(UTC)
    cells = [["store", "case", "size", "raw only", "with roll-ups", "ratio"]]
    with tempfile.TemporaryDirectory(prefix="cityops-bench-kpi-") as folder:
        root = Path(folder)
        sqlite = SqliteStore(root / "kpi.sqlite", retention=RETENTION)
        plain = SqliteStore(root / "kpi.sqlite")
        cells += measure("sqlite", sqlite, plain, args, now)
        sqlite.close()
        plain.close()
        with contextlib.ExitStack() as stack:
            url = args.influx_url or stack.enter_context(private_influxd(root))
            database = f"bench_kpi_{int(now.timestamp())}"
            influx = InfluxStore(
                InfluxSettings(url=url, database=database, timeout_s=300), retention=RETENTION
            )
            raw = InfluxStore(
                InfluxSettings(url=url, database=database, retention_policy="raw", timeout_s=300)
            )
            cells += measure("influxdb", influx, raw, args, now)
            influx.close()
            raw.close()
    table = markdown_table(cells)
    print("\n".join(table))
    if not args.no_write:
        write_section(
            "KPI windows over a year: raw vs hourly roll-ups",
            [
                f"{now:%Y-%m-%d %H:%M} UTC · {machine_line()} · InfluxDB 1.6.7 · "
                f"`python -m bench.bench_kpi_year --devices {args.devices} --every-min "
                f"{args.every_min} --days {args.days} --repeat {args.repeat}`",
                "",
                *table,
                "",
                __doc__.split("\n\n", 2)[2].strip(),
            ],
        )


if __name__ == "__main__":
    main()
