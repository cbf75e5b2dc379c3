"""The data of bench_callbacks: devices over Đà Nẵng's communes and their 1-minute
readings, written once into a private influxd's data directory under var/bench/; and the
bench's small helpers (a fixed clock, a store that times its queries, a private Redis).

Air sensors (pm25, pm10) and a few river gauges (level, alarm), each placed at a random
point inside a commune of layers/data/danang_2025_communes.geojson and tagged the way
ingest tags them (device, province, commune). Readings follow a daily cycle per device
with noise, from ``end - days`` up to ``end`` (one a minute each). The same arguments
always give the same devices and values (seeded), so a data directory is reused while
``loaded.json`` in it names the same arguments.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import requests
import shapely

from core.store import InfluxStore
from core.types import MetricRef, UnitRef
from layers.geography import Geography
from layers.registry import Device
from tests.fixtures.influxd import influxd_config
from tests.fixtures.process import free_port
from tests.fixtures.redis import REDIS_SERVER, RedisServer

INFLUXD = Path("/usr/bin/influxd")
DATABASE = "bench"
MINUTES_PER_BODY = 60  # one HTTP write: an hour of every device (60,000 lines for 1,000)
WATER_SHARE = 50  # one river gauge per 50 devices
# Values in tenths (air) and hundredths (water level): strings looked up, not formatted.
_TENTHS = [f"{n / 10:.1f}" for n in range(10_001)]
_HUNDREDTHS = [f"{n / 100:.2f}" for n in range(2_001)]
_ALARMS = ["0.0", "1.0", "2.0", "3.0"]


@dataclass(frozen=True, slots=True)
class DataSpec:
    devices: int
    days: int
    end: str  # ISO UTC, minute aligned: the newest reading is one minute before
    seed: int = 2025

    @property
    def end_ts(self) -> datetime:
        return datetime.fromisoformat(self.end)

    @property
    def points(self) -> int:
        return self.devices * self.days * 24 * 60

    def folder(self, root: Path) -> Path:
        return root / f"callbacks-{self.devices}dev-{self.days}d-{self.seed}"


def make_devices(geography: Geography, spec: DataSpec) -> list[Device]:
    """``spec.devices`` devices at seeded random points inside the map level's units,
    round robin over the units (so every commune has some)."""
    rng = np.random.default_rng(spec.seed)
    frame = geography.boundaries(geography.map_level)
    units = list(zip(frame["code"].astype(str), frame.geometry, strict=True))
    gauges = max(1, spec.devices // WATER_SHARE)
    devices = []
    for n in range(spec.devices):
        code, shape = units[n % len(units)]
        lon, lat = _point_inside(shape, rng)
        water = n % WATER_SHARE == WATER_SHARE - 1 and gauges > 0
        kind, device_id = ("water", f"wl-{n:04d}") if water else ("air", f"aq-{n:04d}")
        tags = geography.hierarchy.level_tags(code)
        devices.append(Device(device_id, kind, f"Trạm {device_id}", lon, lat, code, tags))
    return devices


def _point_inside(shape: shapely.Geometry, rng: np.random.Generator) -> tuple[float, float]:
    west, south, east, north = shape.bounds
    for _ in range(1000):
        lon, lat = rng.uniform(west, east), rng.uniform(south, north)
        if shapely.contains_xy(shape, lon, lat):
            return float(lon), float(lat)
    point = shape.representative_point()
    return float(point.x), float(point.y)


def _line_heads(devices: list[Device]) -> list[str]:
    heads = []
    for device in devices:
        tags = {"device": device.device_id, **device.tags}
        tag_text = ",".join(f"{key}={tags[key]}" for key in sorted(tags))
        heads.append(f"{device.kind},{tag_text} ")
    return heads


def bodies(devices: list[Device], spec: DataSpec) -> Iterator[bytes]:
    """Line protocol (precision s), MINUTES_PER_BODY minutes of every device per body."""
    rng = np.random.default_rng(spec.seed + 1)
    heads = _line_heads(devices)
    kinds = [(head, device.kind == "air") for head, device in zip(heads, devices, strict=True)]
    base = rng.lognormal(np.log(30.0), 0.5, len(devices))  # µg/m³, some sensors dirtier
    stage = rng.uniform(1.0, 4.0, len(devices))  # m, each gauge its own datum
    start = spec.end_ts - timedelta(days=spec.days)
    minutes = spec.days * 24 * 60
    start_s = int(start.timestamp())
    for first in range(0, minutes, MINUTES_PER_BODY):
        count = min(MINUTES_PER_BODY, minutes - first)
        offsets = np.arange(first, first + count)
        local_hour = ((offsets / 60.0) + 7.0 + start.hour + start.minute / 60) % 24
        rush = 1.0 + 0.6 * np.exp(-(((local_hour - 8) / 1.5) ** 2))
        rush += 0.5 * np.exp(-(((local_hour - 18) / 1.5) ** 2))
        noise = rng.normal(1.0, 0.12, (count, len(devices)))
        pm25 = np.clip(np.rint(base[None, :] * rush[:, None] * noise * 10), 0, 10_000)
        pm10 = np.clip(np.rint(pm25 * 1.7), 0, 10_000)
        tide = 0.4 * np.sin(offsets / (12.4 * 60) * 2 * np.pi)
        level = np.clip(np.rint((stage[None, :] + tide[:, None]) * noise * 100), 0, 2_000)
        alarm = np.clip((level - 300) // 100, 0, 3)
        p25, p10 = pm25.astype(np.int64).tolist(), pm10.astype(np.int64).tolist()
        lv, al = level.astype(np.int64).tolist(), alarm.astype(np.int64).tolist()
        lines: list[str] = []
        for row in range(count):
            ts = f" {start_s + int(offsets[row]) * 60}\n"
            r25, r10, rl, ra = p25[row], p10[row], lv[row], al[row]
            lines.extend(
                head
                + (
                    f"pm10={_TENTHS[r10[d]]},pm25={_TENTHS[r25[d]]}"
                    if is_air
                    else f"alarm={_ALARMS[ra[d]]},level={_HUNDREDTHS[rl[d]]}"
                )
                + ts
                for d, (head, is_air) in enumerate(kinds)
            )
        yield "".join(lines).encode()


class Influxd:
    """A private influxd on free loopback ports over the data directories in ``root``."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        http_port, rpc_port = free_port(), free_port()
        while rpc_port == http_port:
            rpc_port = free_port()
        (root / "influxdb.conf").write_text(influxd_config(root, http_port, rpc_port))
        self.url = f"http://127.0.0.1:{http_port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Seconds until it answered /ping (it reads the shards' indexes first)."""
        began = time.perf_counter()
        with (self.root / "influxd.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(INFLUXD), "run", "-config", str(self.root / "influxdb.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"influxd exited; see {self.root / 'influxd.log'}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    return time.perf_counter() - began
            time.sleep(0.2)
        raise SystemExit(f"influxd did not answer in 600 s; see {self.root / 'influxd.log'}")

    def cpu_s(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks

    def wait_idle(self, limit_s: float = 300.0) -> float:
        """Wait until influxd uses under 5 % of a core over 2 s (compactions done)."""
        began = time.perf_counter()
        while time.perf_counter() - began < limit_s:
            before = self.cpu_s()
            time.sleep(2.0)
            if self.cpu_s() - before < 0.1:
                break
        return time.perf_counter() - began

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None


def load(influxd: Influxd, devices: list[Device], spec: DataSpec) -> dict[str, float]:
    """Write every reading (a generator thread and a sender, so both cores work)."""
    session = requests.Session()
    session.post(f"{influxd.url}/query", data={"q": f'CREATE DATABASE "{DATABASE}"'}, timeout=30)
    pending: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
    failure: list[str] = []
    sent = {"bytes": 0}

    def sender() -> None:
        while (body := pending.get()) is not None:
            if failure:
                continue
            response = session.post(
                f"{influxd.url}/write",
                params={"db": DATABASE, "precision": "s"},
                data=body,
                timeout=300,
            )
            if response.status_code != 204:
                failure.append(f"HTTP {response.status_code}: {response.text[:300]}")
            sent["bytes"] += len(body)

    thread = threading.Thread(target=sender, name="bench-load", daemon=True)
    began = time.perf_counter()
    thread.start()
    for done, body in enumerate(bodies(devices, spec), start=1):
        pending.put(body)
        if done % 24 == 0:
            elapsed = time.perf_counter() - began
            print(f"  loaded {done // 24} of {spec.days} days in {elapsed:,.0f} s", flush=True)
        if failure:
            break
    pending.put(None)
    thread.join()
    if failure:
        raise SystemExit(f"influxd refused a write: {failure[0]}")
    write_s = time.perf_counter() - began
    settle_s = influxd.wait_idle()
    return {"write_s": write_s, "settle_s": settle_s, "bytes": float(sent["bytes"])}


def ready_data(
    root: Path, spec: DataSpec, devices: list[Device]
) -> tuple[Influxd, dict[str, float]]:
    """A running influxd with the data of ``spec``: loaded now unless the folder has it."""
    folder = spec.folder(root)
    marker = folder / "loaded.json"
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved.get("spec") == asdict(spec):
            influxd = Influxd(folder)
            start_s = influxd.start()
            return influxd, {**saved["load"], "start_s": start_s, "reused": 1.0}
        raise SystemExit(f"{folder} holds other data ({saved.get('spec')}): remove it first")
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"{folder} has a half-loaded store (no loaded.json): remove it first")
    influxd = Influxd(folder)
    influxd.start()
    print(f"loading {spec.points:,} points into {folder} ...", flush=True)
    loaded = load(influxd, devices, spec)
    marker.write_text(
        json.dumps(
            {"spec": asdict(spec), "load": loaded, "at": datetime.now(UTC).isoformat()}, indent=1
        )
    )
    # Measure what a restarted server does: shards opened from disk, not a write-hot cache.
    influxd.stop()
    start_s = influxd.start()
    return influxd, {**loaded, "start_s": start_s, "reused": 0.0}


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


@dataclass(frozen=True, slots=True)
class Timed:
    label: str
    seconds: float
    thread: int  # threading.get_ident(): the callback's own, or a background refresh's


class TimingStore:
    """The InfluxStore, recording every read (appended from any thread)."""

    def __init__(self, store: InfluxStore, now: datetime) -> None:
        self.store = store
        self.now = now
        self.log: list[Timed] = []

    def latest_by_unit(self, metric: MetricRef, level: str, **kwargs: Any) -> Any:
        parent: UnitRef | None = kwargs.get("parent")
        window = _span(kwargs.get("until") or self.now, kwargs["since"])
        label = f"latest {metric.measurement}.{metric.field} by {level}"
        label += f" in {parent.level} {parent.code}" if parent else ""
        return self._timed(f"{label}, {window}", self.store.latest_by_unit, metric, level, **kwargs)

    def series(self, metric: MetricRef, unit: UnitRef, **kwargs: Any) -> Any:
        window = _span(kwargs["end"], kwargs["start"])
        label = f"series {metric.measurement}.{metric.field} of {unit.level} {unit.code}, {window}"
        return self._timed(label, self.store.series, metric, unit, **kwargs)

    def _timed(self, label: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            self.log.append(Timed(label, time.perf_counter() - began, threading.get_ident()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _span(end: datetime, start: datetime) -> str:
    hours = (end - start).total_seconds() / 3600
    return f"{hours:g} h"


class Failures(logging.Handler):
    """Callbacks answer "could not load" and log: any warning from cityops is a failure
    (the cache's own warnings too: a failed background refresh is one)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


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


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
