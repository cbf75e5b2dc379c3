"""What a benchmark ran on: the machine and the versions of every part that was measured.
One line for a section's header, a table for the head of bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

# (name, command printing its version) for the servers the benchmarks start.
TOOLS: tuple[tuple[str, list[str]], ...] = (
    ("Mosquitto", ["/usr/sbin/mosquitto", "-h"]),
    ("InfluxDB", ["/usr/bin/influxd", "version"]),
    ("Chromium", ["/usr/bin/chromium", "--version"]),
    ("Redis", ["redis-server", "--version"]),
    ("PostgreSQL", ["psql", "--version"]),
)
PACKAGES = ("dash", "plotly", "paho-mqtt", "influxdb-client", "pandas", "shapely", "sqlalchemy")


def tool_version(command: list[str]) -> str:
    """The first line a tool prints about itself, or "not installed"."""
    if shutil.which(command[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc.__class__.__name__})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def machine_line() -> str:
    """``nproc 2, <CPU>, 23.5 GiB, Linux 6.1, Python 3.11.7`` (a section's header)."""
    return (
        f"nproc {os.cpu_count()}, {cpu_model()}, {memory_gib():.1f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def versions_table() -> list[list[str]]:
    """Rows [part, version] for the head of RESULTS.md."""
    rows = [["part", "version"], ["machine", machine_line()]]
    rows += [[name, tool_version(command)] for name, command in TOOLS]
    for package in PACKAGES:
        try:
            rows.append([package, metadata.version(package)])
        except metadata.PackageNotFoundError:
            rows.append([package, "not installed"])
    return rows
