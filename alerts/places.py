"""Where an alert is: the administrative unit (or device) a rule judged, named for people.

A rule's ``level`` is a hierarchy level ("province", "commune") or "device"; the alert
engine needs, for either, the full name with its parents, the codes above it (for the
duty chain), the unit page to link to, and which codes are expected to report (for
no-data rules). Devices come from the registry (layers/registry.py), placed in their
units at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from core.settings_base import Label
from layers.levels import Hierarchy
from layers.registry import Device

DEVICE_LEVEL = "device"


@dataclass(frozen=True)
class Places:
    hierarchy: Hierarchy
    devices: Mapping[str, Device] = field(default_factory=dict)

    def unit_of(self, code: str, level: str) -> str | None:
        """The administrative unit a judged code lies in: itself, or a device's unit."""
        if level == DEVICE_LEVEL:
            device = self.devices.get(code)
            return device.unit_code if device is not None else None
        return code if self.hierarchy.get(code) is not None else None

    def parents(self, code: str, level: str) -> tuple[str, ...]:
        """Codes above the unit the code lies in, nearest first (a device: its unit first)."""
        unit = self.unit_of(code, level)
        if unit is None:
            return ()
        chain = [found.code for found in self.hierarchy.ancestors(unit)][::-1]
        return tuple(chain if level == DEVICE_LEVEL else chain[1:])

    def name(self, code: str, level: str) -> Label:
        """ "Phường Hải Vân, Thành phố Đà Nẵng"; a device: "Thiết bị aq-0007 (Trạm Hải Vân),
        Phường Hải Vân, Thành phố Đà Nẵng". An unknown code is named by its code."""
        if level == DEVICE_LEVEL:
            device = self.devices.get(code)
            shown = code if device is None or not device.name else f"{code} ({device.name})"
            where = (
                self.name(device.unit_code, "unit")
                if device is not None and device.unit_code
                else None
            )
            return Label(
                vi=f"Thiết bị {shown}" + (f", {where.vi}" if where else ""),
                en=f"Device {shown}" + (f", {where.en}" if where else ""),
            )
        if self.hierarchy.get(code) is None:
            return Label(vi=f"Mã {code}", en=f"Code {code}")
        return Label(
            vi=self.hierarchy.full_name(code, "vi"), en=self.hierarchy.full_name(code, "en")
        )

    def unit_page(self, code: str, level: str, metric: str | None = None) -> str:
        """The path of the unit page to open: ``/area/<level>/<code>`` (a device: its unit's
        page); the map when the unit is unknown."""
        unit = self.unit_of(code, level)
        query = f"?{urlencode({'metric': metric})}" if metric else ""
        if unit is None:
            return f"/{query}"
        return f"/area/{self.hierarchy.unit(unit).level}/{unit}{query}"

    def known(self, kind: str, level: str) -> set[str]:
        """Codes expected to report a kind of data: registered devices of that kind, or the
        units at ``level`` that hold one."""
        devices = [device for device in self.devices.values() if device.kind == kind]
        if level == DEVICE_LEVEL:
            return {device.device_id for device in devices}
        return {device.tags[level] for device in devices if level in device.tags}
