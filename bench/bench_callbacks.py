"""Callback server time on InfluxDB: 30 days of 1-minute data from 1,000 devices.

    .venv/bin/python -m bench.bench_callbacks [--quick] [--devices 1000] [--days 30]
                            [--calls 20] [--screens 10] [--beat 10] [--no-redis] [--only warm]

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
* warm — the refresh beat, in real time: a new cache (LocalCache: one worker), the key's
  very first call unmeasured (it waits for the store), then ``--screens`` screens each
  calling every ``--beat`` seconds, at evenly spread phases (a screen's beat starts when
  its page loaded). With build_context's cache_s (beat / 2, at most 5 s) and
  DashboardData's default grace, a call that finds a stale answer gets it at once and
  starts one background refresh, which runs while the next screens call (they share the
  cores and the GIL with it);
* redis — the same with the cache in a private redis-server (RedisCache), the screens
  alternating between two workers (two contexts): one refresh per beat for both.

"inline" counts the store queries a measured call waited for; "background" those run by
refreshes during the case, per call. One unmeasured call of each callback first (geometry
prepared, files in the page cache). A second table breaks the cold calls down by store
query. The load average is printed before and after. Goal (issue #5): p95 ≤ 300 ms.
Adding a callback is one line in CALLBACKS.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.callback_data import (
    DATABASE,
    DataSpec,
    Failures,
    FixedClock,
    TimingStore,
    load_average,
    make_devices,
    print_table,
    private_redis,
    ready_data,
)
from bench.results import markdown_table, write_section
from core.db import make_engine
from core.settings import InfluxSettings, Settings, load_settings
from core.store import InfluxStore
from dashboard import callbacks
from dashboard.access import Access
from dashboard.alerts_data import AlertSource
from dashboard.alerts_page import render_alerts
from dashboard.app import build_context
from dashboard.cache import LocalCache, RedisCache
from dashboard.context import DashboardContext
from dashboard.devices_page import render_devices
from dashboard.geo import GeoCache
from dashboard.mapview import MapViews
from dashboard.navigation import apply_location
from dashboard.unit_page import render_unit_page
from layers.geography import Geography
from layers.registry import Device

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "var" / "bench"
END = "2026-11-02T00:00:00+00:00"  # the data's end: the clock is fixed here + 1 minute
METRIC = "pm25"
LANG = "vi"
OFFICER_UNIT = "20194"  # Phường Hải Vân
GOAL_S = 0.300
SECRET = b"bench-only-secret"
MODES = ("cold", "warm", "redis")


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
    "unit page": lambda ctx, s: render_unit_page(
        ctx, s.access, f"/area/commune/{s.unit or OFFICER_UNIT}", "", LANG
    ),
    "devices page": lambda ctx, s: render_devices(ctx, s.access, LANG, ""),
    "alerts page": lambda ctx, s: render_alerts(ctx, s.access, LANG),
}


@dataclass
class Case:
    callback: str
    who: str
    mode: str
    seconds: list[float] = field(default_factory=list)
    queries: list[list[tuple[str, float]]] = field(default_factory=list)
    background: int = 0  # store queries run by background refreshes during the case
    failures: int = 0

    def p(self, q: float) -> float:
        return float(np.percentile(self.seconds, q))


def settings_for_bench() -> Settings:
    return load_settings(REPO / "config.yaml", environ={})


def make_context(
    settings: Settings, store: TimingStore, views: MapViews, devices: list[Device], now: datetime
) -> DashboardContext:
    # The alerts console reads the state database: a private SQLite one (no alert fires
    # in the bench's data, so its tables are empty; the page's queries still run).
    ROOT.mkdir(parents=True, exist_ok=True)
    state = make_engine(f"sqlite:///{ROOT / 'callbacks-state.sqlite'}")
    ctx = build_context(
        settings,
        store,
        views,
        clock=FixedClock(now),
        devices=lambda: devices,
        state_engine=state,
    )
    AlertSource.from_context(ctx).prepare()  # as mounting the alerts page does
    return ctx


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
    mine = threading.get_ident()
    first = len(store.log)
    began = time.perf_counter()
    call(ctx, screen)
    case.seconds.append(time.perf_counter() - began)
    queries = store.log[first:]
    case.queries.append([(q.label, q.seconds) for q in queries if q.thread == mine])


def use_cache(
    contexts: list[DashboardContext], mode: str, cache_s: float, case_no: int, redis_url: str
) -> list[LocalCache | RedisCache]:
    """New caches for a case (cold: none at all)."""
    if mode == "cold":
        for ctx in contexts:
            ctx.data.cache_s, ctx.data.cache = 0.0, LocalCache()
        return []
    made: list[LocalCache | RedisCache] = []
    local = LocalCache()
    for ctx in contexts:
        ctx.data.cache_s = cache_s
        if mode == "redis":
            made.append(RedisCache(redis_url, f"bench:{case_no}:", SECRET))
            ctx.data.cache = made[-1]
        else:
            ctx.data.cache = local
    return made or [local]


def run_case(
    contexts: list[DashboardContext],
    store: TimingStore,
    call: Call,
    screen: Screen,
    case: Case,
    args: argparse.Namespace,
    made: list[LocalCache | RedisCache],
) -> None:
    if case.mode == "cold":
        for _ in range(args.calls):
            measure_call(contexts[0], store, call, screen, case)
        return
    mine = threading.get_ident()
    first = len(store.log)
    start = time.monotonic()
    call(contexts[0], screen)  # the very first call of its keys: waits for the store
    for beat in range(1, max(1, args.calls // args.screens) + 1):
        for n in range(args.screens):  # each screen at its own phase of the beat
            at = start + (beat + n / args.screens) * args.beat
            time.sleep(max(0.0, at - time.monotonic()))
            worker = contexts[n % 2] if case.mode == "redis" else contexts[0]
            measure_call(worker, store, call, screen, case)
    for cache in made:
        cache.wait_idle(60.0)
    case.background = sum(1 for q in store.log[first:] if q.thread != mine)


def run_cases(
    contexts: list[DashboardContext],
    store: TimingStore,
    found: list[Screen],
    args: argparse.Namespace,
    redis_url: str | None,
    failures: Failures,
) -> list[Case]:
    cache_s = min(args.beat / 2, 5.0)  # build_context's, for a refresh beat of args.beat
    modes = [m for m in MODES if m in args.only and (m != "redis" or redis_url)]
    cases: list[Case] = []
    for name, call in CALLBACKS.items():
        if args.callbacks and name not in args.callbacks:
            continue
        for screen in found:
            for mode in modes:
                case = Case(name, screen.who, mode)
                before = len(failures.messages)
                made = use_cache(contexts, mode, cache_s, len(cases), redis_url or "")
                try:
                    run_case(contexts, store, call, screen, case, args, made)
                finally:
                    for cache in made:
                        cache.close()
                case.failures = len(failures.messages) - before
                cases.append(case)
                print(
                    f"  {name:<18} {screen.who:<14} {mode:<5} p50 {case.p(50) * 1000:7.1f} ms"
                    f"  p95 {case.p(95) * 1000:7.1f} ms  failures {case.failures}"
                    f"  load {load_average()}",
                    flush=True,
                )
    for ctx in contexts:  # as build_context made them
        ctx.data.cache, ctx.data.cache_s = LocalCache(), cache_s
    return cases


def table(cases: list[Case]) -> list[list[str]]:
    cells = [
        [
            "callback",
            "user",
            "cache",
            "calls",
            "store queries / call: inline",
            "background",
            "p50 ms",
            "p95 ms",
            "max ms",
            "p95 / cold p95",
            "p95 ≤ 300 ms",
        ]
    ]
    cold = {(c.callback, c.who): c.p(95) for c in cases if c.mode == "cold"}
    for case in cases:
        inline = sum(len(q) for q in case.queries) / len(case.queries)
        p95 = case.p(95)
        baseline = cold.get((case.callback, case.who))
        cells.append(
            [
                case.callback,
                case.who,
                {"cold": "off", "warm": "local", "redis": "redis, 2 workers"}[case.mode],
                f"{len(case.seconds)}" + (f" ({case.failures} failed)" if case.failures else ""),
                f"{inline:.2f}",
                f"{case.background / len(case.seconds):.2f}",
                f"{case.p(50) * 1000:,.1f}",
                f"{p95 * 1000:,.1f}",
                f"{max(case.seconds) * 1000:,.1f}",
                f"{p95 / baseline:.2f}" if baseline else "-",
                "✓" if p95 <= GOAL_S else "✗",
            ]
        )
    return cells


def query_table(cases: list[Case]) -> list[list[str]]:
    """Where a cold call's time goes: each store query, over every cold call."""
    cells = [["callback", "store query", "per call", "p50 ms", "p95 ms", "share of call time"]]
    for name in CALLBACKS:
        if not any(c.callback == name for c in cases):
            continue
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 devices, 2 days, 6 calls")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--calls", type=int, default=20, help="measured calls per case")
    parser.add_argument("--screens", type=int, default=10, help="screens per refresh beat")
    parser.add_argument("--beat", type=float, default=10.0, help="refresh beat, seconds")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis cache case")
    parser.add_argument("--only", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument(
        "--callbacks", nargs="+", choices=list(CALLBACKS), help="only these (never --write)"
    )
    parser.add_argument("--data-root", type=Path, default=ROOT)
    args = parser.parse_args()
    if args.quick:
        args.devices, args.days, args.calls, args.screens, args.beat = 100, 2, 6, 3, 2.0
    return args


def main() -> None:
    args = parse_args()
    spec = DataSpec(args.devices, args.days, END)
    settings = settings_for_bench()
    geography = Geography.from_settings(settings)
    devices = make_devices(geography, spec)
    influxd, loaded = ready_data(args.data_root, spec, devices)
    failures = Failures()
    logging.getLogger("cityops").addHandler(failures)
    load_before = load_average()
    try:
        now = spec.end_ts + timedelta(minutes=1)
        store = TimingStore(InfluxStore(InfluxSettings(url=influxd.url, database=DATABASE)), now)
        views = MapViews(geography, GeoCache(geography))
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
        f"{datetime.now().astimezone():%Y-%m-%d}, nproc 2, load average {load_before} before, "
        f"{load_average()} after: {spec.devices:,} devices × "
        f"{spec.days} days × 1/min = {spec.points:,} points in influxd 1.6 "
        + (
            f"(loaded earlier in {loaded['write_s']:,.0f} s + {loaded['settle_s']:,.0f} s "
            "compaction)"
            if loaded["reused"]
            else f"(loaded now in {loaded['write_s']:,.0f} s + {loaded['settle_s']:,.0f} s "
            "compaction)"
        )
        + f", influxd start {loaded['start_s']:.1f} s; {args.calls} calls per case, "
        f"{args.screens} screens per {args.beat:g} s refresh beat."
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
    if args.write and not args.callbacks:  # a partial run never replaces the whole table
        write_section(
            "Callbacks: server time on 30 days × 1,000 devices",
            [head, "", *markdown_table(cells), "", *markdown_table(breakdown)],
        )


if __name__ == "__main__":
    main()
