"""A value per period (VN_AQI hourly/daily) is current for two periods: the dashboard looks
that far back for it and marks it old only after that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from core.settings import Label, MetricSettings
from dashboard.views.map import is_stale

NAME = Label(vi="VN_AQI giờ", en="Hourly VN_AQI")
DEFAULT = timedelta(minutes=15)


def metric(period_s: int | None) -> MetricSettings:
    return MetricSettings(kind="aqi", field="hourly", label=NAME, unit="", period_s=period_s)


def test_a_sensor_metric_keeps_the_dashboard_default() -> None:
    assert metric(None).stale_after(DEFAULT) == DEFAULT


def test_an_hourly_value_stamped_at_the_hour_start_is_current_for_two_hours() -> None:
    hourly = metric(3600)
    stamped = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # the 07:00-08:00 hour, written 08:01
    assert not is_stale(
        stamped, stamped + timedelta(hours=1, minutes=59), hourly.stale_after(DEFAULT)
    )
    assert is_stale(stamped, stamped + timedelta(hours=2, minutes=6), hourly.stale_after(DEFAULT))
    assert metric(86400).stale_after(DEFAULT) == timedelta(hours=48, minutes=5)


def test_a_period_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        metric(0)
