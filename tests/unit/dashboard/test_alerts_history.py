"""The alert history: episodes built from the notification log and the open states,
filtered by unit (with what is inside it), severity, rule, state and local days, within
the user's access."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine

from alerts.actions import InvalidAction
from core.settings import Settings
from dashboard.alerts_data import AlertSource
from dashboard.alerts_history import HistoryFilter, alert_history
from layers.geography import Geography
from layers.levels import Hierarchy
from tests.conftest import FakeClock
from tests.unit.dashboard.alerts_seed import (
    CAM_LE,
    DA_NANG,
    HAI_VAN,
    NOW,
    add_log,
    add_state,
    admin,
    officer,
    source,
    state_db,
)

# 00:30 on 1 November in Hà Nội time is still 31 October in UTC.
LOCAL_MIDNIGHT_PAST = datetime(2026, 10, 31, 17, 30, tzinfo=UTC)


@pytest.fixture
def hierarchy(geography: Geography) -> Hierarchy:
    return geography.hierarchy


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = state_db(tmp_path)
    yield built
    built.dispose()


@pytest.fixture
def alerts(engine: Engine, settings: Settings, hierarchy: Hierarchy) -> AlertSource:
    made = source(engine, settings, hierarchy, FakeClock(NOW))
    # Hải Vân, PM2.5: episode 1 on 30 Oct (resolved after 2 h), episode 2 open since
    # 00:30 local on 1 Nov.
    day30 = datetime(2026, 10, 30, 3, 0, tzinfo=UTC)
    add_log(engine, "pm25-bad", HAI_VAN, 1, "firing", day30)
    add_log(engine, "pm25-bad", HAI_VAN, 1, "resolved", day30 + timedelta(hours=2))
    add_log(engine, "pm25-bad", HAI_VAN, 2, "firing", LOCAL_MIDNIGHT_PAST, status="pending")
    add_state(engine, "pm25-bad", HAI_VAN, "firing", fired_at=LOCAL_MIDNIGHT_PAST, episode=2)
    # Cẩm Lệ, flood: fired on 29 Oct, resolved on 1 Nov (overlaps every day between).
    add_log(engine, "flood-alarm-3", CAM_LE, 1, "firing", datetime(2026, 10, 29, 5, tzinfo=UTC))
    add_log(engine, "flood-alarm-3", CAM_LE, 1, "resolved", datetime(2026, 11, 1, 5, tzinfo=UTC))
    # An open episode whose log row is missing: the state still tells it.
    add_state(
        engine, "flood-alarm-3", "20197", "firing", fired_at=NOW - timedelta(hours=1), episode=3
    )
    # A rule taken out of the configuration keeps its history.
    add_log(engine, "old-rule", CAM_LE, 1, "firing", datetime(2026, 10, 20, tzinfo=UTC))
    return made


def episodes(frame: pd.DataFrame) -> list[tuple[str, str, int]]:
    return list(zip(frame["rule_id"], frame["unit_code"], frame["episode"], strict=True))


def test_history_is_newest_first_with_times_and_states(
    alerts: AlertSource, hierarchy: Hierarchy
) -> None:
    frame = alert_history(alerts, admin(hierarchy), lang="en")
    assert episodes(frame) == [
        ("flood-alarm-3", "20197", 3),
        ("pm25-bad", HAI_VAN, 2),
        ("pm25-bad", HAI_VAN, 1),
        ("flood-alarm-3", CAM_LE, 1),
        ("old-rule", CAM_LE, 1),
    ]
    rows = frame.set_index(["rule_id", "unit_code", "episode"])
    first = rows.loc[("pm25-bad", HAI_VAN, 1)]
    assert first["status"] == "resolved"
    assert first["duration_s"] == 7200
    assert first["email_status"] == "sent"
    assert first["unit_name"] == "Hai Van Ward, Da Nang City"
    assert first["title"] == "PM2.5 at Bad level"
    open_one = rows.loc[("pm25-bad", HAI_VAN, 2)]
    assert open_one["status"] == "open"
    assert pd.isna(open_one["resolved_at"])
    assert open_one["duration_s"] == (NOW - LOCAL_MIDNIGHT_PAST).total_seconds()
    assert open_one["email_status"] == "pending"
    from_state = rows.loc[("flood-alarm-3", "20197", 3)]
    assert from_state["status"] == "open"
    assert from_state["email_status"] == "none"  # nobody e-mailed: no event at all
    old = rows.loc[("old-rule", CAM_LE, 1)]
    assert (old["title"], old["status"]) == ("old-rule", "ended")  # no longer configured
    assert pd.isna(old["duration_s"])
    assert pd.isna(old["severity"])
    assert isinstance(frame["fired_at"].dtype, pd.DatetimeTZDtype)


def test_history_within_access(alerts: AlertSource, hierarchy: Hierarchy) -> None:
    hai_van = officer(hierarchy, HAI_VAN, "viewer")
    assert episodes(alert_history(alerts, hai_van)) == [
        ("pm25-bad", HAI_VAN, 2),
        ("pm25-bad", HAI_VAN, 1),
    ]
    # Asking for another commune, or for the whole city, shows nothing more.
    assert alert_history(alerts, hai_van, HistoryFilter(unit=CAM_LE)).empty
    assert len(alert_history(alerts, hai_van, HistoryFilter(unit=DA_NANG))) == 2
    assert alert_history(alerts, officer(hierarchy, "01")).empty


def test_history_filters(alerts: AlertSource, hierarchy: Hierarchy) -> None:
    root = admin(hierarchy)

    def shown(**filters: object) -> list[tuple[str, str, int]]:
        return episodes(alert_history(alerts, root, HistoryFilter(**filters)))  # type: ignore[arg-type]

    assert shown(unit=CAM_LE) == [("flood-alarm-3", CAM_LE, 1), ("old-rule", CAM_LE, 1)]
    assert len(shown(unit=DA_NANG)) == 5
    assert shown(rule="pm25-bad", state="resolved") == [("pm25-bad", HAI_VAN, 1)]
    assert shown(state="open") == [("flood-alarm-3", "20197", 3), ("pm25-bad", HAI_VAN, 2)]
    # Severity: only configured rules have one.
    assert ("old-rule", CAM_LE, 1) not in shown(severity="critical")
    assert shown(severity="info") == []
    # Local days: 00:30 on 1 Nov belongs to 1 Nov, not to 31 Oct.
    day = date(2026, 10, 31)
    assert ("pm25-bad", HAI_VAN, 2) not in shown(date_from=day, date_to=day)
    assert shown(date_from=date(2026, 11, 1), date_to=date(2026, 11, 1)) == [
        ("pm25-bad", HAI_VAN, 2),
        ("flood-alarm-3", CAM_LE, 1),  # fired on 29 Oct, still going on 1 Nov
    ]
    assert shown(date_from=day, date_to=day) == [("flood-alarm-3", CAM_LE, 1)]
    assert shown(date_to=date(2026, 10, 25)) == [("old-rule", CAM_LE, 1)]
    assert len(alert_history(alerts, root, limit=2)) == 2


def test_filter_from_args_checks_values() -> None:
    parsed = HistoryFilter.from_args(
        {"unit": " 48 ", "severity": "critical", "state": "open", "from": "2026-11-01", "to": ""}
    )
    assert parsed == HistoryFilter(
        unit="48", severity="critical", state="open", date_from=date(2026, 11, 1)
    )
    assert parsed.args() == {
        "unit": "48",
        "severity": "critical",
        "state": "open",
        "from": "2026-11-01",
    }
    assert HistoryFilter.from_args(parsed.args()) == parsed
    with pytest.raises(InvalidAction, match="severity must be one of critical, warning, info"):
        HistoryFilter.from_args({"severity": "loud"})
    with pytest.raises(InvalidAction, match="state must be open or resolved"):
        HistoryFilter.from_args({"state": "closed"})
    with pytest.raises(InvalidAction, match="first day must be a date as YYYY-MM-DD: '1/11'"):
        HistoryFilter.from_args({"from": "1/11"})
    with pytest.raises(InvalidAction, match="must not be after the last") as raised:
        HistoryFilter.from_args({"from": "2026-11-02", "to": "2026-11-01"})
    assert raised.value.in_lang("vi") == "ngày bắt đầu phải trước ngày kết thúc"
