"""Builds the alert engine from the settings: used by ``cityops alerts`` and the demo."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import Engine

from alerts.derive import AqiDeriver
from alerts.email import SmtpNotifier
from alerts.links import AckSigner
from alerts.places import Places
from alerts.roster import Roster
from alerts.service import AlertService
from alerts.silencing import Silencing
from core.clock import SystemClock
from core.ports import Clock, Notifier, Store
from core.secrets import load_secret
from core.settings import Settings
from layers.geography import Geography
from layers.registry import Device, read_registry
from reports.schedule import WeeklyMailer

REPORT_EVERY_S = 60.0  # the Monday report is checked (and retried) once a minute, not each round


def at_most_every(seconds: float, job: Callable[[datetime], int]) -> Callable[[datetime], int]:
    """``job`` run when ``seconds`` have passed since its last run, else skipped (0)."""
    last: list[datetime] = []

    def run(now: datetime) -> int:
        if last and (now - last[0]).total_seconds() < seconds:
            return 0
        last[:] = [now]
        return job(now)

    return run


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
    registry (for device rules and no-data rules), silences, signed acknowledge links
    (the dashboard's key, so the dashboard can check them), and the periodic jobs of the
    active evaluator: VN_AQI per unit (alerts/derive.py) and the leaders' Monday report
    (reports/schedule.py)."""
    hierarchy = geography.hierarchy
    if devices is None:
        path = settings.path(settings.devices.registry)
        devices = read_registry(path, geography).values() if path.exists() else ()
    places = Places(hierarchy, {device.device_id: device for device in devices})
    roster = Roster.from_settings(settings, known_unit=lambda code: hierarchy.get(code) is not None)
    jobs: list[tuple[str, Callable[[datetime], int]]] = []
    if {"pm25", "pm10"} & set(settings.metrics):
        jobs.append(("vn_aqi", AqiDeriver(settings, store, hierarchy, clock).run))
    sender = notifier if notifier is not None else SmtpNotifier(settings.smtp)
    mailer = WeeklyMailer(settings, store, engine, hierarchy, sender, clock or SystemClock())
    jobs.append(("weekly_report", at_most_every(REPORT_EVERY_S, mailer.run)))
    return AlertService(
        settings,
        store,
        engine,
        sender,
        places=places,
        roster=roster,
        signer=AckSigner(load_secret(settings)),
        clock=clock,
        holder=holder,
        silencing=Silencing(engine, hierarchy, clock),
        jobs=jobs,
    )
