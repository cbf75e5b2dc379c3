"""bench/RESULTS.md bookkeeping: a benchmark replaces its own section, `make bench`
rewrites the head, and neither loses the other's text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bench.__main__ import Outcome, benchmarks, head_lines
from bench.results import write_head, write_section


def test_a_section_is_replaced_in_place_and_the_others_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    write_section("Ingest", ["old ingest"], path)
    write_section("Alerts", ["alerts"], path)
    write_section("Ingest", ["new ingest"], path)
    text = path.read_text(encoding="utf-8")
    assert "old ingest" not in text
    assert text.index("## Ingest") < text.index("new ingest") < text.index("## Alerts")
    assert text.count("## ") == 2


def test_the_head_is_rewritten_and_every_section_survives(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    write_section("Ingest", ["| a | b |", "", "ingest text"], path)
    write_section("Alerts", ["alerts text"], path)
    write_head(["first head"], path)
    write_head(["second head"], path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n\nsecond head\n")
    assert "first head" not in text
    assert "ingest text" in text
    assert "alerts text" in text
    assert text.index("second head") < text.index("## Ingest") < text.index("## Alerts")


def test_the_head_names_the_run_the_versions_and_each_outcome() -> None:
    started = datetime(2026, 11, 30, 1, 2, tzinfo=UTC)
    outcomes = [Outcome("bench_ingest", 90.0, 0), Outcome("bench_map", 30.0, 3)]
    lines = head_lines(outcomes, started, [["part", "version"], ["InfluxDB", "v1.6.7"]])
    text = "\n".join(lines)
    assert "2026-11-30 01:02 UTC, 2.0 min" in text
    assert "| InfluxDB | v1.6.7 |" in text
    assert "| `python -m bench.bench_ingest` | 90 | ok |" in text
    assert "| `python -m bench.bench_map` | 30 | failed (exit 3) |" in text


def test_every_benchmark_module_is_found() -> None:
    names = benchmarks()
    assert {"bench_ingest", "bench_alerts", "bench_callbacks", "bench_map"} <= set(names)
    assert all(name.startswith("bench_") for name in names)
