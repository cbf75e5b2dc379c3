"""The XLSX export: reopened with openpyxl, the cells hold the report's numbers as numbers
with the right formats, Vietnamese text, frozen header rows. ``sample_report`` is the
hand-made WeeklyReport the PDF and mail tests use too."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from core.settings_base import Label
from reports.model import (
    AlertsSummary,
    IsoWeek,
    KpiRow,
    LeagueRow,
    LongestAlert,
    SparkPoint,
    WeeklyReport,
)
from reports.xlsx import write_xlsx

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
WEEK = IsoWeek(2026, 47)


def _spark(values: list[float | None]) -> tuple[SparkPoint, ...]:
    weeks = [IsoWeek(2026, 47 - 11 + index) for index in range(12)]
    return tuple(SparkPoint(week, value) for week, value in zip(weeks, values, strict=True))


def sample_report(
    unit_code: str = "48", unit_name: Label | None = None, league: bool = True
) -> WeeklyReport:
    starts = datetime(2026, 11, 16, tzinfo=TZ)
    on_time = KpiRow(
        metric_id="dossiers_on_time",
        label=Label(vi="Hồ sơ giải quyết đúng hạn", en="Dossiers resolved on time"),
        unit="%",
        decimals=1,
        better="higher",
        this_week=0.925,
        last_week=0.9,
        change=0.025,  # this_week - last_week, as a ratio (2.5 points)
        target=0.95,
        status="warning",
        spark=_spark([0.8, 0.82, None, 0.85, 0.86, 0.88, 0.87, 0.89, 0.9, 0.91, 0.9, 0.925]),
        is_ratio=True,
        source="749/QĐ-TTg",
    )
    pm25 = KpiRow(
        metric_id="pm25",
        label=Label(vi="Bụi mịn PM2.5 trung bình", en="Mean PM2.5"),
        unit="µg/m³",
        decimals=1,
        better="lower",
        this_week=35.26,
        last_week=41.0,
        change=-5.74,
        target=50.0,
        status="good",
        spark=_spark([40, 42, 38, 45, 44, 43, 39, 37, 36, 40, 41, 35.26]),
    )
    noise = KpiRow(
        metric_id="noise",
        label=Label(vi="Tiếng ồn", en="Noise"),
        unit="dB",
        decimals=0,
        better="lower",
        this_week=None,
        last_week=None,
        change=None,
        target=None,
        status="none",
        spark=_spark([None] * 12),
    )
    rows = (
        (
            LeagueRow("20194", Label(vi="Phường Hải Vân", en="Hai Van Ward"), 0.97, 1, 3, 2),
            LeagueRow("20197", Label(vi="Phường Liên Chiểu", en="Lien Chieu Ward"), 0.93, 2, 1, -1),
            LeagueRow(
                "20200", Label(vi="Phường Hòa Khánh", en="Hoa Khanh Ward"), None, None, 2, None
            ),
        )
        if league
        else ()
    )
    return WeeklyReport(
        unit_code=unit_code,
        unit_name=unit_name or Label(vi="Thành phố Đà Nẵng", en="Da Nang City"),
        week=WEEK,
        starts=starts,
        ends=starts + timedelta(days=7),
        generated_at=datetime(2026, 11, 23, 0, 5, tzinfo=UTC),
        kpis=(on_time, pm25, noise),
        league_metric="dossiers_on_time",
        league=rows,
        alerts=AlertsSummary(
            by_severity={"critical": 2, "warning": 5},
            total=7,
            unacknowledged=1,
            longest=LongestAlert(
                title=Label(vi="PM2.5 vượt ngưỡng", en="PM2.5 above the limit"),
                unit_name=Label(vi="Phường Hải Vân", en="Hai Van Ward"),
                started=datetime(2026, 11, 18, 1, 30, tzinfo=UTC),
                minutes=185.0,
            ),
        ),
        site_name=Label(vi="Trung tâm IOC Đà Nẵng", en="Da Nang IOC"),
        notes=("không có dữ liệu Tiếng ồn tuần này / no data for Noise this week",),
    )


def _book(lang: str = "vi"):  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    write_xlsx(sample_report(), lang, buffer)
    buffer.seek(0)
    return load_workbook(buffer)


def test_title_block_names_the_unit_week_dates_and_time_in_local_time() -> None:
    sheet = _book()["Chỉ số"]
    assert sheet["A1"].value == "Báo cáo KPI tuần – Trung tâm IOC Đà Nẵng"
    assert sheet["B2"].value == "Thành phố Đà Nẵng"
    assert sheet["B3"].value == "2026-W47"
    assert sheet["B4"].value == "16/11/2026 – 22/11/2026"
    assert sheet["B5"].value == datetime(2026, 11, 23, 7, 5)  # 00:05 UTC is 07:05 ICT


def test_kpi_rows_are_numbers_with_percent_format_for_ratios() -> None:
    sheet = _book()["Chỉ số"]
    header = [cell.value for cell in sheet[7]]
    assert header[:7] == [
        "Chỉ số",
        "Đơn vị đo",
        "Tuần này",
        "Tuần trước",
        "Thay đổi",
        "Mục tiêu",
        "Đánh giá",
    ]
    assert header[7] == "2026-W36"
    assert header[18] == "2026-W47"
    assert sheet.freeze_panes == "A8"
    ratio = [cell.value for cell in sheet[8]]
    assert ratio[0] == "Hồ sơ giải quyết đúng hạn"
    assert ratio[2:4] == [0.925, 0.9]
    assert sheet["C8"].number_format == "0.0%"
    assert sheet["F8"].value == 0.95
    assert ratio[6] == "Gần đạt"
    assert sheet["G8"].fill.fgColor.rgb.endswith("FFEB9C")
    assert ratio[9] is None  # the week without data stays empty, not 0
    assert ratio[18] == 0.925
    pm25 = [cell.value for cell in sheet[9]]
    assert pm25[1] == "µg/m³"
    assert pm25[2] == 35.26
    assert pm25[4] == -5.74
    assert sheet["C9"].number_format == "#,##0.0"
    assert [cell.value for cell in sheet[10]][2:7] == [None, None, None, None, "—"]


def test_league_and_alerts_sheets() -> None:
    book = _book()
    league = book["Xếp hạng đơn vị"]
    assert league["B6"].value == "Hồ sơ giải quyết đúng hạn"
    assert [cell.value for cell in league[8]] == [1, "20194", "Phường Hải Vân", 0.97, 3, "+2"]
    assert league["D8"].number_format == "0.0%"
    assert [cell.value for cell in league[9]][5] == "-1"
    assert league.freeze_panes == "A8"
    alerts = book["Cảnh báo"]
    counts = {
        alerts.cell(row=r, column=1).value: alerts.cell(row=r, column=2).value for r in range(8, 13)
    }
    assert counts == {
        "Nghiêm trọng": 2,
        "Cảnh báo": 5,
        "Thông tin": 0,
        "Tổng": 7,
        "Chưa xác nhận": 1,
    }
    assert alerts["B14"].value == "PM2.5 vượt ngưỡng"
    assert alerts["B16"].value == datetime(2026, 11, 18, 8, 30)


@pytest.mark.parametrize(
    ("lang", "sheets"),
    [
        ("vi", ["Chỉ số", "Xếp hạng đơn vị", "Cảnh báo"]),
        ("en", ["KPIs", "League table", "Alerts"]),
    ],
)
def test_sheet_names_follow_the_language(lang: str, sheets: list[str]) -> None:
    book = _book(lang)
    assert book.sheetnames == sheets
    if lang == "en":
        assert book["KPIs"]["B2"].value == "Da Nang City"
        assert book["KPIs"]["G8"].value == "Nearly met"
