"""Builds the alert engine from the settings: used by ``cityops alerts`` and the demo."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine

from alerts.email import SmtpNotifier
from alerts.links import AckSigner
from alerts.places import Places
from alerts.roster import Roster
from alerts.service import AlertService
from alerts.silencing import Silencing
from core.ports import Clock, Notifier, Store
from core.secrets import load_secret
from core.settings import Settings
from layers.geography import Geography
from layers.registry import Device, read_registry


def build_alert_service(
    settings: Settings,
    store: Store,
    engine: Engine,
    geography: Geography,
    *,
    devices: Iterable[Device] | None = None,
    notifier: Notifier | None = None,
    clock: Clock | None = None,
    holder: str | None = None,
) -> AlertService:
    """The engine with its roster (config errors stop here, naming the key), the device
    registry (for device rules and no-data rules), silences and signed acknowledge links
    (the dashboard's key, so the dashboard can check them)."""
    hierarchy = geography.hierarchy
    if devices is None:
        path = settings.path(settings.devices.registry)
        devices = read_registry(path, geography).values() if path.exists() else ()
    places = Places(hierarchy, {device.device_id: device for device in devices})
    roster = Roster.from_settings(settings, known_unit=lambda code: hierarchy.get(code) is not None)
    return AlertService(
        settings,
        store,
        engine,
        notifier if notifier is not None else SmtpNotifier(settings.smtp),
        places=places,
        roster=roster,
        signer=AckSigner(load_secret(settings)),
        clock=clock,
        holder=holder,
        silencing=Silencing(engine, hierarchy, clock),
    )
