"""The map in headless Chromium: first render, recolour and geometry bytes, three sizes.

    .venv/bin/python -m bench.bench_map [--runs 3] [--cases provinces danang communes]
                                        [--no-write]

Each case starts the real dashboard (``create_app`` under waitress on a free loopback
port) with an SQLite store holding one PM2.5 reading per unit of the map level, and opens
it in /usr/bin/chromium (Playwright, never a downloaded browser), a fresh browser context
(empty cache) per run:

* *first map*: navigation start → every unit's ``path.choroplethlocation`` is in the DOM
  with its data colour (``performance.now()`` in the page, polled every animation frame);
* *reload*: the same page reloaded: the wall screen after a kiosk restart, with plotly.js,
  its compiled code and the geometry from the browser's cache;
* *recolour*: the wall's steady state. New readings (every unit one band up) are written,
  the next refresh answers with the new colours (``views.map.map_update``, applied in the
  page by ``assets/map.js``); measured from the arrival of that response
  (a fetch wrapper in the page) to the fills having changed, i.e. the browser's share;
* *metric*: a click on another metric → the fills of the new full figure (geometry is
  already in the page: Plotly keeps fetched GeoJSON by URL).

Medians of ``--runs`` runs. Geometry bytes are what the server sends for the page's URL,
gzipped and raw. Goals (issue #4): 34 provinces first map ≤ 1 s; 3,321 communes first map
≤ 2.5 s and recolour ≤ 200 ms. Writes the section "Map rendering" of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from playwright.sync_api import Browser, Page, sync_playwright

from bench.results import markdown_table, write_section
from core.db import make_engine
from core.settings import Settings, parse_settings
from core.store import SqliteStore
from core.types import Point
from dashboard.app import create_app, make_server, stop_server
from dashboard.geo import GeoCache
from layers.geography import Geography
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS
from tests.fixtures.signin import PASSWORD, TEST_SECRET_ENV, add_user, csrf_of

REPO = Path(__file__).resolve().parents[1]
NATIONAL_COMMUNES = "layers/data/vn_communes_2025.geojson"
REFRESH_S = 2
# Values in the bands of VN_AQI PM2.5 (Tốt … Nguy hại); a recolour moves each unit one up.
BAND_VALUES = (12.0, 37.0, 65.0, 110.0, 199.0, 320.0)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    label: str
    layers: dict[str, Any]  # overrides of config.yaml's ``layers``
    goal_first_s: float | None
    goal_recolour_s: float | None


CASES = {
    "provinces": Case(
        "provinces",
        "34 provinces (country)",
        {"scope": None, "map_level": "province"},
        1.0,
        None,
    ),
    "danang": Case("danang", "94 communes (Đà Nẵng)", {}, None, None),
    "communes": Case(
        "communes",
        "3,321 communes (country)",
        {
            "scope": None,
            "map_level": "commune",
            "boundaries": {
                "province": "layers/data/vn_provinces_2025.geojson",
                "commune": NATIONAL_COMMUNES,
            },
        },
        2.5,
        0.2,
    ),
}

# Resolves with performance.now() once every unit is drawn with a data colour different
# from the snapshot in window.__fills (null: any non-black fill).
_DRAWN_JS = """([count, changed]) => {
    const paths = document.querySelectorAll('#map path.choroplethlocation');
    if (paths.length < count) return false;
    const step = Math.max(1, Math.floor(paths.length / 40));
    for (let i = 0; i < paths.length; i += step) {
        const fill = getComputedStyle(paths[i]).fill;
        if (!fill || fill === 'rgb(0, 0, 0)') return false;
        if (changed && window.__fills && window.__fills[i] === fill) return false;
    }
    return performance.now();
}"""
_SNAPSHOT_JS = """() => {
    window.__fills = [...document.querySelectorAll('#map path.choroplethlocation')]
        .map(p => getComputedStyle(p).fill);
    window.__mapResponses = [];
}"""
# Records when each response that carries the map's figure arrives.
_FETCH_HOOK_JS = """(() => {
    window.__mapResponses = [];
    const original = window.fetch;
    window.fetch = async (...args) => {
        const response = await original(...args);
        const body = args[1] && args[1].body;
        if (typeof body === 'string' && body.includes('map.figure')) {
            window.__mapResponses.push(performance.now());
        }
        return response;
    };
})();"""


def case_settings(case: Case) -> Settings:
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["layers"] = {**raw["layers"], **case.layers}
    raw["dashboard"]["refresh_s"] = REFRESH_S
    return parse_settings(raw, environ=TEST_SECRET_ENV, base_dir=REPO)


def readings(geography: Geography, level: str, shift: int, now: datetime) -> list[Point]:
    """One PM2.5 reading per unit of ``level``, tagged with the unit and its ancestors."""
    codes = [str(code) for code in geography.boundaries(level)["code"]]
    return [
        Point(
            "air",
            {"device": f"bench-{code}", **geography.hierarchy.level_tags(code)},
            {"pm25": BAND_VALUES[(index + shift) % len(BAND_VALUES)]},
            now,
        )
        for index, code in enumerate(codes)
    ]


@contextmanager
def dashboard(settings: Settings, geography: Geography, store: SqliteStore) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="cityops-bench-state-") as folder:
        engine = make_engine(f"sqlite:///{folder}/state.sqlite")
        add_user(engine, "admin")
        app = create_app(settings, store, geography, devices=list, state_engine=engine)
        server = make_server(app, "127.0.0.1", 0)
        thread = threading.Thread(target=server.run, name="bench-dashboard", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.effective_port}"
        finally:
            stop_server(server)
            thread.join(timeout=5)
            engine.dispose()


def open_page(browser: Browser, url: str) -> Page:
    """A new browser context, signed in through the form's POST (no page is loaded, so
    the map's scripts and geometry are still to fetch: a first visit)."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="vi-VN")
    form = context.request.get(url + "/login").text()
    signed = context.request.post(
        url + "/login",
        form={"username": "admin", "password": PASSWORD, "csrf_token": csrf_of(form)},
        max_redirects=0,
    )
    assert signed.status == 303, signed.status
    context.add_init_script(_FETCH_HOOK_JS)
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def wait_drawn(page: Page, count: int, *, changed: bool) -> float:
    handle = page.wait_for_function(_DRAWN_JS, arg=[count, changed], polling="raf")
    return float(handle.json_value())


def one_run(
    browser: Browser, url: str, count: int, store: SqliteStore, geography: Geography, level: str
) -> tuple[float, float, float, float]:
    """(first map, first map on reload, recolour, metric switch) in seconds."""
    page = open_page(browser, url)
    try:
        page.goto(url + "/", wait_until="commit")
        first_ms = wait_drawn(page, count, changed=False)
        # The wall screen's restart: scripts and geometry from the browser's cache.
        page.reload(wait_until="commit")
        reload_ms = wait_drawn(page, count, changed=False)
        page.evaluate(_SNAPSHOT_JS)
        store.write(readings(geography, level, shift=1, now=datetime.now(UTC)))
        drawn_ms = wait_drawn(page, count, changed=True)
        responses: list[float] = page.evaluate("window.__mapResponses")
        arrived = max((ms for ms in responses if ms <= drawn_ms), default=float("nan"))
        page.evaluate(_SNAPSHOT_JS)
        clicked_ms = float(page.evaluate("performance.now()"))
        page.locator('#metric-select input[value="pm10"]').check()
        switched_ms = wait_drawn(page, count, changed=True)
        return (
            first_ms / 1000,
            reload_ms / 1000,
            (drawn_ms - arrived) / 1000,
            (switched_ms - clicked_ms) / 1000,
        )
    finally:
        page.context.close()


def measure(browser: Browser, case: Case, runs: int, folder: Path) -> dict[str, Any]:
    settings = case_settings(case)
    geography = Geography.from_settings(settings)
    level = settings.layers.map_level
    began = time.perf_counter()
    body = GeoCache(geography).get(level)
    prepare_s = time.perf_counter() - began
    count = len(geography.boundaries(level))
    store = SqliteStore(folder / f"{case.name}.sqlite")
    store.write(readings(geography, level, shift=0, now=datetime.now(UTC) - timedelta(seconds=1)))
    results = []
    try:
        with dashboard(settings, geography, store) as url:
            for _ in range(runs):
                store.write(readings(geography, level, shift=0, now=datetime.now(UTC)))
                results.append(one_run(browser, url, count, store, geography, level))
    finally:
        store.close()
    first, reload, recolour, switch = (
        statistics.median(column) for column in zip(*results, strict=True)
    )
    return {
        "case": case,
        "units": count,
        "raw": len(body.plain),
        "gzip": len(body.gzipped),
        "prepare_s": prepare_s,
        "first_s": first,
        "reload_s": reload,
        "recolour_s": recolour,
        "switch_s": switch,
        "runs": results,
    }


def _goal(value: float, goal: float | None) -> str:
    if goal is None:
        return f"{value * 1000:,.0f}"
    return f"{value * 1000:,.0f} ({'≤' if value <= goal else '>'} {goal * 1000:,.0f} {'✓' if value <= goal else '✗'})"  # noqa: E501


def table(rows: list[dict[str, Any]]) -> list[list[str]]:
    cells = [
        [
            "case",
            "units",
            "geometry gzip / raw",
            "prepare ms",
            "first map ms",
            "reload ms",
            "recolour ms",
            "metric switch ms",
        ]
    ]
    for row in rows:
        case: Case = row["case"]
        cells.append(
            [
                case.label,
                f"{row['units']:,}",
                f"{row['gzip'] / 1024:,.0f} KiB / {row['raw'] / 1024:,.0f} KiB",
                f"{row['prepare_s'] * 1000:,.0f}",
                _goal(row["first_s"], case.goal_first_s),
                _goal(row["reload_s"], case.goal_first_s),
                _goal(row["recolour_s"], case.goal_recolour_s),
                f"{row['switch_s'] * 1000:,.0f}",
            ]
        )
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    if shutil.which(CHROMIUM) is None:
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    rows = []
    with tempfile.TemporaryDirectory(prefix="cityops-bench-map-") as folder, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name in args.cases:
                rows.append(measure(browser, CASES[name], args.runs, Path(folder)))
                print(f"{name}: runs {rows[-1]['runs']}", flush=True)
        finally:
            browser.close()
    cells = table(rows)
    widths = [max(len(row[column]) for row in cells) for column in range(len(cells[0]))]
    for line in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
    if not args.no_write:
        write_section(
            "Map rendering",
            [
                f"`python -m bench.bench_map --runs {args.runs}`, {datetime.now(UTC):%Y-%m-%d}, "
                "headless Debian Chromium 1920×1080, software rendering (--disable-gpu); "
                f"median of {args.runs} runs, each in a fresh browser context (empty cache).",
                "",
                *markdown_table(cells),
                "",
                "first map: navigation start → every unit drawn with its data colour, fresh "
                "context. reload: the same page reloaded (scripts, compiled code and geometry "
                "from the browser's cache: the wall screen after a restart). "
                "recolour: the refresh's response arrives → fills changed (browser "
                "only). metric switch: click → the new figure's fills. prepare: simplify, "
                "serialise and gzip the view once, in the server.",
            ],
        )


if __name__ == "__main__":
    main()
