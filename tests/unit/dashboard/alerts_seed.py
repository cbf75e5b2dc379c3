"""Shared setup of the alerts console tests: a state database on a SQLite file with alert
states and notification log rows written as the alert engine writes them, the shipped
configuration (rules pm25-bad and flood-alarm-3) and geography (Đà Nẵng: 48, with the
communes 20194 Hải Vân and 20260 Cẩm Lệ), and crafted users' access."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from alerts.repository import alert_states, notification_log
from core.db import make_engine
from core.settings import Settings
from dashboard.access import Access
from dashboard.alerts_data import AlertSource
from layers.levels import Hierarchy
from layers.registry import Device
from tests.conftest import FakeClock

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội time
HAI_VAN, CAM_LE, DA_NANG = "20194", "20260", "48"

DEVICES = [
    Device("aq-0001", "air", "Trạm Hải Vân 1", 108.1, 16.1, HAI_VAN, {}),
    Device("aq-0002", "air", "Trạm Cẩm Lệ 1", 108.2, 16.0, CAM_LE, {}),
]


def state_db(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    return engine


def source(
    engine: Engine, settings: Settings, hierarchy: Hierarchy, clock: FakeClock
) -> AlertSource:
    made = AlertSource(engine, settings, hierarchy, clock, TZ, devices=lambda: DEVICES)
    made.prepare()
    return made


def add_state(
    engine: Engine,
    rule_id: str,
    unit_code: str,
    state: str,
    *,
    since: datetime = NOW,
    value: float | None = 92.4,
    fired_at: datetime | None = None,
    episode: int = 0,
    error: str | None = None,
) -> None:
    row: dict[str, Any] = {
        "rule_id": rule_id,
        "unit_code": unit_code,
        "state": state,
        "since": since,
        "value": value,
        "last_eval": NOW,
        "fired_at": fired_at,
        "active_at": fired_at,
        "resolved_at": None,
        "episode": episode,
        "error": error,
    }
    with engine.begin() as connection:
        connection.execute(insert(alert_states), row)


def add_log(
    engine: Engine,
    rule_id: str,
    unit_code: str,
    episode: int,
    kind: str,
    at: datetime,
    status: str = "sent",
) -> None:
    row: dict[str, Any] = {
        "rule_id": rule_id,
        "unit_code": unit_code,
        "episode": episode,
        "kind": kind,
        "status": status,
        "reason": "first" if kind == "firing" else "resolved",
        "created_at": at,
        "attempts": 1,
        "recipients": "[]",
        "subject": "s",
        "body_text": "b",
        "headers": "{}",
    }
    with engine.begin() as connection:
        connection.execute(insert(notification_log), row)


def officer(hierarchy: Hierarchy, unit: str, role: str = "operator") -> Access:
    return Access(hierarchy, [unit], role=role, username=f"{role}-{unit}")


def admin(hierarchy: Hierarchy) -> Access:
    return Access(hierarchy, [], everything=True, role="admin", username="root")
