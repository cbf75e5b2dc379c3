"""Enrich a Reading with its device's units: the unit codes become tags of the stored Point.

A device is found in the registry by id. A payload with ``lat``/``lon`` places the device
at that position (a device that moves, or one not yet registered) by point-in-polygon;
placements are cached so a device that keeps sending the same position is located once.
Everything that cannot be placed is a DecodeError, so it lands in dead-letter with its
reason instead of vanishing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from core.errors import DecodeError
from core.types import Point, Reading
from layers.registry import Device, place_device

if TYPE_CHECKING:
    from layers.geography import Geography

# (device_id, kind, name, lon, lat) -> Device with unit_code and tags.
PlaceDevice = Callable[[str, str, str, float, float], Device]

# Placements kept; a flood of made-up device ids must not grow memory without bound.
MAX_PLACED = 100_000


def to_points(reading: Reading, device: Device) -> list[Point]:
    """One Point per reading: measurement = kind, tags = device + unit codes, fields = metrics."""
    if reading.device_id != device.device_id:
        raise ValueError(f"reading of {reading.device_id!r} enriched with {device.device_id!r}")
    if reading.kind != device.kind:
        raise DecodeError(
            f"device {device.device_id!r} is registered as kind {device.kind!r},"
            f" the topic says {reading.kind!r}"
        )
    if device.unit_code is None:
        raise DecodeError(
            f"device {device.device_id!r} at lon {device.lon:.5f}, lat {device.lat:.5f}"
            " lies outside every administrative unit of the map"
        )
    tags = {"device": device.device_id, **device.tags}
    return [Point(measurement=reading.kind, tags=tags, fields=dict(reading.values), ts=reading.ts)]


class Enricher:
    """Finds or places the device of each reading, then builds its points.

    Used from the ingest worker's single thread only (no locking)."""

    def __init__(
        self, devices: Mapping[str, Device], place: PlaceDevice, *, max_placed: int = MAX_PLACED
    ) -> None:
        self._registry = devices
        self._place = place
        self._placed: OrderedDict[str, Device] = OrderedDict()
        self._max_placed = max_placed

    @classmethod
    def for_geography(cls, devices: Mapping[str, Device], geography: Geography) -> Enricher:
        def place(device_id: str, kind: str, name: str, lon: float, lat: float) -> Device:
            return place_device(device_id, kind, name, lon, lat, geography)

        return cls(devices, place)

    @property
    def placed(self) -> int:
        """How many devices are currently placed from payload positions."""
        return len(self._placed)

    def device_for(self, reading: Reading) -> Device:
        """The device with its units at the reading's position (or its last known one)."""
        device_id = reading.device_id
        registered = self._registry.get(device_id)
        known = self._placed.get(device_id) or registered
        if reading.lat is None or reading.lon is None:
            if known is None:
                raise DecodeError(
                    f"unknown device {device_id!r}: not in the registry and no lat/lon"
                    " in the payload"
                )
            return known
        if known is not None and (known.lon, known.lat) == (reading.lon, reading.lat):
            return known
        kind = registered.kind if registered is not None else reading.kind
        name = registered.name if registered is not None else device_id
        device = self._place(device_id, kind, name, reading.lon, reading.lat)
        self._remember(device)
        return device

    def points_for(self, reading: Reading) -> list[Point]:
        return to_points(reading, self.device_for(reading))

    def _remember(self, device: Device) -> None:
        self._placed[device.device_id] = device
        self._placed.move_to_end(device.device_id)
        while len(self._placed) > self._max_placed:
            self._placed.popitem(last=False)
