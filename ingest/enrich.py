"""Enrich a Reading with its device's units: the unit codes become tags of the stored Point.

A device is found in the registry by id. A payload with ``lat``/``lon`` places the device
at that position (a device that moves, or one not yet registered) by point-in-polygon;
placements are cached so a device that keeps sending the same position is located once.
A device that cannot be placed (not registered and no position, or outside every unit)
is stored under the reserved unit ``UNASSIGNED`` at every level and reported to the
unassigned-devices registry, so an operator can register it (``cityops devices
unassigned``). :meth:`Enricher.points_for_message` runs the message contracts first
(decode + enrich, one call per message from the pipeline).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from core.errors import DecodeError
from core.ports import UnassignedDevices
from core.settings import IngestSettings
from core.types import UNASSIGNED, Point, Reading
from ingest.contracts.gov import GovContract, UnitTags
from ingest.contracts.router import Router, build_contracts
from ingest.unassigned import NO_POSITION, OUTSIDE_MAP
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
            f" the topic says {reading.kind!r}",
            "kind_mismatch",
        )
    if not device.tags:
        raise DecodeError(
            f"device {device.device_id!r} at lon {device.lon:.5f}, lat {device.lat:.5f}"
            " lies outside every administrative unit of the map",
            "invalid",
        )
    tags = {"device": device.device_id, **device.tags}
    return [Point(measurement=reading.kind, tags=tags, fields=dict(reading.values), ts=reading.ts)]


def scoped_unit_tags(geography: Geography) -> UnitTags:
    """unit code -> level tags, None for a code that is not a unit inside the scope."""
    hierarchy, scope = geography.hierarchy, geography.scope

    def unit_tags(code: str) -> Mapping[str, str] | None:
        if hierarchy.get(code) is None:
            return None
        if scope is not None and not hierarchy.is_within(code, scope):
            return None
        return hierarchy.level_tags(code)

    return unit_tags


class Enricher:
    """Finds or places the device of each reading, then builds its points.

    Used from the ingest worker's single thread only (no locking)."""

    def __init__(
        self,
        devices: Mapping[str, Device],
        place: PlaceDevice,
        *,
        max_placed: int = MAX_PLACED,
        levels: Sequence[str] = ("province", "commune"),
        unit_tags: UnitTags | None = None,
        unassigned: UnassignedDevices | None = None,
    ) -> None:
        self._registry = devices
        self._place = place
        self._placed: OrderedDict[str, Device] = OrderedDict()
        self._max_placed = max_placed
        self._unassigned_tags = {level: UNASSIGNED for level in levels}
        self._unit_tags = unit_tags
        self._unassigned = unassigned
        self._router: Router | None = None
        self._router_for: IngestSettings | None = None

    @classmethod
    def for_geography(
        cls,
        devices: Mapping[str, Device],
        geography: Geography,
        *,
        unassigned: UnassignedDevices | None = None,
    ) -> Enricher:
        def place(device_id: str, kind: str, name: str, lon: float, lat: float) -> Device:
            return place_device(device_id, kind, name, lon, lat, geography)

        return cls(
            devices,
            place,
            levels=geography.hierarchy.levels,
            unit_tags=scoped_unit_tags(geography),
            unassigned=unassigned,
        )

    @property
    def placed(self) -> int:
        """How many devices are currently placed from payload positions."""
        return len(self._placed)

    def router(self, ingest: IngestSettings) -> Router:
        """The contracts of ``ingest`` (built once per settings object)."""
        if self._router is None or self._router_for is not ingest:
            self._router = Router(build_contracts(ingest, self._unit_tags))
            self._router_for = ingest
        return self._router

    def points_for_message(
        self, topic: str, payload: bytes, now: datetime, ingest: IngestSettings
    ) -> list[Point]:
        """Decode with the topic's contract, then enrich: the points of one message.
        DecodeError (with its code) when the message cannot be ingested."""
        contract = self.router(ingest).contract_for(topic)
        if isinstance(contract, GovContract):
            return contract.points(topic, payload, now)
        readings = contract.decode(topic, payload, now)
        if len(readings) == 1:
            return self.points_for(readings[0], now)
        return [point for reading in readings for point in self.points_for(reading, now)]

    def device_for(self, reading: Reading, now: datetime | None = None) -> Device:
        """The device with its units at the reading's position (or its last known one);
        an unassigned device when it cannot be placed."""
        device_id = reading.device_id
        registered = self._registry.get(device_id)
        known = self._placed.get(device_id) or registered
        if reading.lat is None or reading.lon is None:
            if known is None:
                return self._unassigned_device(reading, NO_POSITION, now)
            device = known
        elif known is not None and (known.lon, known.lat) == (reading.lon, reading.lat):
            device = known
        else:
            kind = registered.kind if registered is not None else reading.kind
            name = registered.name if registered is not None else device_id
            device = self._place(device_id, kind, name, reading.lon, reading.lat)
            self._remember(device)
        if device.unit_code is None:
            return self._unassigned_device(reading, OUTSIDE_MAP, now, device)
        return device

    def points_for(self, reading: Reading, now: datetime | None = None) -> list[Point]:
        return to_points(reading, self.device_for(reading, now))

    def _unassigned_device(
        self, reading: Reading, why: str, now: datetime | None, placed: Device | None = None
    ) -> Device:
        if self._unassigned is not None:
            self._unassigned.seen(reading.device_id, reading.kind, why, now or reading.ts)
        if placed is not None:
            return Device(
                placed.device_id,
                placed.kind,
                placed.name,
                placed.lon,
                placed.lat,
                None,
                self._unassigned_tags,
            )
        device_id = reading.device_id
        return Device(
            device_id, reading.kind, device_id, math.nan, math.nan, None, self._unassigned_tags
        )

    def _remember(self, device: Device) -> None:
        self._placed[device.device_id] = device
        self._placed.move_to_end(device.device_id)
        while len(self._placed) > self._max_placed:
            self._placed.popitem(last=False)
