"""The weekly review page's pieces (dashboard/review_page.py): pure functions of a
:class:`~reports.model.WeeklyReport` → Dash components. Sparklines are inline SVG images
(data URIs): nothing is fetched from outside, and 12 points need no plotly figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

from dash import dcc, html

from dashboard.exports import csv_link
from dashboard.i18n import add_texts, format_duration, format_number, format_when, text
from dashboard.views.panel import message_panel
from reports.model import AlertsSummary, IsoWeek, KpiRow, LeagueRow, SparkPoint, WeeklyReport
from reports.weeks import week_days

add_texts(
    {
        "review_title": ("Báo cáo tuần", "Weekly review"),
        "review_unit": ("Đơn vị", "Unit"),
        "review_week": (
            "Tuần {week}/{year} · {first}–{last}",
            "Week {week}/{year} · {first}–{last}",
        ),
        "review_prev": ("◀ Tuần trước", "◀ Previous week"),
        "review_next": ("Tuần sau ▶", "Next week ▶"),
        "review_loading": ("Đang tải báo cáo…", "Loading the review…"),
        "review_kpis": ("Chỉ số chính", "Key indicators"),
        "review_kpi": ("Chỉ số", "Indicator"),
        "review_this_week": ("Tuần này", "This week"),
        "review_last_week": ("Tuần trước", "Last week"),
        "review_change": ("Thay đổi", "Change"),
        "review_target": ("Mục tiêu", "Target"),
        "review_status": ("Đánh giá", "Status"),
        "review_trend": ("12 tuần", "12 weeks"),
        "review_status_good": ("Đạt", "Met"),
        "review_status_warning": ("Gần đạt", "Nearly met"),
        "review_status_bad": ("Chưa đạt", "Not met"),
        "review_status_none": ("—", "—"),
        "review_points": ("{value} điểm %", "{value} pp"),
        "review_league": ("Xếp hạng đơn vị: {metric}", "Ranking of units: {metric}"),
        "review_rank": ("Hạng", "Rank"),
        "review_last_rank": ("Hạng tuần trước", "Last week's rank"),
        "review_movement": ("Thay đổi", "Movement"),
        "review_new": ("mới", "new"),
        "review_unranked": (
            "{count} đơn vị không có dữ liệu tuần này",
            "{count} units have no data this week",
        ),
        "review_no_league": (
            "Đơn vị này không có đơn vị trực thuộc",
            "This unit has no units below it",
        ),
        "review_alerts": ("Cảnh báo trong tuần", "Alerts of the week"),
        "review_alerts_total": ("{count} đợt cảnh báo", "{count} alert episodes"),
        "review_unacked": ("{count} chưa xác nhận", "{count} unacknowledged"),
        "review_severity_critical": ("Nghiêm trọng", "Critical"),
        "review_severity_warning": ("Cảnh báo", "Warning"),
        "review_severity_info": ("Thông tin", "Info"),
        "review_longest": (
            "Dài nhất: {title} — {unit}, từ {start}, {duration}",
            "Longest: {title} — {unit}, from {start}, {duration}",
        ),
        "review_no_alerts": ("Không có cảnh báo trong tuần", "No alerts this week"),
        "review_xlsx": ("Tải Excel", "Download Excel"),
        "review_pdf": ("Tải PDF", "Download PDF"),
        "review_generated": ("Lập lúc {time}", "Made at {time}"),
    }
)

REVIEW_UNIT: Final = "review-unit"
REVIEW_UNIT_LABEL: Final = "review-unit-label"
REVIEW_WEEK: Final = "review-week"
REVIEW_MESSAGE: Final = "review-message"
REVIEW_KPIS: Final = "review-kpis"
REVIEW_LEAGUE: Final = "review-league"
REVIEW_ALERTS: Final = "review-alerts"
REVIEW_EXPORTS: Final = "review-exports"
REVIEW_XLSX: Final = "review-xlsx"
REVIEW_PDF: Final = "review-pdf"

SPARK_W, SPARK_H, SPARK_PAD = 120, 30, 3


def value_text(row: KpiRow, value: float | None, lang: str) -> str:
    """ "53,6 %", "42,0 µg/m³"; "không có dữ liệu" when there is none."""
    if value is None:
        return text("no_data", lang).lower()
    shown = value * 100 if row.is_ratio else value
    number = format_number(shown, lang, row.decimals)
    return f"{number} {row.unit}".strip()


def change_text(row: KpiRow, lang: str) -> str:
    if row.change is None:
        return "—"
    size = row.change * 100 if row.is_ratio else row.change
    arrow = "↑" if size > 0 else "↓" if size < 0 else "→"
    number = format_number(abs(size), lang, row.decimals)
    shown = text("review_points", lang, value=number) if row.is_ratio else f"{number} {row.unit}"
    return f"{arrow} {shown.strip()}"


def change_class(row: KpiRow) -> str:
    """Green when the change is good news for this KPI (``better``), red when bad."""
    if row.change is None or row.change == 0:
        return "review-change change-flat"
    good = (row.change > 0) == (row.better == "higher")
    return "review-change change-good" if good else "review-change change-bad"


def sparkline_svg(points: Sequence[SparkPoint]) -> str:
    """An SVG line of the weeks' values; a week without data breaks the line (no 0)."""
    values = [point.value for point in points if point.value is not None]
    if not values:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{SPARK_W}" height="{SPARK_H}"/>'
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (SPARK_W - 2 * SPARK_PAD) / max(len(points) - 1, 1)
    path: list[str] = []
    pen_down = False
    last = (0.0, 0.0)
    for index, point in enumerate(points):
        if point.value is None:
            pen_down = False
            continue
        x = SPARK_PAD + index * step
        y = SPARK_H - SPARK_PAD - (point.value - low) / span * (SPARK_H - 2 * SPARK_PAD)
        path.append(f"{'L' if pen_down else 'M'}{x:.1f} {y:.1f}")
        pen_down, last = True, (x, y)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SPARK_W}" height="{SPARK_H}" '
        f'viewBox="0 0 {SPARK_W} {SPARK_H}"><path d="{" ".join(path)}" fill="none" '
        'stroke="#1D4ED8" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
        f'<circle cx="{last[0]:.1f}" cy="{last[1]:.1f}" r="2.5" fill="#1D4ED8"/></svg>'
    )


def sparkline(row: KpiRow, lang: str) -> html.Img:
    svg = sparkline_svg(row.spark)
    described = "; ".join(
        f"{point.week}: {value_text(row, point.value, lang)}" for point in row.spark
    )
    return html.Img(
        src="data:image/svg+xml;charset=utf-8," + quote(svg),
        alt=described,
        title=described,
        className="review-spark",
        width=SPARK_W,
        height=SPARK_H,
    )


def week_label(week: IsoWeek, lang: str) -> str:
    first, last = week_days(week)
    return text(
        "review_week",
        lang,
        week=week.week,
        year=week.year,
        first=first.strftime("%d/%m"),
        last=last.strftime("%d/%m/%Y"),
    )


def week_picker(week: IsoWeek, lang: str, previous_href: str, next_href: str | None) -> list[Any]:
    """◀ previous · the week and its dates · next ▶ (no next beyond the current week)."""
    later: Any = (
        dcc.Link(
            text("review_next", lang), href=next_href, className="review-step", id="review-next"
        )
        if next_href is not None
        else html.Span(text("review_next", lang), className="review-step review-step-off")
    )
    return [
        dcc.Link(
            text("review_prev", lang), href=previous_href, className="review-step", id="review-prev"
        ),
        html.Strong(week_label(week, lang), className="review-week-text"),
        later,
    ]


def _num(value: float | None, extra: str = "") -> str:
    """A number cell's classes; "không có dữ liệu" is muted, not bold."""
    return f"review-num {extra if value is not None else 'review-none'}".strip()


def kpi_table(report: WeeklyReport, lang: str) -> html.Table:
    head = html.Tr(
        [
            html.Th(text(key, lang))
            for key in (
                "review_kpi",
                "review_this_week",
                "review_last_week",
                "review_change",
                "review_target",
                "review_status",
                "review_trend",
            )
        ]
    )
    rows = []
    for row in report.kpis:
        target = value_text(row, row.target, lang) if row.target is not None else "—"
        rows.append(
            html.Tr(
                [
                    html.Th(row.label.get(lang), scope="row", className="review-kpi-name"),
                    html.Td(
                        value_text(row, row.this_week, lang),
                        className=_num(row.this_week, "review-now"),
                    ),
                    html.Td(value_text(row, row.last_week, lang), className=_num(row.last_week)),
                    html.Td(change_text(row, lang), className=change_class(row)),
                    html.Td(target, className="review-num"),
                    html.Td(
                        html.Span(
                            text(f"review_status_{row.status}", lang),
                            className=f"review-status status-{row.status}",
                        )
                    ),
                    html.Td(sparkline(row, lang)),
                ],
                className=f"review-row review-row-{row.metric_id}",
            )
        )
    return html.Table([html.Thead(head), html.Tbody(rows)], className="review-table")


def _movement(row: LeagueRow, lang: str) -> html.Span:
    if row.rank is None:
        return html.Span("—", className="review-move")
    if row.movement is None:
        return html.Span(text("review_new", lang), className="review-move move-new")
    if row.movement > 0:
        return html.Span(f"▲ {row.movement}", className="review-move move-up")
    if row.movement < 0:
        return html.Span(f"▼ {-row.movement}", className="review-move move-down")
    return html.Span("=", className="review-move move-same")


def league_table(report: WeeklyReport, kpi: KpiRow | None, lang: str) -> list[Any]:
    """The children ranked on the headline KPI; those without data counted underneath."""
    title = html.H2(
        text("review_league", lang, metric=kpi.label.get(lang) if kpi else "—"),
        className="review-heading",
    )
    if not report.league or kpi is None:
        return [title, message_panel(text("review_no_league", lang))]
    ranked = [row for row in report.league if row.rank is not None]
    head = html.Tr(
        [
            html.Th(text(key, lang))
            for key in (
                "review_rank",
                "review_unit",
                "review_this_week",
                "review_last_rank",
                "review_movement",
            )
        ]
    )
    body = [
        html.Tr(
            [
                html.Td(str(row.rank), className="review-num"),
                html.Th(row.name.get(lang), scope="row"),
                html.Td(value_text(kpi, row.value, lang), className="review-num"),
                html.Td(str(row.last_rank) if row.last_rank else "—", className="review-num"),
                html.Td(_movement(row, lang)),
            ],
            className="review-league-row",
        )
        for row in ranked
    ]
    parts: list[Any] = [
        title,
        html.Table([html.Thead(head), html.Tbody(body)], className="review-table"),
    ]
    unranked = len(report.league) - len(ranked)
    if unranked:
        parts.append(html.P(text("review_unranked", lang, count=unranked), className="panel-note"))
    return parts


def alerts_summary(summary: AlertsSummary, lang: str, tz: ZoneInfo) -> list[Any]:
    title = html.H2(text("review_alerts", lang), className="review-heading")
    if summary.total == 0:
        return [title, message_panel(text("review_no_alerts", lang))]
    chips = [
        html.Span(
            f"{text('review_severity_' + severity, lang)}: {count}",
            className=f"review-chip severity-{severity}",
        )
        for severity, count in summary.by_severity.items()
    ]
    parts: list[Any] = [
        title,
        html.P(
            [
                html.Strong(text("review_alerts_total", lang, count=summary.total)),
                " · ",
                html.Span(text("review_unacked", lang, count=summary.unacknowledged)),
            ]
        ),
        html.Div(chips, className="review-chips"),
    ]
    if summary.longest is not None:
        longest = summary.longest
        parts.append(
            html.P(
                text(
                    "review_longest",
                    lang,
                    title=longest.title.get(lang),
                    unit=longest.unit_name.get(lang),
                    start=format_when(longest.started, tz),
                    duration=format_duration(longest.minutes * 60, lang),
                ),
                className="review-longest",
            )
        )
    return parts


def export_links(csv_href: str, xlsx_href: str, pdf_href: str, lang: str) -> list[Any]:
    """ "Tải CSV", and the XLSX and PDF files (served by dashboard/review_exports)."""
    return [
        csv_link(csv_href, lang, class_name="csv-link"),
        html.A(text("review_xlsx", lang), href=xlsx_href, id=REVIEW_XLSX, className="csv-link"),
        html.A(text("review_pdf", lang), href=pdf_href, id=REVIEW_PDF, className="csv-link"),
    ]


def review_layout(lang: str) -> list[Any]:
    """The page's body (the shell around it: dashboard/pages.py); filled by the callbacks."""
    loading = message_panel(text("review_loading", lang))
    return [
        html.Div(
            [
                html.Label(text("review_unit", lang), htmlFor=REVIEW_UNIT, id=REVIEW_UNIT_LABEL),
                dcc.Dropdown(id=REVIEW_UNIT, clearable=False, className="review-unit-picker"),
                html.Nav(id=REVIEW_WEEK, className="review-week"),
                html.Div(id=REVIEW_EXPORTS, className="review-exports"),
            ],
            className="review-controls",
        ),
        html.Div(id=REVIEW_MESSAGE, role="status"),
        html.Section(loading, id=REVIEW_KPIS, className="review-section"),
        html.Div(
            [
                html.Section(id=REVIEW_LEAGUE, className="review-section"),
                html.Section(id=REVIEW_ALERTS, className="review-section"),
            ],
            className="review-columns",
        ),
    ]


def kpis_section(report: WeeklyReport, lang: str, tz: ZoneInfo) -> list[Any]:
    return [
        html.H2(
            [report.unit_name.get(lang), " — ", text("review_kpis", lang)],
            className="review-heading",
        ),
        kpi_table(report, lang),
        html.P(
            text("review_generated", lang, time=format_when(report.generated_at, tz)),
            className="panel-note",
        ),
    ]
