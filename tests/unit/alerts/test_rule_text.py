"""The words of a rule (alerts/rule_text.py): every type, Vietnamese and English."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.rule_text import condition, describe, duration, elapsed, span, title, value_text
from core.settings import AlertRule, Label, MetricSettings, load_settings

REPO = Path(__file__).resolve().parents[3]

PM25 = MetricSettings(
    kind="air", field="pm25", label=Label(vi="Bụi mịn PM2.5", en="Fine dust PM2.5"), unit="µg/m³"
)
WATER = MetricSettings(
    kind="water", field="level", label=Label(vi="Mực nước", en="Water level"), unit="m", decimals=2
)
ALARM = MetricSettings(
    kind="water",
    field="alarm",
    label=Label(vi="Cấp báo động lũ", en="Flood alarm level"),
    unit="",
    aggregation="max",
    decimals=0,
)
ON_TIME = MetricSettings(
    kind="dossiers",
    field="resolved_on_time",
    denominator="resolved",
    target=0.9,
    label=Label(vi="Tỷ lệ hồ sơ đúng hạn", en="On-time dossier rate"),
    unit="%",
    aggregation="sum",
)


def make_rule(**fields: object) -> AlertRule:
    base: dict[str, object] = {"id": "r", "metric": "pm25", "level": "commune"}
    return AlertRule.model_validate(base | fields)


def both(label: Label) -> tuple[str, str]:
    return label.vi, label.en


HOURLY = make_rule(op="above", threshold=80, clear=70, window_s=3600, for_s=60)
LATEST = make_rule(op="above", threshold=80)
LOW = make_rule(op="below", threshold=2.5, clear=3)
SILENT = make_rule(type="no_data", level="device", silent_s=900)
RISING = make_rule(
    type="rate", metric="water_level", direction="rise", change=0.5, over_s=3600, for_s=120
)
FALLING = make_rule(type="rate", metric="water_level", direction="fall", change=0.25, over_s=1800)
WEEKLY = make_rule(type="kpi", metric="on_time", period="week")


# -- threshold -----------------------------------------------------------------------------


def test_threshold_texts() -> None:
    assert both(title(HOURLY, PM25)) == (
        "Bụi mịn PM2.5 vượt 80 µg/m³",
        "Fine dust PM2.5 above 80 µg/m³",
    )
    assert both(condition(HOURLY, PM25, "firing")) == (
        "trung bình 1 giờ vượt ngưỡng 80 µg/m³",
        "mean over 1 h above the threshold of 80 µg/m³",
    )
    assert both(condition(HOURLY, PM25, "resolved")) == (
        "trung bình 1 giờ không còn vượt ngưỡng 80 µg/m³ (về mức 70 µg/m³ trở xuống)",
        "mean over 1 h no longer above 80 µg/m³ (back to 70 µg/m³ or less)",
    )
    assert both(value_text(HOURLY, PM25, 92.44)) == ("92,4 µg/m³", "92.4 µg/m³")
    assert both(describe(HOURLY, PM25)) == (
        "Bụi mịn PM2.5 trung bình 1 giờ > 80 µg/m³, kéo dài ít nhất 60 giây; hết khi ≤ 70 µg/m³",
        "Fine dust PM2.5 mean over 1 h > 80 µg/m³, lasting at least 60 s; ends at ≤ 70 µg/m³",
    )


def test_threshold_on_latest_values_without_a_clear_line() -> None:
    assert both(condition(LATEST, PM25, "firing")) == (
        "vượt ngưỡng 80 µg/m³",
        "above the threshold of 80 µg/m³",
    )
    assert both(condition(LATEST, PM25, "resolved")) == (
        "không còn vượt ngưỡng 80 µg/m³",
        "no longer above 80 µg/m³",
    )
    assert both(describe(LATEST, PM25)) == (
        "Bụi mịn PM2.5 > 80 µg/m³, báo ngay",
        "Fine dust PM2.5 > 80 µg/m³, immediately",
    )


def test_below_rules_and_decimal_limits() -> None:
    assert both(title(LOW, WATER)) == ("Mực nước dưới 2,5 m", "Water level below 2.5 m")
    assert both(condition(LOW, WATER, "resolved")) == (
        "không còn dưới ngưỡng 2,5 m (về mức 3 m trở lên)",
        "no longer below 2.5 m (back to 3 m or more)",
    )
    assert both(describe(LOW, WATER))[0] == "Mực nước < 2,5 m, báo ngay; hết khi ≥ 3 m"
    assert both(value_text(LOW, WATER, 1234.5)) == ("1.234,50 m", "1,234.50 m")


def test_a_unitless_metric_and_the_rules_own_title() -> None:
    alarm = make_rule(metric="flood_alarm", op="above", threshold=2)
    assert both(title(alarm, ALARM)) == ("Cấp báo động lũ vượt 2", "Flood alarm level above 2")
    assert both(value_text(alarm, ALARM, 3.0)) == ("3", "3")
    named = make_rule(op="above", threshold=80, title={"vi": "Bụi mịn Xấu", "en": "PM2.5 Bad"})
    assert both(title(named, PM25)) == ("Bụi mịn Xấu", "PM2.5 Bad")


def test_other_aggregations_and_a_24_hour_window() -> None:
    daily = make_rule(op="above", threshold=45, window_s=86_400, aggregation="max")
    assert both(condition(daily, PM25, "firing")) == (
        "cao nhất 24 giờ vượt ngưỡng 45 µg/m³",
        "maximum over 24 h above the threshold of 45 µg/m³",
    )
    quarter = make_rule(op="above", threshold=45, window_s=900)  # the metric's mean
    assert (
        both(describe(quarter, PM25))[0] == "Bụi mịn PM2.5 trung bình 15 phút > 45 µg/m³, báo ngay"
    )


# -- no data, rate, kpi --------------------------------------------------------------------


def test_no_data_texts() -> None:
    assert both(title(SILENT, PM25)) == (
        "Bụi mịn PM2.5: không có dữ liệu quá 15 phút",
        "Fine dust PM2.5: no data for more than 15 min",
    )
    assert both(condition(SILENT, PM25, "firing")) == (
        "không có dữ liệu quá 15 phút",
        "no data for more than 15 min",
    )
    assert both(condition(SILENT, PM25, "resolved")) == (
        "có dữ liệu trở lại",
        "data is arriving again",
    )
    assert both(value_text(SILENT, PM25, 35 * 60 + 59)) == ("im lặng 35 phút", "silent for 35 min")
    assert both(value_text(SILENT, PM25, 3 * 86_400 + 7200)) == (
        "im lặng 3 ngày 2 giờ",
        "silent for 3 days 2 h",
    )
    assert both(describe(SILENT, PM25)) == (
        "Bụi mịn PM2.5: không có dữ liệu quá 15 phút, báo ngay",
        "Fine dust PM2.5: no data for more than 15 min, immediately",
    )


def test_rate_texts() -> None:
    assert both(title(RISING, WATER)) == (
        "Mực nước tăng quá 0,5 m trong 60 phút",
        "Water level rising more than 0.5 m in 60 min",
    )
    assert both(condition(RISING, WATER, "resolved")) == (
        "không còn tăng quá 0,5 m trong 60 phút",
        "no longer rising more than 0.5 m in 60 min",
    )
    assert both(value_text(RISING, WATER, 0.623)) == ("+0,62 m trong 60 phút", "+0.62 m in 60 min")
    assert both(describe(RISING, WATER)) == (
        "Mực nước tăng quá 0,5 m trong 60 phút, kéo dài ít nhất 120 giây",
        "Water level rising more than 0.5 m in 60 min, lasting at least 120 s",
    )
    assert both(condition(FALLING, WATER, "firing")) == (
        "giảm quá 0,25 m trong 30 phút",
        "falling more than 0.25 m in 30 min",
    )
    assert both(value_text(FALLING, WATER, -0.3)) == ("-0,30 m trong 30 phút", "-0.30 m in 30 min")


def test_kpi_texts_show_ratios_as_percent() -> None:
    assert both(title(WEEKLY, ON_TIME)) == (
        "Tỷ lệ hồ sơ đúng hạn dưới chỉ tiêu 90 %",
        "On-time dossier rate below the 90 % target",
    )
    assert both(condition(WEEKLY, ON_TIME, "firing")) == (
        "dưới chỉ tiêu 90 % (tuần này)",
        "below the 90 % target (this week)",
    )
    assert both(condition(WEEKLY, ON_TIME, "resolved")) == (
        "đạt chỉ tiêu 90 % (tuần này)",
        "meets the 90 % target (this week)",
    )
    assert both(value_text(WEEKLY, ON_TIME, 0.835)) == ("83,5 %", "83.5 %")
    late = make_rule(type="kpi", metric="late", op="above", target=0.125, window_s=86_400)
    assert both(condition(late, ON_TIME, "firing")) == (
        "vượt mức 12,5 % (trong 24 giờ qua)",
        "above 12.5 % (in the last 24 h)",
    )
    monthly = make_rule(type="kpi", metric="on_time", period="month", for_s=3600)
    assert both(describe(monthly, ON_TIME)) == (
        "Tỷ lệ hồ sơ đúng hạn dưới chỉ tiêu 90 % (tháng này), kéo dài ít nhất 3600 giây",
        "On-time dossier rate below the 90 % target (this month), lasting at least 3600 s",
    )


def test_no_value_is_a_dash_for_every_type() -> None:
    for rule, metric in ((LATEST, PM25), (SILENT, PM25), (RISING, WATER), (WEEKLY, ON_TIME)):
        assert both(value_text(rule, metric, None)) == ("—", "—")


# -- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "vi", "en"),
    [
        (45, "45 giây", "45 s"),
        (90, "90 giây", "90 s"),
        (900, "15 phút", "15 min"),
        (3600, "60 phút", "60 min"),
        (5400, "90 phút", "90 min"),
        (7200, "2 giờ", "2 h"),
        (86_400, "24 giờ", "24 h"),
        (2.5, "2,5 giây", "2.5 s"),
    ],
)
def test_configured_durations_are_exact(seconds: float, vi: str, en: str) -> None:
    assert (duration(seconds, "vi"), duration(seconds, "en")) == (vi, en)


def test_windows_in_hours_and_measured_times_rounded_down() -> None:
    assert (span(3600, "vi"), span(5400, "en"), span(86_400, "en")) == ("1 giờ", "90 min", "24 h")
    assert [elapsed(s, "vi") for s in (-5, 119, 120, 7199, 7200, 11_100, 172_800)] == [
        "0 giây",
        "119 giây",
        "2 phút",
        "119 phút",
        "2 giờ",
        "3 giờ 5 phút",
        "2 ngày",
    ]
    assert elapsed(11_100, "en") == "3 h 5 min"


def test_every_shipped_rule_has_words_in_both_languages() -> None:
    settings = load_settings(REPO / "config.yaml", environ={})
    for rule in settings.alerts.rules:
        metric = settings.metrics[rule.metric]
        words = (
            title(rule, metric),
            condition(rule, metric, "firing"),
            condition(rule, metric, "resolved"),
            describe(rule, metric),
        )
        for label in words:
            assert label.vi != label.en, (rule.id, label)  # not one language twice
            assert "None" not in label.vi + label.en, (rule.id, label)
        assert value_text(rule, metric, 1.0).vi, rule.id
