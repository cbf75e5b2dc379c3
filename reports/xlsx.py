"""The weekly review as an XLSX workbook (openpyxl): what the page shows, one sheet each for
the KPIs, the league table and the alerts, each under the same title block.

Numbers stay numbers (a ratio is stored 0..1 with a percent format, so Excel computes with
it); missing values are empty cells; header rows are frozen and columns sized to fit.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import IO

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from reports.mail import SEVERITIES, format_movement, local, status_word, text, week_dates
from reports.model import KpiRow, WeeklyReport

STATUS_FILL = {"good": "C6EFCE", "warning": "FFEB9C", "bad": "FFC7CE"}
_BOLD = Font(bold=True)
_TITLE = Font(bold=True, size=14)
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")


def number_format(row: KpiRow) -> str:
    """A ratio as "0.0%" (with the row's decimals), any other value as "0.00" etc."""
    decimals = "." + "0" * row.decimals if row.decimals > 0 else ""
    return f"0{decimals}%" if row.is_ratio else f"#,##0{decimals}"


def write_xlsx(report: WeeklyReport, lang: str, path_or_buffer: str | Path | IO[bytes]) -> None:
    """Write the workbook to a path or a binary file object."""
    book = Workbook()
    kpis = book.active
    assert kpis is not None  # a new workbook has one sheet
    kpis.title = text("kpis", lang)
    _kpi_sheet(kpis, report, lang)
    _league_sheet(book.create_sheet(text("league", lang)), report, lang)
    _alerts_sheet(book.create_sheet(text("alerts", lang)), report, lang)
    book.save(path_or_buffer)


def _title_block(sheet: Worksheet, report: WeeklyReport, lang: str) -> int:
    """The title rows; returns the row of the table header."""
    sheet["A1"] = f"{text('title', lang)} – {report.site_name.get(lang)}"
    sheet["A1"].font = _TITLE
    rows: list[tuple[str, str | datetime]] = [
        (text("unit", lang), report.unit_name.get(lang)),
        (text("week", lang), str(report.week)),
        (text("period", lang), week_dates(report)),
        (text("generated_at", lang), local(report.generated_at, report).replace(tzinfo=None)),
    ]
    for offset, (label, value) in enumerate(rows, start=2):
        sheet.cell(row=offset, column=1, value=label).font = _BOLD
        cell = sheet.cell(row=offset, column=2, value=value)
        if isinstance(value, datetime):
            cell.number_format = "dd/mm/yyyy hh:mm"
            cell.alignment = Alignment(horizontal="left")
    return len(rows) + 3


def _header(sheet: Worksheet, row: int, labels: list[str]) -> None:
    for column, label in enumerate(labels, start=1):
        cell = sheet.cell(row=row, column=column, value=label)
        cell.font = _BOLD
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = sheet.cell(row=row + 1, column=1)


def _widths(sheet: Worksheet, widths: dict[int, float], default: float = 12) -> None:
    for column in range(1, sheet.max_column + 1):
        sheet.column_dimensions[get_column_letter(column)].width = widths.get(column, default)


def _kpi_sheet(sheet: Worksheet, report: WeeklyReport, lang: str) -> None:
    header_row = _title_block(sheet, report, lang)
    weeks = [str(point.week) for point in report.kpis[0].spark] if report.kpis else []
    labels = [
        text("kpi", lang),
        text("measure_unit", lang),
        text("this_week", lang),
        text("last_week", lang),
        text("change", lang),
        text("target", lang),
        text("status", lang),
        *weeks,
    ]
    _header(sheet, header_row, labels)
    for index, row in enumerate(report.kpis, start=header_row + 1):
        values: list[float | None] = [row.this_week, row.last_week, row.change, row.target]
        values += [point.value for point in row.spark]
        sheet.cell(row=index, column=1, value=row.label.get(lang))
        sheet.cell(row=index, column=2, value=row.unit)
        for column, value in enumerate(values[:4], start=3):
            sheet.cell(row=index, column=column, value=value).number_format = number_format(row)
        status = sheet.cell(row=index, column=7, value=status_word(row.status, lang))
        if row.status in STATUS_FILL:
            status.fill = PatternFill("solid", fgColor=STATUS_FILL[row.status])
        for column, value in enumerate(values[4:], start=8):
            sheet.cell(row=index, column=column, value=value).number_format = number_format(row)
    _widths(sheet, {1: 42, 2: 10, 7: 16})


def _league_sheet(sheet: Worksheet, report: WeeklyReport, lang: str) -> None:
    header_row = _title_block(sheet, report, lang)
    metric = next((row for row in report.kpis if row.metric_id == report.league_metric), None)
    if metric is not None:
        sheet.cell(row=header_row - 1, column=1, value=text("league_on", lang)).font = _BOLD
        sheet.cell(row=header_row - 1, column=2, value=metric.label.get(lang))
    labels = ["rank", "code", "name", "value", "last_rank", "movement"]
    _header(sheet, header_row, [text(label, lang) for label in labels])
    for index, row in enumerate(report.league, start=header_row + 1):
        sheet.cell(row=index, column=1, value=row.rank)
        sheet.cell(row=index, column=2, value=row.code)
        sheet.cell(row=index, column=3, value=row.name.get(lang))
        value = sheet.cell(row=index, column=4, value=row.value)
        if metric is not None:
            value.number_format = number_format(metric)
        sheet.cell(row=index, column=5, value=row.last_rank)
        sheet.cell(row=index, column=6, value=format_movement(row) or None)
    _widths(sheet, {1: 8, 2: 10, 3: 40, 4: 14, 5: 16, 6: 14})


def _alerts_sheet(sheet: Worksheet, report: WeeklyReport, lang: str) -> None:
    header_row = _title_block(sheet, report, lang)
    _header(sheet, header_row, [text("severity", lang), text("episodes", lang)])
    row = header_row + 1
    for severity in SEVERITIES:
        sheet.cell(row=row, column=1, value=text(severity, lang))
        sheet.cell(row=row, column=2, value=report.alerts.by_severity.get(severity, 0))
        row += 1
    for key, count in (("total", report.alerts.total), ("unacknowledged", None)):
        sheet.cell(row=row, column=1, value=text(key, lang)).font = _BOLD
        shown = report.alerts.unacknowledged if count is None else count
        sheet.cell(row=row, column=2, value=shown)
        row += 1
    longest = report.alerts.longest
    if longest is not None:
        row += 1
        sheet.cell(row=row, column=1, value=text("longest", lang)).font = _BOLD
        sheet.cell(row=row, column=2, value=longest.title.get(lang))
        sheet.cell(row=row + 1, column=1, value=text("unit", lang))
        sheet.cell(row=row + 1, column=2, value=longest.unit_name.get(lang))
        sheet.cell(row=row + 2, column=1, value=text("started", lang))
        started = sheet.cell(
            row=row + 2, column=2, value=local(longest.started, report).replace(tzinfo=None)
        )
        started.number_format = "dd/mm/yyyy hh:mm"
        started.alignment = Alignment(horizontal="left")
        sheet.cell(row=row + 3, column=1, value=text("minutes", lang))
        sheet.cell(row=row + 3, column=2, value=round(longest.minutes, 1))
        row += 4
    if report.notes:
        row += 1
        sheet.cell(row=row, column=1, value=text("notes", lang)).font = _BOLD
        for offset, note in enumerate(report.notes, start=1):
            sheet.cell(row=row + offset, column=1, value=note)
    _widths(sheet, {1: 24, 2: 48})
