"""Callback server time on InfluxDB: 30 days of 1-minute data from 1,000 devices.

    .venv/bin/python -m bench.bench_callbacks [--quick] [--devices 1000] [--days 30]
                                              [--calls 20] [--screens 10] [--no-redis]

A private influxd 1.6 (Debian's /usr/bin/influxd) runs over a data directory under
var/bench/ holding ``devices`` devices' readings, one a minute for ``days`` days, spread
over Đà Nẵng's 94 communes (bench/callback_data.py): written once (the time it took is
printed and kept in the folder's loaded.json), reused by later runs. The callbacks are
called as plain functions, as Dash would call them, on a context built like
``dashboard.app.build_context`` with the InfluxStore, the clock fixed one minute after the
newest reading. Server time = the function's wall time. Each case is measured for an
admin (the home map, commune 20194's panel) and for an operator of commune 20194 (where
the page puts them: ``navigation.apply_location``):

* cold — cache off: every call queries the store (the baseline of the ratios);
* warm — the refresh beat: ``--screens`` screens call within one cache window
  (``cache_s`` of build_context), so one call in ``screens`` queries and the others are
  served from the cache (LocalCache: one worker);
* redis — the same with the cache in a private redis-server (RedisCache), the screens
  alternating between two workers (two contexts): one store query per window for both.

One unmeasured call of each callback first (geometry prepared, files in the page cache).
A second table breaks the cold calls down by store query. Goal (issue #5): p95 ≤ 300 ms.
Adding a callback is one line in CALLBACKS.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.callback_data import DATABASE, DataSpec, make_devices, ready_data
from bench.results import markdown_table, write_section
from core.settings import InfluxSettings, Settings, load_settings
from core.store import InfluxStore
from core.types import MetricRef, UnitRef
from dashboard import callbacks
from dashboard.access import Access
from dashboard.app import build_context
from dashboard.cache import LocalCache, RedisCache
from dashboard.context import DashboardContext
from dashboard.geo import GeoCache
from dashboard.mapview import MapViews
from dashboard.navigation import apply_location
from layers.geography import Geography
from layers.registry import Device
from tests.fixtures.redis import REDIS_SERVER, RedisServer

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "var" / "bench"
END = "2026-11-02T00:00:00+00:00"  # the data's end: the clock is fixed here + 1 minute
METRIC = "pm25"
LANG = "vi"
OFFICER_UNIT = "20194"  # Phường Hải Vân
GOAL_S = 0.300
SECRET = b"bench-only-secret"


@dataclass
class Screen:
    """One screen: who looks, the map's place, the selected unit, the figure drawn."""

    who: str
    access: Access
    place: str | None
    unit: str | None
    drawn: str | None = None


Call = Callable[[DashboardContext, Screen], Any]

# name → the callback as Dash calls it on a refresh of this screen. One line per callback.
CALLBACKS: dict[str, Call] = {
    "map, first draw": lambda ctx, s: callbacks.refresh_map(
        ctx, s.access, METRIC, LANG, s.unit, None, None, s.place, None
    ),
    "map, refresh beat": lambda ctx, s: callbacks.refresh_map(
        ctx, s.access, METRIC, LANG, s.unit, s.drawn, None, s.place, None
    ),
    "unit panel": lambda ctx, s: callbacks.render_panel(
        ctx, s.access, s.unit, METRIC, LANG, None, s.place
    ),
}


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


class WindowClock:
    """The cache's monotonic clock: each measured window starts a new cache period."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TimingStore:
    """The InfluxStore, recording (query, seconds) of every read."""

    def __init__(self, store: InfluxStore) -> None:
        self.store = store
        self.log: list[tuple[str, float]] = []

    def latest_by_unit(self, metric: MetricRef, level: str, **kwargs: Any) -> Any:
        parent: UnitRef | None = kwargs.get("parent")
        since: datetime = kwargs["since"]
        window = _span(kwargs.get("until") or self.now_hint, since)
        label = f"latest {metric.measurement}.{metric.field} by {level}"
        label += f" in {parent.level} {parent.code}" if parent else ""
        return self._timed(f"{label}, {window}", self.store.latest_by_unit, metric, level, **kwargs)

    def series(self, metric: MetricRef, unit: UnitRef, **kwargs: Any) -> Any:
        window = _span(kwargs["end"], kwargs["start"])
        label = f"series {metric.measurement}.{metric.field} of {unit.level} {unit.code}, {window}"
        return self._timed(label, self.store.series, metric, unit, **kwargs)

    now_hint = datetime.fromisoformat(END) + timedelta(minutes=1)

    def _timed(self, label: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            self.log.append((label, time.perf_counter() - began))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _span(end: datetime, start: datetime) -> str:
    hours = (end - start).total_seconds() / 3600
    return f"{hours:g} h"


class Failures(logging.Handler):
    """Callbacks answer "could not load" and log: any warning from cityops is a failure."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("cityops.dashboard.cache"):
            self.messages.append(f"{record.name}: {record.getMessage()}")


@dataclass
class Case:
    callback: str
    who: str
    mode: str
    seconds: list[float] = field(default_factory=list)
    queries: list[list[tuple[str, float]]] = field(default_factory=list)
    failures: int = 0

    def p(self, q: float) -> float:
        return float(np.percentile(self.seconds, q))


def settings_for_bench() -> Settings:
    return load_settings(REPO / "config.yaml", environ={})


def make_context(
    settings: Settings, store: TimingStore, views: MapViews, devices: list[Device], now: datetime
) -> DashboardContext:
    return build_context(
        settings,
        store,
        views,
        clock=FixedClock(now),
        devices=lambda: devices,
    )


def screens(ctx: DashboardContext) -> list[Screen]:
    hierarchy = ctx.hierarchy
    admin = Access.admin(hierarchy)
    officer = Access(hierarchy, [OFFICER_UNIT], role="operator", username="officer")
    made = []
    for who, access in (("admin", admin), (f"officer {OFFICER_UNIT}", officer)):
        _metric, unit, _lang, place, _search, _day = apply_location(ctx, access, "/", "")
        unit = unit if isinstance(unit, str) else OFFICER_UNIT  # the admin's desk clicked it
        made.append(Screen(who, access, place if isinstance(place, str) else None, unit))
    return made


def measure_call(
    ctx: DashboardContext, store: TimingStore, call: Call, screen: Screen, case: Case
) -> None:
    store.log.clear()
    began = time.perf_counter()
    call(ctx, screen)
    case.seconds.append(time.perf_counter() - began)
    case.queries.append(list(store.log))


def use_cache(
    contexts: list[DashboardContext], mode: str, ttl_s: float, window: int, redis_url: str | None
) -> list[RedisCache]:
    """A new cache period: nothing cached (cold: no cache at all)."""
    clock = WindowClock()
    local = LocalCache(clock=clock)
    made: list[RedisCache] = []
    for ctx in contexts:
        ctx.data.cache_s = 0.0 if mode == "cold" else ttl_s
        if mode == "redis" and redis_url is not None:
            made.append(
                RedisCache(redis_url, f"bench:{window}:", SECRET, local=LocalCache(clock=clock))
            )
            ctx.data.cache = made[-1]
        else:
            ctx.data.cache = local
    return made


def run_cases(
    contexts: list[DashboardContext],
    store: TimingStore,
    found: list[Screen],
    args: argparse.Namespace,
    redis_url: str | None,
    failures: Failures,
) -> list[Case]:
    ttl_s = contexts[0].data.cache_s
    cases: list[Case] = []
    modes = ["cold", "warm"] + (["redis"] if redis_url else [])
    window = 0
    for name, call in CALLBACKS.items():
        for screen in found:
            for mode in modes:
                case = Case(name, screen.who, mode)
                before = len(failures.messages)
                screens_per_window = args.calls if mode == "cold" else args.screens
                for _ in range(max(1, args.calls // screens_per_window)):
                    window += 1
                    made = use_cache(contexts, mode, ttl_s, window, redis_url)
                    for n in range(screens_per_window):
                        worker = contexts[n % 2] if mode == "redis" else contexts[0]
                        measure_call(worker, store, call, screen, case)
                    for cache in made:
                        cache.close()
                case.failures = len(failures.messages) - before
                cases.append(case)
                print(
                    f"  {name:<18} {screen.who:<14} {mode:<5} p50 {case.p(50) * 1000:7.1f} ms"
                    f"  p95 {case.p(95) * 1000:7.1f} ms  failures {case.failures}",
                    flush=True,
                )
    for ctx in contexts:  # as build_context made them
        ctx.data.cache, ctx.data.cache_s = LocalCache(), ttl_s
    return cases


def table(cases: list[Case]) -> list[list[str]]:
    cells = [
        [
            "callback",
            "user",
            "cache",
            "calls",
            "store queries / call",
            "p50 ms",
            "p95 ms",
            "max ms",
            "p95 / cold p95",
            "p95 ≤ 300 ms",
        ]
    ]
    cold = {(c.callback, c.who): c.p(95) for c in cases if c.mode == "cold"}
    for case in cases:
        queries = sum(len(q) for q in case.queries) / len(case.queries)
        p95 = case.p(95)
        cells.append(
            [
                case.callback,
                case.who,
                {"cold": "off", "warm": "local", "redis": "redis, 2 workers"}[case.mode],
                f"{len(case.seconds)}" + (f" ({case.failures} failed)" if case.failures else ""),
                f"{queries:.2f}",
                f"{case.p(50) * 1000:,.1f}",
                f"{p95 * 1000:,.1f}",
                f"{max(case.seconds) * 1000:,.1f}",
                f"{p95 / cold[(case.callback, case.who)]:.2f}",
                "✓" if p95 <= GOAL_S else "✗",
            ]
        )
    return cells


def query_table(cases: list[Case]) -> list[list[str]]:
    """Where a cold call's time goes: each store query, over every cold call."""
    cells = [["callback", "store query", "per call", "p50 ms", "p95 ms", "share of call time"]]
    for name in CALLBACKS:
        cold = [c for c in cases if c.mode == "cold" and c.callback == name]
        total = sum(sum(c.seconds) for c in cold)
        calls = sum(len(c.seconds) for c in cold)
        by_label: dict[str, list[float]] = {}
        for case in cold:
            for queries in case.queries:
                for label, seconds in queries:
                    by_label.setdefault(label, []).append(seconds)
        for label, values in sorted(by_label.items(), key=lambda item: -sum(item[1])):
            cells.append(
                [
                    name,
                    label,
                    f"{len(values) / calls:.2f}",
                    f"{np.percentile(values, 50) * 1000:,.1f}",
                    f"{np.percentile(values, 95) * 1000:,.1f}",
                    f"{sum(values) / total:.0%}",
                ]
            )
    return cells


def print_table(cells: list[list[str]]) -> None:
    widths = [max(len(row[column]) for row in cells) for column in range(len(cells[0]))]
    for line in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))


@contextlib.contextmanager
def private_redis(enabled: bool) -> Iterator[str | None]:
    if not enabled or not REDIS_SERVER.exists():
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="cityops-bench-redis-") as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 devices, 2 days, 6 calls")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--calls", type=int, default=20, help="measured calls per case")
    parser.add_argument("--screens", type=int, default=10, help="screens per cache window")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis cache case")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--data-root", type=Path, default=ROOT)
    args = parser.parse_args()
    if args.quick:
        args.devices, args.days, args.calls, args.screens = 100, 2, 6, 3
    spec = DataSpec(args.devices, args.days, END)
    settings = settings_for_bench()
    geography = Geography.from_settings(settings)
    devices = make_devices(geography, spec)
    influxd, loaded = ready_data(args.data_root, spec, devices)
    failures = Failures()
    logging.getLogger("cityops").addHandler(failures)
    try:
        store = TimingStore(InfluxStore(InfluxSettings(url=influxd.url, database=DATABASE)))
        views = MapViews(geography, GeoCache(geography))
        now = spec.end_ts + timedelta(minutes=1)
        with private_redis(not args.no_redis) as redis_url:
            contexts = [make_context(settings, store, views, devices, now) for _ in range(2)]
            found = screens(contexts[0])
            for screen in found:  # warm-up, and the key of the figure the screen shows
                for call in CALLBACKS.values():
                    call(contexts[0], screen)
                first = CALLBACKS["map, first draw"](contexts[0], screen)
                screen.drawn = first[1]
            if failures.messages:
                raise SystemExit(f"a callback failed: {failures.messages[0]}")
            cases = run_cases(contexts, store, found, args, redis_url, failures)
    finally:
        influxd.stop()
    head = (
        f"`python -m bench.bench_callbacks{' --quick' if args.quick else ''}`, "
        f"{datetime.now().astimezone():%Y-%m-%d}, nproc 2: {spec.devices:,} devices × "
        f"{spec.days} days × 1/min = {spec.points:,} points in influxd 1.6 "
        + (
            f"(loaded earlier in {loaded['write_s']:,.0f} s + {loaded['settle_s']:,.0f} s "
            "compaction)"
            if loaded["reused"]
            else f"(loaded now in {loaded['write_s']:,.0f} s + {loaded['settle_s']:,.0f} s "
            "compaction)"
        )
        + f", influxd start {loaded['start_s']:.1f} s; {args.calls} calls per case, "
        f"{args.screens} screens per cache window."
    )
    cells = table(cases)
    breakdown = query_table(cases)
    print()
    print(head)
    print_table(cells)
    print()
    print_table(breakdown)
    if failures.messages:
        print(f"\n{len(failures.messages)} failures; first: {failures.messages[0]}")
    if args.write:
        write_section(
            "Callbacks: server time on 30 days × 1,000 devices",
            [head, "", *markdown_table(cells), "", *markdown_table(breakdown)],
        )


if __name__ == "__main__":
    main()
