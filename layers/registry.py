"""The device registry: which device is where, placed in its units by point-in-polygon."""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError

if TYPE_CHECKING:
    from layers.geography import Geography

log = logging.getLogger("cityops.layers")
REGISTRY_COLUMNS = ("device_id", "kind", "name", "lon", "lat")
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    kind: str
    name: str
    lon: float
    lat: float
    unit_code: str | None  # the lowest-level unit, None when outside every unit
    tags: Mapping[str, str] = field(default_factory=dict)  # {"province": "48", "commune": "20194"}


def place_device(
    device_id: str, kind: str, name: str, lon: float, lat: float, geography: Geography
) -> Device:
    """A device with its units found by point-in-polygon."""
    code = geography.locator().locate(lon, lat)
    tags = geography.hierarchy.level_tags(code) if code is not None else {}
    return Device(device_id, kind, name, lon, lat, code, tags)


def read_registry(path: Path, geography: Geography) -> dict[str, Device]:
    """Read ``device_id,kind,name,lon,lat``; every bad row stops with file, line, column, value."""
    key = "devices.registry"
    if not path.exists():
        raise ConfigError(key, str(path), "must name an existing CSV file")
    rows: list[tuple[str, str, str, float, float]] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REGISTRY_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(key, str(path), f"must have the columns {list(REGISTRY_COLUMNS)}")
        for row in reader:
            line = reader.line_num  # physical line: right even after blank or multi-line rows
            where = f"{key} {path}:{line}"
            if None in row or None in row.values():
                hint = " (quote a name that contains a comma)" if None in row else ""
                columns = len(reader.fieldnames or [])
                raise ConfigError(
                    where, _raw_values(row), f"must have {columns} comma-separated values{hint}"
                )
            device_id = (row["device_id"] or "").strip()
            if not DEVICE_ID.match(device_id):
                raise ConfigError(
                    f"{where} device_id", device_id, "must be 1-64 of A-Z a-z 0-9 _ . -"
                )
            if device_id in seen:
                raise ConfigError(
                    f"{where} device_id", device_id, f"must be unique (also line {seen[device_id]})"
                )
            seen[device_id] = line
            kind = (row["kind"] or "").strip()
            if not KIND.match(kind):
                raise ConfigError(f"{where} kind", kind, "must be a lower-case word such as air")
            lon = _coordinate(row["lon"], -180, 180, f"{where} lon")
            lat = _coordinate(row["lat"], -90, 90, f"{where} lat")
            name = unicodedata.normalize("NFC", (row["name"] or "").strip())
            rows.append((device_id, kind, name, lon, lat))
    codes = geography.locator().locate_many([r[3] for r in rows], [r[4] for r in rows])
    devices: dict[str, Device] = {}
    for (device_id, kind, name, lon, lat), code in zip(rows, codes, strict=True):
        if code is None:
            log.warning("device %s at %.5f,%.5f lies outside every unit", device_id, lon, lat)
        tags = geography.hierarchy.level_tags(code) if code is not None else {}
        devices[device_id] = Device(device_id, kind, name, lon, lat, code, tags)
    return devices


def _raw_values(row: Mapping[Any, Any]) -> str:
    """The row as written, for an error message: DictReader files extra values under None."""
    values = [value for key, value in row.items() if key is not None and value is not None]
    return ",".join([*values, *(row.get(None) or [])])


def _coordinate(raw: str | None, low: float, high: float, key: str) -> float:
    try:
        value = float((raw or "").strip())
    except ValueError:
        raise ConfigError(key, raw, "must be a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(key, raw, f"must be a number from {low} to {high}")
    return value


def write_registry(path: Path, devices: Iterable[Device]) -> None:
    """Write the registry CSV (creating its folder). Written to a temporary file and renamed,
    so a reader never sees half a registry. Coordinates keep every digit (shortest repr)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(REGISTRY_COLUMNS)
            for device in devices:
                writer.writerow(
                    [
                        device.device_id,
                        device.kind,
                        device.name,
                        str(float(device.lon)),
                        str(float(device.lat)),
                    ]
                )
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


class RegistryFile:
    """The registry as the dashboard sees it: re-read when the file changes (a device
    registered while the dashboard runs appears on the next refresh); a missing file is
    no devices; a file broken by an edit keeps the last good list and logs why."""

    def __init__(self, path: Path, geography: Geography) -> None:
        self.path = path
        self.geography = geography
        self._stamp: tuple[int, int] | None = None
        self._devices: list[Device] = []
        self._lock = threading.Lock()

    def devices(self) -> list[Device]:
        with self._lock:  # the dashboard's server threads share one instance
            return self._current()

    def _current(self) -> list[Device]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._devices = None, []
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                self._devices = list(read_registry(self.path, self.geography).values())
            except ConfigError as exc:
                log.error("device registry not reloaded, keeping the last good one: %s", exc)
            self._stamp = stamp
        return self._devices
