"""The public-service counter model (ingest/gov_simulate.py) on the shipped Đà Nẵng units:
office hours only, volumes by unit size, determinism, and payloads the gov contract takes."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.settings import Settings, load_settings, parse_settings
from core.types import Point
from ingest.contracts.common import Limits
from ingest.contracts.gov import GovContract
from ingest.enrich import scoped_unit_tags
from ingest.gov_simulate import (
    SERVICES,
    GovSchedule,
    GovUnit,
    daily_volume,
    gov_counters,
    gov_messages,
    gov_topic,
    gov_topic_template,
    gov_units,
    working_periods,
)
from ingest.topics import TopicTemplate
from layers.geography import Geography

REPO = Path(__file__).resolve().parents[3]
SEED = 2025
LOCAL = timedelta(hours=7)  # Asia/Ho_Chi_Minh, no daylight saving


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A local wall-clock time in the week of Monday 2026-03-02, as aware UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC) - LOCAL


MONDAY, SATURDAY, SUNDAY = 2, 7, 8


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ={})


@pytest.fixture(scope="module")
def units(settings: Settings) -> tuple[GovUnit, ...]:
    return gov_units(settings)


@pytest.fixture(scope="module")
def contract(settings: Settings) -> GovContract:
    template = TopicTemplate.parse("gov/{service}/{unit_code}", ("{service}", "{unit_code}"))
    return GovContract(template, Limits(), scoped_unit_tags(Geography.from_settings(settings)))


def day_totals(unit: GovUnit, service: str, day: int) -> dict[str, int]:
    """A working day's counters summed over its hourly messages."""
    totals: dict[str, int] = {}
    for hour in range(24):
        counters = gov_counters(
            service,
            unit,
            local(day, hour),
            local(day, hour) + timedelta(hours=1),
            seed=SEED,
        )
        for key, value in (counters or {}).items():
            totals[key] = totals.get(key, 0) + value
    return totals


def test_the_units_are_the_scoped_communes_and_the_shipped_config_has_the_gov_contract(
    settings: Settings, units: tuple[GovUnit, ...]
) -> None:
    codes = [unit.code for unit in units]
    assert len(codes) == 94  # the Đà Nẵng communes of the 2025 hierarchy
    assert codes == sorted(codes)
    assert "20194" in codes  # Phường Hải Vân
    assert {unit.code for unit in units if unit.urban} > {"20194"}
    assert any(not unit.urban for unit in units)
    assert gov_topic_template(settings) == "gov/{service}/{unit_code}"
    assert "gov/+/+" in settings.ingest.topics
    assert gov_topic_template(parse_settings({}, base_dir=REPO)) is None  # json only


def test_office_hours_only(units: tuple[GovUnit, ...]) -> None:
    ward = next(unit for unit in units if unit.urban)
    nothing = [
        (local(SATURDAY, 8), local(SATURDAY, 16)),  # a Saturday
        (local(SUNDAY, 9), local(SUNDAY, 10)),
        (local(MONDAY, 11, 30), local(MONDAY, 13, 30)),  # lunch
        (local(MONDAY, 12), local(MONDAY, 12, 1)),
        (local(MONDAY, 17), local(MONDAY + 1, 7, 30)),  # the night
        (local(MONDAY, 7, 29), local(MONDAY, 7, 30)),
    ]
    for start, end in nothing:
        assert working_periods(start, end) == []
        for service in SERVICES:
            assert gov_counters(service, ward, start, end, seed=SEED) is None
        assert gov_messages(units, start, end, seed=SEED) == []
    # Monday 07:30 local: the office opens and counts arrive.
    opening = gov_counters("dossiers", ward, local(MONDAY, 7, 30), local(MONDAY, 9), seed=SEED)
    assert opening is not None
    assert opening["received"] > 0
    # A whole day is its two sessions, 4 h + 3.5 h, in UTC.
    day = working_periods(local(MONDAY, 0), local(MONDAY + 1, 0))
    assert day == [
        (local(MONDAY, 7, 30), local(MONDAY, 11, 30)),
        (local(MONDAY, 13, 30), local(MONDAY, 17)),
    ]
    assert all(begin.tzinfo is UTC for begin, _ in day)


def test_a_period_over_closing_time_is_stamped_at_its_last_open_moment(
    units: tuple[GovUnit, ...],
) -> None:
    messages = gov_messages(units, local(MONDAY, 16), local(MONDAY, 18), seed=SEED)
    assert messages
    stamps = {payload["ts"] for _, payload in messages}
    assert stamps == {int(local(MONDAY, 17).timestamp() * 1000)}


def test_urban_wards_receive_more_than_rural_communes_and_feedback_a_tenth(
    units: tuple[GovUnit, ...],
) -> None:
    urban = [unit for unit in units if unit.urban]
    rural = [unit for unit in units if not unit.urban]
    urban_days = [day_totals(unit, "dossiers", MONDAY)["received"] for unit in urban[:12]]
    rural_days = [day_totals(unit, "dossiers", MONDAY)["received"] for unit in rural[:12]]
    assert statistics.mean(urban_days) > 1.4 * statistics.mean(rural_days)
    assert min(rural_days + urban_days) >= 3  # a few dossiers a day at least ...
    assert max(rural_days + urban_days) <= 90  # ... and never a crowd
    for unit in units:
        expected = daily_volume(unit, "dossiers", SEED)
        assert (30 <= expected <= 60) if unit.urban else (10 <= expected <= 30)
        assert daily_volume(unit, "feedback", SEED) == pytest.approx(expected / 10)


def test_counters_are_consistent(units: tuple[GovUnit, ...]) -> None:
    for unit in units[:20]:
        for hour in range(7, 17):
            start, end = local(MONDAY, hour), local(MONDAY, hour + 1)
            dossiers = gov_counters("dossiers", unit, start, end, seed=SEED)
            feedback = gov_counters("feedback", unit, start, end, seed=SEED)
            if dossiers is None or feedback is None:
                assert hour in (11, 12)  # 12:00-13:00 is all lunch
                continue
            assert dossiers["resolved_on_time"] <= dossiers["resolved"] <= dossiers["received"]
            assert dossiers["online"] <= dossiers["received"]
            assert dossiers["paid_online"] <= dossiers["with_fees"] <= dossiers["received"]
            assert feedback["handled_on_time"] <= feedback["handled"] <= feedback["received"]


def test_deterministic_from_unit_time_and_seed(units: tuple[GovUnit, ...]) -> None:
    start, end = local(MONDAY, 8), local(MONDAY, 9)
    unit = units[0]
    first = gov_counters("dossiers", unit, start, end, seed=SEED)
    assert first == gov_counters("dossiers", unit, start, end, seed=SEED)
    assert gov_messages(units, start, end, seed=SEED) == gov_messages(units, start, end, seed=SEED)
    others = [gov_counters("dossiers", unit, start, end, seed=seed) for seed in range(1, 6)]
    assert any(other != first for other in others)
    assert gov_counters("dossiers", units[1], start, end, seed=SEED) != first or (
        gov_counters("dossiers", units[2], start, end, seed=SEED) != first
    )


def test_on_time_rates_differ_between_communes_and_move_week_to_week(
    units: tuple[GovUnit, ...],
) -> None:
    def week_rate(unit: GovUnit, monday: int) -> float:
        on_time = resolved = 0
        for day in range(monday, monday + 5):
            totals = day_totals(unit, "dossiers", day)
            on_time += totals["resolved_on_time"]
            resolved += totals["resolved"]
        return on_time / resolved

    this_week = {unit.code: week_rate(unit, MONDAY) for unit in units}
    assert min(this_week.values()) < 0.88  # some lag far behind ...
    assert max(this_week.values()) > 0.97  # ... others are nearly always on time
    assert all(0.6 < rate <= 1.0 for rate in this_week.values())
    under_target = [code for code, rate in this_week.items() if rate < 0.95]
    assert 5 <= len(under_target) <= 35  # a few offices to follow up, not all of them
    next_week = {unit.code: week_rate(unit, MONDAY + 7) for unit in units}
    order = sorted(this_week, key=this_week.__getitem__)
    assert order != sorted(next_week, key=next_week.__getitem__)  # the league table moves


def test_payloads_pass_the_gov_contract(
    units: tuple[GovUnit, ...], contract: GovContract, settings: Settings
) -> None:
    now = local(MONDAY, 10)
    template = gov_topic_template(settings)
    assert template is not None
    messages = gov_messages(units, local(MONDAY, 9), now, seed=SEED, template=template)
    services = {topic.split("/")[1] for topic, _ in messages}
    assert services == {"dossiers", "feedback"}
    assert len({topic for topic, _ in messages}) == len(messages)
    for topic, payload in messages:
        (point,) = contract.points(topic, json.dumps(payload).encode(), now)
        service, code = topic.split("/")[1:]
        assert point == Point(
            measurement=service,
            tags={"device": f"unit-{code}", "province": "48", "commune": code},
            fields={key: float(value) for key, value in payload.items() if key != "ts"},
            ts=now,
        )
        assert any(point.fields.values())  # no all-zero messages


def test_bad_input_is_refused_with_the_value_named(units: tuple[GovUnit, ...]) -> None:
    with pytest.raises(ValueError, match="'parking'"):
        gov_counters("parking", units[0], local(MONDAY, 8), local(MONDAY, 9), seed=SEED)
    with pytest.raises(ValueError, match="aware"):
        working_periods(datetime(2026, 3, 2, 8), datetime(2026, 3, 2, 9))
    assert gov_topic("site/{unit_code}/{service}", "feedback", "20194") == "site/20194/feedback"


def test_the_schedule_sends_once_a_minute_what_happened_since_the_last(
    settings: Settings, units: tuple[GovUnit, ...]
) -> None:
    schedule = GovSchedule.from_settings(settings)
    assert schedule is not None
    assert schedule.due(local(MONDAY, 9)) == []  # not started
    schedule.start(local(MONDAY, 9))
    assert schedule.due(local(MONDAY, 9) + timedelta(seconds=59)) == []
    ten = local(MONDAY, 9, 10)
    sent = schedule.due(ten)
    assert len(sent) > 20
    assert sent == gov_messages(units, local(MONDAY, 9), ten, seed=SEED)
    assert schedule.due(ten + timedelta(seconds=30)) == []  # the next period starts at ten
    assert GovSchedule.from_settings(parse_settings({}, base_dir=REPO)) is None
