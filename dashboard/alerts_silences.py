"""Silences on the alerts console: which ones concern the user's units, what the user may
silence, and silencing or cancelling within their access (rules: admins only). No Dash."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

import pandas as pd

from alerts.actions import InvalidAction, NoSuchSilence, Silence
from dashboard.access import Access
from dashboard.alerts_data import (
    AlertSource,
    NotAllowed,
    check_unit,
    role_refused,
    times,
    unit_choices,
)
from dashboard.alerts_delivery import sees_anything

SILENCE_COLUMNS: Final = [
    "id",
    "kind",
    "target",
    "target_name",
    "reason",
    "author",
    "starts_at",
    "ends_at",
    "can_cancel",
]


def _silence_unit(source: AlertSource, silence: Silence, devices: Mapping[str, str | None]) -> str:
    """The unit a silence is about ("" for a rule, which is everywhere)."""
    if silence.kind == "device":
        return devices.get(silence.target) or ""
    return silence.target if silence.kind == "unit" else ""


def _sees_silence(access: Access, silence: Silence, unit: str) -> bool:
    if access.everything:
        return True
    if silence.kind == "rule":
        return sees_anything(access)
    # A silence of the user's province mutes their commune too: they see it (not cancel it).
    return bool(unit) and access.reaches(unit)


def _manages_silence(access: Access, silence: Silence, unit: str) -> bool:
    if not access.can_act:
        return False
    if silence.kind == "rule":
        return access.everything
    return bool(unit) and access.can_see(unit)


def silences_frame(source: AlertSource, access: Access, lang: str = "vi") -> pd.DataFrame:
    """The silences in force that concern the user's units, ending soonest first, and
    whether the user may cancel each."""
    devices = source.device_units()
    names = {device.device_id: device.name for device in source.devices()}
    records = []
    for silence in source.actions.active_silences(source.clock.now()):
        unit = _silence_unit(source, silence, devices)
        if not _sees_silence(access, silence, unit):
            continue
        if silence.kind == "unit":
            name = source.unit_name(silence.target, lang)
        elif silence.kind == "device":
            name = names.get(silence.target, silence.target)
        else:
            name = source.title(silence.target, lang)
        records.append(
            {
                "id": silence.id,
                "kind": silence.kind,
                "target": silence.target,
                "target_name": name,
                "reason": silence.reason,
                "author": silence.author,
                "starts_at": silence.starts_at,
                "ends_at": silence.ends_at,
                "can_cancel": _manages_silence(access, silence, unit),
            }
        )
    frame = pd.DataFrame(records, columns=SILENCE_COLUMNS)
    frame["can_cancel"] = frame["can_cancel"].astype(bool)
    return times(frame, "starts_at", "ends_at")


def silence_targets(
    source: AlertSource, access: Access, lang: str = "vi"
) -> dict[str, list[tuple[str, str]]]:
    """What the user may silence, as (value, label) per kind: their units (highest first)
    and everything inside them (an admin: the deployment's scope), the devices in those
    units, and every rule for an admin."""
    if not access.can_act:
        return {"unit": [], "device": [], "rule": []}
    devices = [
        (device.device_id, f"{device.name} ({device.device_id})")
        for device in source.devices()
        if device.unit_code is not None and access.can_see(device.unit_code)
    ]
    rules = [(rule.id, source.title(rule.id, lang)) for rule in source.rules.values()]
    return {
        "unit": unit_choices(source, access, lang),
        "device": sorted(devices),
        "rule": rules if access.everything else [],
    }


def silence(
    source: AlertSource, access: Access, kind: str, target: str, until: datetime, reason: str
) -> Silence:
    """Silence a unit (with what is inside it) or a device of the user's units until
    ``until``; a rule everywhere (admins only)."""
    if not access.can_act:
        raise role_refused()
    if kind == "unit":
        if source.hierarchy.get(target) is None and access.everything:
            raise InvalidAction(
                f"không có đơn vị hành chính mã {target}",
                f"there is no administrative unit with code {target}",
            )
        check_unit(access, target, "đơn vị", "unit")
    elif kind == "device":
        devices = source.device_units()
        if target not in devices and access.everything:
            raise InvalidAction(f"không có thiết bị {target}", f"there is no device {target}")
        check_unit(access, devices.get(target) or "", "thiết bị", "device")
    elif kind == "rule":
        if not access.everything:
            raise NotAllowed(
                "chỉ quản trị viên được tạm tắt một quy tắc ở mọi nơi",
                "only an administrator may silence a rule everywhere",
            )
        if target not in source.rules:
            raise InvalidAction(f"không có quy tắc {target}", f"there is no rule {target}")
    return source.actions.silence(kind, target, until, reason, access.username)


def cancel_silence(source: AlertSource, access: Access, silence_id: int) -> Silence:
    """End a silence now. One the user cannot see answers like one that does not exist."""
    if not access.can_act:
        raise role_refused()
    found = source.actions.get_silence(silence_id)
    unit = _silence_unit(source, found, source.device_units()) if found else ""
    if found is None or not _sees_silence(access, found, unit):
        raise NoSuchSilence(
            f"không có lệnh tạm tắt số {silence_id}", f"there is no silence {silence_id}"
        )
    if not _manages_silence(access, found, unit):
        raise NotAllowed(
            "lệnh tạm tắt này thuộc đơn vị cấp trên: bạn chỉ được xem",
            "this silence belongs to a unit above yours: you may view it only",
        )
    return source.actions.cancel_silence(silence_id, access.username)
