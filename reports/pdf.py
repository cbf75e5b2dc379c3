"""The weekly review as a PDF (fpdf2): A4 portrait, Noto Sans embedded (the font the
dashboard ships, so Vietnamese diacritics are right on any reader), no network.

Title block, KPI table with status colours and a 12-week sparkline drawn as lines, the
league table with movement as "+2"/"-1" (Noto Sans has no arrow glyphs), the alerts
summary, and a footer with the site name and "Trang 1/2".
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from reports.mail import (
    SEVERITIES,
    format_kpi,
    format_movement,
    local,
    status_word,
    text,
    week_dates,
)
from reports.model import KpiRow, WeeklyReport

FONT_DIR: Final = Path(__file__).resolve().parent.parent / "dashboard" / "assets" / "fonts"
FONT: Final = "NotoSans"
STATUS_RGB: Final = {
    "good": (198, 239, 206),
    "warning": (255, 235, 156),
    "bad": (255, 199, 206),
    "none": (255, 255, 255),
}
_HEADER_RGB: Final = (221, 228, 238)
_LINE_H: Final = 6.0
# KPI table columns (mm; the A4 text width is 186 mm with 12 mm margins).
_KPI_COLUMNS: Final = (
    ("kpi", 56.0),
    ("this_week", 23.0),
    ("last_week", 23.0),
    ("change", 20.0),
    ("target", 20.0),
    ("status", 22.0),
    ("trend", 22.0),
)
_LEAGUE_COLUMNS: Final = (
    ("rank", 14.0),
    ("code", 18.0),
    ("name", 94.0),
    ("value", 30.0),
    ("movement", 30.0),
)


class _ReviewPdf(FPDF):
    def __init__(self, footer_text: str, page_word: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self._footer_text = footer_text
        self._page_word = page_word
        self.set_margins(12, 12, 12)
        self.set_auto_page_break(auto=True, margin=16)
        self.add_font(FONT, "", str(FONT_DIR / "NotoSans-Regular.ttf"))
        self.add_font(FONT, "B", str(FONT_DIR / "NotoSans-Bold.ttf"))

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, self._footer_text, align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"{self._page_word} {self.page_no()}/{{nb}}", align="R")
        self.set_text_color(0, 0, 0)


def write_pdf(report: WeeklyReport, lang: str) -> bytes:
    """The review as PDF bytes, in ``lang`` ("vi" or "en")."""
    site = report.site_name.get(lang)
    pdf = _ReviewPdf(site, text("page", lang))
    pdf.set_title(f"{text('title', lang)} {report.week} – {report.unit_name.get(lang)}")
    pdf.set_creator(site)
    pdf.add_page()
    _title(pdf, report, lang)
    _kpis(pdf, report, lang)
    _league(pdf, report, lang)
    _alerts(pdf, report, lang)
    return bytes(pdf.output())


def _fit(pdf: FPDF, value: str, width: float) -> str:
    """``value`` in a smaller font (down to 6.5 pt) or else shortened with "…" to fit
    ``width`` mm."""
    size = pdf.font_size_pt
    while pdf.get_string_width(value) > width - 2 and size > 6.5:
        size -= 0.5
        pdf.set_font_size(size)
    if pdf.get_string_width(value) <= width - 2:
        return value
    while value and pdf.get_string_width(value + "…") > width - 2:
        value = value[:-1]
    return value + "…"


def _row(
    pdf: FPDF,
    cells: list[tuple[str, float]],
    *,
    bold: bool = False,
    fills: dict[int, tuple[int, int, int]] | None = None,
    align_right_from: int = 1,
) -> None:
    for index, (value, width) in enumerate(cells):
        pdf.set_font(FONT, "B" if bold else "", 8.5)
        rgb = (fills or {}).get(index)
        if rgb is not None:
            pdf.set_fill_color(*rgb)
        pdf.cell(
            width,
            _LINE_H,
            _fit(pdf, value, width),
            border=1,
            align="R" if index >= align_right_from and not bold else "L",
            fill=rgb is not None,
            new_x=XPos.RIGHT,
            new_y=YPos.TOP,
        )
    pdf.ln(_LINE_H)


def _header(pdf: FPDF, columns: tuple[tuple[str, float], ...], lang: str) -> None:
    """A table's header row (again at the top of each page the table runs onto)."""
    cells = [(text(key, lang), width) for key, width in columns]
    _row(pdf, cells, bold=True, fills=dict.fromkeys(range(len(columns)), _HEADER_RGB))


def _heading(pdf: FPDF, value: str) -> None:
    pdf.ln(3)
    pdf.set_font(FONT, "B", 11)
    pdf.cell(0, 7, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _title(pdf: FPDF, report: WeeklyReport, lang: str) -> None:
    pdf.set_font(FONT, "B", 15)
    pdf.multi_cell(0, 8, text("title", lang), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "B", 12)
    pdf.multi_cell(0, 7, report.unit_name.get(lang), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 9.5)
    generated = local(report.generated_at, report)
    lines = (
        f"{text('week', lang)} {report.week} ({week_dates(report)})",
        f"{text('generated_at', lang)}: {generated:%d/%m/%Y %H:%M}",
    )
    for line in lines:
        pdf.cell(0, 5.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _kpis(pdf: FPDF, report: WeeklyReport, lang: str) -> None:
    _heading(pdf, text("kpis", lang))
    _header(pdf, _KPI_COLUMNS, lang)
    widths = [width for _, width in _KPI_COLUMNS]
    for row in report.kpis:
        if pdf.will_page_break(_LINE_H):
            pdf.add_page()
            _header(pdf, _KPI_COLUMNS, lang)
        values = [
            row.label.get(lang),
            format_kpi(row, row.this_week, lang),
            format_kpi(row, row.last_week, lang),
            "" if row.change is None else format_kpi(row, row.change, lang, signed=True),
            "" if row.target is None else format_kpi(row, row.target, lang),
            status_word(row.status, lang),
            "",
        ]
        top, left = pdf.get_y(), pdf.l_margin
        _row(pdf, list(zip(values, widths, strict=True)), fills={5: STATUS_RGB[row.status]})
        _sparkline(pdf, row, left + sum(widths[:-1]), top, widths[-1])


def _sparkline(pdf: FPDF, row: KpiRow, x: float, y: float, width: float) -> None:
    """The 12 weekly values as connected lines inside the cell; a gap where a week has none."""
    values = [point.value for point in row.spark]
    known = [value for value in values if value is not None]
    if len(known) < 2:
        return
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    step = (width - 4) / max(len(values) - 1, 1)
    height = _LINE_H - 2

    def point(index: int, value: float) -> tuple[float, float]:
        return x + 2 + index * step, y + 1 + height * (1 - (value - low) / span)

    pdf.set_draw_color(31, 78, 140)
    pdf.set_line_width(0.3)
    for index in range(1, len(values)):
        before, after = values[index - 1], values[index]
        if before is not None and after is not None:
            pdf.line(*point(index - 1, before), *point(index, after))
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.2)


def _league(pdf: FPDF, report: WeeklyReport, lang: str) -> None:
    metric = next((row for row in report.kpis if row.metric_id == report.league_metric), None)
    if metric is None or not report.league:
        return
    _heading(
        pdf, f"{text('league', lang)} – {text('league_on', lang).lower()} {metric.label.get(lang)}"
    )
    _header(pdf, _LEAGUE_COLUMNS, lang)
    widths = [width for _, width in _LEAGUE_COLUMNS]
    for row in report.league:
        if pdf.will_page_break(_LINE_H):
            pdf.add_page()
            _header(pdf, _LEAGUE_COLUMNS, lang)
        values = [
            "" if row.rank is None else str(row.rank),
            row.code,
            row.name.get(lang),
            format_kpi(metric, row.value, lang),
            format_movement(row),
        ]
        _row(pdf, list(zip(values, widths, strict=True)), align_right_from=3)


def _alerts(pdf: FPDF, report: WeeklyReport, lang: str) -> None:
    if pdf.will_page_break(40):
        pdf.add_page()
    _heading(pdf, text("alerts", lang))
    summary = report.alerts
    rows = [(text(severity, lang), summary.by_severity.get(severity, 0)) for severity in SEVERITIES]
    rows += [
        (text("total", lang), summary.total),
        (text("unacknowledged", lang), summary.unacknowledged),
    ]
    for label, count in rows:
        _row(pdf, [(label, 60.0), (str(count), 25.0)])
    if summary.longest is not None:
        longest = summary.longest
        started = local(longest.started, report)
        pdf.set_font(FONT, "", 9)
        pdf.ln(2)
        pdf.multi_cell(
            0,
            5,
            f"{text('longest', lang)}: {longest.title.get(lang)} – "
            f"{longest.unit_name.get(lang)}, {text('started', lang).lower()} "
            f"{started:%d/%m/%Y %H:%M}, {round(longest.minutes)} {text('minutes_short', lang)}",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
    if report.notes:
        pdf.set_font(FONT, "", 8.5)
        pdf.ln(2)
        for note in report.notes:
            pdf.multi_cell(0, 4.5, f"• {note}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
