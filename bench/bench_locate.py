"""Point → commune over the whole country: ``Locator`` on the 3,321 communes.

    .venv/bin/python -m bench.bench_locate [--points 1000000] [--no-write]

Builds the STRtree (the baseline every service pays once at start) and locates uniformly
random points in Viet Nam's bounding box (most fall in the sea or in neighbouring
countries: the worst case for a tree, every query reaches the leaves). Goal (issue #4):
1,000,000 points ≤ 10 s. Writes the section "Point to commune" of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.results import markdown_table, write_section
from core.settings import load_settings
from layers.boundaries import load_boundaries
from layers.levels import Hierarchy
from layers.locate import Locator

REPO = Path(__file__).resolve().parents[1]
COMMUNES = REPO / "layers" / "data" / "vn_communes_2025.geojson"
GOAL_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    settings = load_settings(REPO / "config.yaml", environ={})
    hierarchy = Hierarchy.from_csv(
        settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
    )
    began = time.perf_counter()
    frame = load_boundaries(COMMUNES, "commune", hierarchy)
    load_s = time.perf_counter() - began
    began = time.perf_counter()
    locator = Locator(frame)
    build_s = time.perf_counter() - began
    west, south, east, north = frame.total_bounds
    rng = np.random.default_rng(2025)
    lons = rng.uniform(west, east, args.points)
    lats = rng.uniform(south, north, args.points)
    began = time.perf_counter()
    found = locator.locate_many(lons, lats)  # type: ignore[arg-type]
    locate_s = time.perf_counter() - began
    inside = sum(code is not None for code in found)
    cells = [
        ["communes", "points", "inside a commune", "load s", "STRtree ms", "locate s", "goal"],
        [
            f"{len(locator):,}",
            f"{args.points:,}",
            f"{inside:,}",
            f"{load_s:.2f}",
            f"{build_s * 1000:.1f}",
            f"{locate_s:.2f}",
            f"≤ {GOAL_S:g} s {'✓' if locate_s <= GOAL_S else '✗'}",
        ],
    ]
    for row in cells:
        print("  ".join(row))
    if not args.no_write:
        write_section(
            "Point to commune",
            [
                f"`python -m bench.bench_locate --points {args.points}`, "
                f"{datetime.now(UTC):%Y-%m-%d}: uniform random points in the bounding box "
                f"({west:.2f}–{east:.2f} E, {south:.2f}–{north:.2f} N) against "
                f"{COMMUNES.name}; load = read and check the file, STRtree = build and "
                "prepare the polygons.",
                "",
                *markdown_table(cells),
            ],
        )


if __name__ == "__main__":
    main()
