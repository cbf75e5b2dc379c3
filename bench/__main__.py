"""Run every benchmark of bench/ in turn and rewrite bench/RESULTS.md: ``make bench``.

Each ``bench/bench_*.py`` runs in its own process with the arguments below (none: its
defaults), writes its own section of RESULTS.md (the figures beside the baseline it
measured in the same run) and prints its table. Then the head of RESULTS.md is rewritten:
the date, the machine, the versions of every part, and which benchmark ran how long with
what outcome. A benchmark that fails does not stop the others; its old section stays and
the head says it failed. ``python -m bench --only ingest alerts`` runs a subset.
"""

from __future__ import annotations

import argparse
import pkgutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import versions_table
from bench.results import RESULTS, markdown_table, write_head

FOLDER = Path(__file__).parent
# Arguments that make a benchmark write its RESULTS.md section (most do by default).
ARGUMENTS: dict[str, list[str]] = {
    "bench_callbacks": ["--write"],
    "bench_ingest": ["--messages", "200000", "--repeat", "3"],
}


@dataclass(frozen=True)
class Outcome:
    name: str
    seconds: float
    code: int

    def cells(self) -> list[str]:
        state = "ok" if self.code == 0 else f"failed (exit {self.code})"
        return [f"`python -m bench.{self.name}`", f"{self.seconds:,.0f}", state]


def benchmarks(folder: Path = FOLDER) -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules([str(folder)]) if m.name.startswith("bench_")
    )


def run(name: str) -> Outcome:
    print(f"\n== bench.{name} ==", flush=True)
    started = time.monotonic()
    command = [sys.executable, "-m", f"bench.{name}", *ARGUMENTS.get(name, [])]
    code = subprocess.run(command, cwd=FOLDER.parent, check=False).returncode
    return Outcome(name, time.monotonic() - started, code)


def head_lines(outcomes: list[Outcome], started: datetime, versions: list[list[str]]) -> list[str]:
    return [
        f"Last `make bench`: {started:%Y-%m-%d %H:%M} UTC, "
        f"{sum(o.seconds for o in outcomes) / 60:.1f} min. Every figure below is beside a "
        "baseline measured in the same run of its benchmark; compare ratios, not seconds, "
        "between machines. A section keeps the date and command of the run that wrote it.",
        "",
        *markdown_table(versions),
        "",
        *markdown_table([["benchmark", "seconds", "outcome"], *(o.cells() for o in outcomes)]),
    ]


def main() -> None:
    names = benchmarks()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    short = [name.removeprefix("bench_") for name in names]
    parser.add_argument("--only", nargs="+", choices=short, default=short)
    args = parser.parse_args()
    started = datetime.now(UTC)
    outcomes = [run(f"bench_{name}") for name in args.only]
    write_head(head_lines(outcomes, started, versions_table()), RESULTS)
    print(f"\nwrote {RESULTS}")
    for outcome in outcomes:
        print("  ".join(outcome.cells()))
    if any(outcome.code for outcome in outcomes):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
