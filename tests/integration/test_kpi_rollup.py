"""Ratio roll-ups on a real store: a province's rate is Σ numerators / Σ denominators of its
communes (a big ward weighs more than a small commune), per local day and per ISO week
(Monday 00:00 to Sunday 24:00, Asia/Ho_Chi_Minh). Counters enter through the gov contract,
as the ingest worker stores them; SQLite always, a real influxd 1.x when it is installed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.rules import results_for
from core.ports import Store
from core.settings import AlertRule, InfluxSettings, Settings, load_settings
from core.store import InfluxStore, SqliteStore
from core.types import MetricRef, Point
from ingest.contracts.common import Limits
from ingest.contracts.gov import GovContract
from ingest.enrich import scoped_unit_tags
from ingest.gov_simulate import GovUnit, gov_messages
from ingest.topics import TopicTemplate
from layers.geography import Geography

REPO = Path(__file__).resolve().parents[2]
LOCAL = timedelta(hours=7)  # Asia/Ho_Chi_Minh
WARD, COMMUNE = "20194", "20308"  # Phường Hải Vân (urban), Xã Bà Nà (rural)
ON_TIME, RESOLVED = MetricRef("dossiers", "resolved_on_time"), MetricRef("dossiers", "resolved")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """Local wall-clock time in November 2026 (Monday 16 to Monday 30), as aware UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - LOCAL


NOW = local(30, 9)  # Monday of ISO week 2026-W49


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ={})


@pytest.fixture(scope="module")
def contract(settings: Settings) -> GovContract:
    template = TopicTemplate.parse("gov/{service}/{unit_code}", ("{service}", "{unit_code}"))
    return GovContract(template, Limits(), scoped_unit_tags(Geography.from_settings(settings)))


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("influxdb", marks=pytest.mark.integration),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    adapter: Store
    if request.param == "sqlite":
        adapter = SqliteStore(tmp_path / "timeseries.sqlite")
    else:
        server = request.getfixturevalue("influxd")
        database = request.getfixturevalue("influx_db")
        adapter = InfluxStore(InfluxSettings(url=server.url, database=database, timeout_s=10))
    yield adapter
    adapter.close()


def counters(
    contract: GovContract, code: str, at: datetime, on_time: int, resolved: int
) -> list[Point]:
    body = {"ts": int(at.timestamp() * 1000), "resolved_on_time": on_time, "resolved": resolved}
    return contract.points(f"gov/dossiers/{code}", json.dumps(body).encode(), NOW)


def rate(store: Store, level: str, start: datetime, end: datetime) -> dict[str, float]:
    def sums(metric: MetricRef) -> dict[str, float]:
        rows = store.window_by_unit(metric, level, start=start, end=end, aggregation="sum")
        return {row.code: row.value for row in rows}

    numerators, denominators = sums(ON_TIME), sums(RESOLVED)
    return {code: numerators.get(code, 0.0) / den for code, den in denominators.items()}


def test_province_rate_is_the_sum_over_the_sum_per_local_day_and_iso_week(
    store: Store, contract: GovContract
) -> None:
    store.write(
        [
            # Tuesday 17 Nov: the ward 190/200 (95 %), the commune 5/10 (50 %).
            *counters(contract, WARD, local(17, 9), 100, 105),
            *counters(contract, WARD, local(17, 15), 90, 95),
            *counters(contract, COMMUNE, local(17, 10), 5, 10),
            # Wednesday 18 Nov 00:30 local is still Tuesday 17:30 UTC: Wednesday's.
            *counters(contract, WARD, local(18, 0, 30), 40, 50),
            *counters(contract, COMMUNE, local(18, 14), 9, 10),
            # Sunday 22 Nov 23:30 local: week W47; Monday 23 Nov 00:10 local: week W48.
            *counters(contract, COMMUNE, local(22, 23, 30), 1, 4),
            *counters(contract, WARD, local(23, 0, 10), 30, 30),
            *counters(contract, COMMUNE, local(23, 8), 2, 2),
        ]
    )
    tuesday = rate(store, "province", local(17, 0), local(18, 0))
    assert tuesday == {"48": pytest.approx(195 / 210)}  # 92.9 %, not (95 + 50) / 2 = 72.5 %
    assert rate(store, "commune", local(17, 0), local(18, 0)) == {
        WARD: pytest.approx(190 / 200),
        COMMUNE: pytest.approx(5 / 10),
    }
    assert rate(store, "province", local(18, 0), local(19, 0)) == {"48": pytest.approx(49 / 60)}

    week_47 = rate(store, "province", local(16, 0), local(23, 0))
    assert week_47 == {"48": pytest.approx((190 + 5 + 40 + 9 + 1) / (200 + 10 + 50 + 10 + 4))}
    assert rate(store, "commune", local(16, 0), local(23, 0))[COMMUNE] == pytest.approx(15 / 24)
    week_48 = rate(store, "province", local(23, 0), local(30, 0))
    assert week_48 == {"48": pytest.approx(32 / 32)}


def test_the_kpi_rule_judges_the_province_on_the_sums(
    store: Store, contract: GovContract, settings: Settings
) -> None:
    # This week (from Monday 30 Nov 00:00 local): the ward 96/100, the commune 1/10.
    store.write(
        [
            *counters(contract, WARD, local(30, 8), 96, 100),
            *counters(contract, COMMUNE, local(30, 8, 30), 1, 10),
            *counters(contract, COMMUNE, local(29, 16), 0, 50),  # last week: not counted
        ]
    )
    rule = AlertRule.model_validate(
        {
            "id": "province-on-time",
            "type": "kpi",
            "metric": "dossiers_on_time",
            "level": "province",
            "period": "week",
            "min_count": 10,
        }
    )
    results = results_for(
        rule,
        store=store,
        metric=settings.metrics["dossiers_on_time"],
        previous={},
        now=NOW,
        known=lambda _kind, _level: set(),  # kpi rules do not read the registry
        timezone=settings.site.timezone,
    )
    assert results["48"].value == pytest.approx(97 / 110)  # 88.2 %: under the 95 % target
    assert results["48"].kind == "breach"


def test_simulated_counters_roll_up_to_the_province_exactly(
    store: Store, contract: GovContract
) -> None:
    units = (GovUnit(WARD, urban=True), GovUnit(COMMUNE, urban=False))
    sent: dict[str, dict[str, float]] = {}
    points: list[Point] = []
    at = local(17, 0)
    while at < local(19, 0):  # two working days in hourly messages, as the demo's history
        for topic, payload in gov_messages(units, at, at + timedelta(hours=1), seed=2025):
            points.extend(contract.points(topic, json.dumps(payload).encode(), NOW))
            totals = sent.setdefault(topic.split("/")[1], {})
            for key, value in payload.items():
                if key != "ts":
                    totals[key] = totals.get(key, 0) + value
        at += timedelta(hours=1)
    store.write(points)
    dossiers = sent["dossiers"]
    assert dossiers["resolved"] > 20
    assert rate(store, "province", local(17, 0), local(19, 0)) == {
        "48": pytest.approx(dossiers["resolved_on_time"] / dossiers["resolved"])
    }
    received = store.window_by_unit(
        MetricRef("feedback", "received"),
        "province",
        start=local(17, 0),
        end=local(19, 0),
        aggregation="sum",
    )
    assert [(row.code, row.value, row.devices) for row in received] == [
        ("48", sent["feedback"]["received"], 2)  # each commune counts as one source
    ]
