"""Builds the alert engine from the settings: used by ``cityops alerts`` and the demo."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import Engine

from alerts.derive import AqiDeriver
from alerts.email import SmtpNotifier
from alerts.links import AckSigner
from alerts.metrics import AlertsExporter, make_alerts_exporter
from alerts.places import Places
from alerts.roster import Roster
from alerts.service import AlertService
from alerts.silencing import Silencing
from core.clock import SystemClock
from core.ports import Clock, Notifier, Store
from core.secrets import load_secret
from core.settings import Settings
from core.store.downsample import RetainingStore, retention_job
from layers.geography import Geography
from layers.registry import Device, read_registry
from reports.schedule import WeeklyMailer

REPORT_EVERY_S = 60.0  # the Monday report is checked (and retried) once a minute, not each round
RETENTION_EVERY_S = 300.0  # roll-ups at most 5 min behind the hour (design 017)


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
    active evaluator: VN_AQI per unit (alerts/derive.py), the leaders' Monday report
    (reports/schedule.py) and, with store.retention, roll-ups and pruning (design 017)."""
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
    if settings.store.retention is not None and isinstance(store, RetainingStore):
        jobs.append(("retention", at_most_every(RETENTION_EVERY_S, retention_job(store))))
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


def build_alerts_exporter(
    settings: Settings, service: AlertService, engine: Engine, clock: Clock | None = None
) -> AlertsExporter | None:
    """The engine's /metrics and /health server (not started); None when
    alerts.metrics_port is null."""
    return make_alerts_exporter(
        settings, service.metrics, engine, clock or SystemClock(), holder=service.holder
    )
