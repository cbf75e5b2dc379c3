"""build_weekly against a real SqliteStore and a SQLite state database, with values worked
out by hand: Đà Nẵng (48) with Hải Vân (20194, a small commune) and Cẩm Lệ (20260, a big
one)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert

from alerts.actions import AlertActions
from alerts.facts import AlertFacts
from alerts.repository import AlertRepository, alert_states, notification_log
from core.db import make_engine
from core.errors import CityOpsError
from core.settings import Settings, load_settings
from core.settings_base import Label
from core.store.sqlite import SqliteStore
from core.types import Point
from layers.levels import Hierarchy
from reports.model import IsoWeek, KpiRow, WeeklyReport
from reports.weekly import UnknownUnit, build_weekly, headline_metric, ranks, status_of
from reports.weeks import week_bounds
from tests.fixtures.signin import TEST_SECRET_ENV

REPO = Path(__file__).resolve().parents[3]
ICT = ZoneInfo("Asia/Ho_Chi_Minh")
HAI_VAN, CAM_LE, DA_NANG, HA_NOI = "20194", "20260", "48", "01"
W47, W48 = IsoWeek(2026, 47), IsoWeek(2026, 48)
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # Monday 30/11 09:00 ICT: W48 is over


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)


@pytest.fixture(scope="module")
def hierarchy(settings: Settings) -> Hierarchy:
    return Hierarchy.from_csv(
        settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
    )


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A November 2026 local (ICT) time, as UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=ICT).astimezone(UTC)


def tags(commune: str, device: str) -> dict[str, str]:
    return {"device": device, "province": DA_NANG, "commune": commune}


def dossiers(
    commune: str, at: datetime, on_time: float, resolved: float, device: str = "gov"
) -> Point:
    return Point(
        "dossiers", tags(commune, device), {"resolved_on_time": on_time, "resolved": resolved}, at
    )


def pm25(commune: str, at: datetime, value: float) -> Point:
    return Point("air", tags(commune, f"aq-{commune}"), {"pm25": value}, at)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    made = SqliteStore(tmp_path / "store.sqlite")
    made.write(
        [
            # W48 (23–29/11): Hải Vân 9 of 10 on time, in two readings from two devices;
            # Cẩm Lệ 50 of 100. The city: 59/110, not the mean of 90 % and 50 % (70 %).
            dossiers(HAI_VAN, local(24, 9), 4, 5, "gov-a"),
            dossiers(HAI_VAN, local(26, 15), 5, 5, "gov-b"),
            dossiers(CAM_LE, local(25, 10), 50, 100),
            # W47 (16–22/11): Hải Vân 7/10, Cẩm Lệ 80/100 → the city 87/110.
            dossiers(HAI_VAN, local(17, 9), 7, 10),
            dossiers(CAM_LE, local(18, 9), 80, 100),
            # pm25 in Hải Vân: Sunday 22/11 23:30 belongs to W47, Monday 23/11 00:10 to W48.
            pm25(HAI_VAN, local(20, 12), 20),
            pm25(HAI_VAN, local(22, 23, 30), 40),
            pm25(HAI_VAN, local(23, 0, 10), 70),
            pm25(HAI_VAN, local(28, 12), 10),
            # Nothing in W46; W45 has one reading.
            pm25(HAI_VAN, local(3, 12), 15),
        ]
    )
    yield made
    made.close()


def kpi(report: WeeklyReport, metric_id: str) -> KpiRow:
    return next(row for row in report.kpis if row.metric_id == metric_id)


def test_city_ratio_is_sum_over_sum(
    store: SqliteStore, settings: Settings, hierarchy: Hierarchy
) -> None:
    report = build_weekly(settings, store, None, hierarchy, DA_NANG, W48, now=NOW)
    row = kpi(report, "dossiers_on_time")
    assert row.is_ratio
    assert row.unit == "%"
    assert row.target == 0.95
    assert row.this_week == pytest.approx(59 / 110)
    assert row.last_week == pytest.approx(87 / 110)
    assert row.change == pytest.approx(59 / 110 - 87 / 110)
    assert row.status == "bad"
    commune = kpi(
        build_weekly(settings, store, None, hierarchy, HAI_VAN, W48, now=NOW), "dossiers_on_time"
    )
    assert commune.this_week == pytest.approx(0.9)
    assert commune.last_week == pytest.approx(0.7)


def test_week_boundaries_in_local_time(
    store: SqliteStore, settings: Settings, hierarchy: Hierarchy
) -> None:
    report = build_weekly(settings, store, None, hierarchy, HAI_VAN, W48, now=NOW)
    row = kpi(report, "pm25")
    assert row.this_week == pytest.approx((70 + 10) / 2)  # Monday 00:10 is in W48
    assert row.last_week == pytest.approx((20 + 40) / 2)  # Sunday 23:30 stayed in W47
    assert report.starts == datetime(2026, 11, 23, tzinfo=ICT)
    assert report.ends == datetime(2026, 11, 30, tzinfo=ICT)


def test_sparkline_has_12_weeks_and_none_for_a_week_without_data(
    store: SqliteStore, settings: Settings, hierarchy: Hierarchy
) -> None:
    row = kpi(build_weekly(settings, store, None, hierarchy, HAI_VAN, W48, now=NOW), "pm25")
    assert next(str(point.week) for point in row.spark) == "2026-W37"
    assert [point.week for point in row.spark][-1] == W48
    values = [point.value for point in row.spark]
    assert values[-4:] == [15.0, None, 30.0, 40.0]  # W45, W46 (empty: None, not 0), W47, W48
    assert values[:8] == [None] * 8


def test_league_ranks_children_with_movement(
    store: SqliteStore, settings: Settings, hierarchy: Hierarchy
) -> None:
    report = build_weekly(settings, store, None, hierarchy, DA_NANG, W48, now=NOW)
    assert report.league_metric == "dossiers_on_time"
    first, second = report.league[:2]
    assert (first.code, first.rank, first.last_rank, first.movement) == (HAI_VAN, 1, 2, 1)
    assert first.value == pytest.approx(0.9)
    assert (second.code, second.rank, second.last_rank, second.movement) == (CAM_LE, 2, 1, -1)
    assert "Hải Vân" in first.name.vi
    # Every commune of the city is listed; those without data unranked, after the ranked.
    assert len(report.league) == len(hierarchy.children(DA_NANG))
    assert all(row.rank is None and row.value is None for row in report.league[2:])
    # A commune has no children: no league.
    assert build_weekly(settings, store, None, hierarchy, HAI_VAN, W48, now=NOW).league == ()


def test_notes_say_which_kpi_has_no_data(
    store: SqliteStore, settings: Settings, hierarchy: Hierarchy
) -> None:
    report = build_weekly(settings, store, None, hierarchy, CAM_LE, W48, now=NOW)
    assert kpi(report, "pm25").this_week is None
    assert kpi(report, "pm25").status == "none"
    assert any("PM2.5" in note for note in report.notes)
    assert not any(row.metric_id in ("water_level", "flood_alarm") for row in report.kpis)


@pytest.mark.parametrize(
    ("value", "target", "better", "expected"),
    [
        (0.95, 0.95, "higher", "good"),
        (0.99, 0.95, "higher", "good"),
        (0.91, 0.95, "higher", "warning"),  # 0.04 below, within 5 % of 0.95 (0.0475)
        (0.90, 0.95, "higher", "bad"),
        (50.0, 50.0, "lower", "good"),
        (52.5, 50.0, "lower", "warning"),
        (52.6, 50.0, "lower", "bad"),
        (None, 0.95, "higher", "none"),
        (0.5, None, "higher", "none"),
    ],
)
def test_status_rule(value: float | None, target: float | None, better: str, expected: str) -> None:
    assert status_of(value, target, better) == expected


def test_ranks_share_places_on_ties() -> None:
    assert ranks({"a": 0.9, "b": 0.5, "c": 0.9, "d": 0.1}, "higher") == {
        "a": 1,
        "c": 1,
        "b": 3,
        "d": 4,
    }
    assert ranks({"a": 10.0, "b": 5.0}, "lower") == {"b": 1, "a": 2}


def test_headline_falls_back_to_the_default_metric(settings: Settings) -> None:
    assert headline_metric(settings) == "dossiers_on_time"
    plain = {key: value for key, value in settings.metrics.items() if value.denominator is None}
    assert headline_metric(settings.model_copy(update={"metrics": plain})) == "pm25"


def test_unknown_unit_and_store_failure(
    store: SqliteStore, settings: Settings, hierarchy: Hierarchy
) -> None:
    with pytest.raises(UnknownUnit, match="'99999'"):
        build_weekly(settings, store, None, hierarchy, "99999", W48, now=NOW)
    store.close()
    with pytest.raises(CityOpsError):
        build_weekly(settings, store, None, hierarchy, HAI_VAN, W48, now=NOW)


# ------------------------------------------------------------------------- alerts


def facts(
    rule: str, unit: str, episode: int, severity: str, fired: datetime, **more: object
) -> str:
    return AlertFacts(
        rule_id=rule,
        unit_code=unit,
        level=str(more.get("level", "commune")),
        episode=episode,
        kind="firing",
        step=0,
        severity=severity,  # type: ignore[arg-type]
        rule_type="threshold",
        metric_id="pm25",
        title=Label(vi=f"Cảnh báo {rule}", en=f"Alert {rule}"),
        metric_label=Label(vi="Bụi mịn PM2.5", en="PM2.5"),
        value=90.0,
        value_text=Label(vi="90", en="90"),
        condition=Label(vi="c", en="c"),
        rule_text=Label(vi="r", en="r"),
        unit_name=Label(vi=unit, en=unit),
        unit_page=str(more.get("page", f"/area/commune/{unit}")),
        since=fired,
        fired_at=fired,
        resolved_at=None,
        evaluated_at=fired,
    ).to_json()


def log(
    engine: Engine, rule: str, unit: str, episode: int, kind: str, at: datetime, text: str | None
) -> None:
    row = {
        "rule_id": rule, "unit_code": unit, "episode": episode, "kind": kind, "status": "routed",
        "reason": "first", "created_at": at, "attempts": 0, "recipients": "[]", "subject": "s",
        "body_text": "b", "headers": "{}", "facts": text,
    }  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(notification_log), row)


def episode(
    engine: Engine, rule: str, unit: str, number: int, severity: str, fired: datetime,
    resolved: datetime | None, **more: object,
) -> None:  # fmt: skip
    log(
        engine,
        rule,
        unit,
        number,
        "firing",
        fired,
        facts(rule, unit, number, severity, fired, **more),
    )
    if resolved is not None:
        log(engine, rule, unit, number, "resolved", resolved, None)


@pytest.fixture
def state_db(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    AlertRepository(engine).create_schema()
    AlertActions(engine).migrate()
    start, end = week_bounds(W48, ICT)
    # In the week, resolved in the week: 3 hours, critical, acknowledged.
    episode(engine, "pm25-bad", HAI_VAN, 1, "critical", local(24, 8), local(24, 11))
    AlertActions(engine).acknowledge("pm25-bad", HAI_VAN, 1, "an")
    # Fired the week before, resolved in this one: 2 days.
    episode(engine, "pm25-bad", CAM_LE, 4, "warning", local(21, 0), local(23, 0))
    # A device's alert in Cẩm Lệ, still open (alert_states), since Friday 27/11 12:00 ICT.
    episode(engine, "air-no-data", "aq-0002", 2, "warning", local(27, 12), None, level="device",
            page=f"/area/commune/{CAM_LE}")  # fmt: skip
    with engine.begin() as connection:
        connection.execute(
            insert(alert_states),
            {"rule_id": "air-no-data", "unit_code": "aq-0002", "state": "firing",
             "since": local(27, 12), "value": None, "last_eval": NOW, "fired_at": local(27, 12),
             "active_at": local(27, 12), "resolved_at": None, "episode": 2, "error": None},
        )  # fmt: skip
    # Not counted: resolved before the week; fired after it; another province.
    episode(engine, "pm25-bad", HAI_VAN, 0, "critical", local(16, 8), local(22, 9))
    episode(engine, "pm25-bad", HAI_VAN, 2, "critical", end + timedelta(hours=1), None)
    episode(engine, "pm25-bad", HA_NOI, 1, "critical", start + timedelta(hours=1), None)
    return engine


def test_alerts_summary_of_the_week(
    store: SqliteStore, settings: Settings, hierarchy: Hierarchy, state_db: Engine
) -> None:
    summary = build_weekly(settings, store, state_db, hierarchy, DA_NANG, W48, now=NOW).alerts
    assert summary.total == 3
    assert summary.by_severity == {"critical": 1, "warning": 2, "info": 0}
    assert summary.unacknowledged == 2
    longest = summary.longest
    assert longest is not None
    # The open device alert: 27/11 12:00 to NOW (30/11 09:00) = 69 hours, longer than 2 days.
    assert longest.minutes == pytest.approx(69 * 60)
    assert longest.title.vi == "Cảnh báo air-no-data"
    assert "Cẩm Lệ" in longest.unit_name.vi
    # Hải Vân only: its one episode of the week.
    own = build_weekly(settings, store, state_db, hierarchy, HAI_VAN, W48, now=NOW).alerts
    assert (own.total, own.unacknowledged, own.by_severity["critical"]) == (1, 0, 1)
    assert own.longest is not None
    assert own.longest.minutes == pytest.approx(180)


def test_no_state_database_means_no_alerts(
    store: SqliteStore, settings: Settings, hierarchy: Hierarchy
) -> None:
    summary = build_weekly(settings, store, None, hierarchy, DA_NANG, W48, now=NOW).alerts
    assert (summary.total, summary.unacknowledged, summary.longest) == (0, 0, None)


def test_an_open_episode_missing_from_the_log_still_counts(
    store: SqliteStore, settings: Settings, hierarchy: Hierarchy, state_db: Engine
) -> None:
    with state_db.begin() as connection:
        connection.execute(
            insert(alert_states),
            {"rule_id": "flood-alarm-1", "unit_code": CAM_LE, "state": "firing",
             "since": local(28, 6), "value": 1.0, "last_eval": NOW, "fired_at": local(28, 6),
             "active_at": local(28, 6), "resolved_at": None, "episode": 7, "error": None},
        )  # fmt: skip
    summary = build_weekly(settings, store, state_db, hierarchy, CAM_LE, W48, now=NOW).alerts
    assert summary.by_severity == {"critical": 0, "warning": 2, "info": 1}
    assert (summary.total, summary.unacknowledged) == (3, 3)


def test_kpis_with_targets_come_first(
    store: SqliteStore, settings: Settings, hierarchy: Hierarchy
) -> None:
    report = build_weekly(settings, store, None, hierarchy, HAI_VAN, W48, now=NOW)
    targeted = [row.target is not None for row in report.kpis]
    assert targeted == sorted(targeted, reverse=True)
    assert {"dossiers_on_time", "pm25", "pm10"} <= {row.metric_id for row in report.kpis}
