"""The words and numbers of the review outside the page, shared by the XLSX, the PDF and the
Monday e-mail (so the three say the same), and the e-mail's subject and text body.

Vietnamese first, English second: every text is a (vi, en) pair in ``TEXT``; numbers use
core.text (comma decimal in Vietnamese); times are shown in the site's time zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from core.text import format_number
from reports.model import KpiRow, LeagueRow, Status, WeeklyReport

TEXT: Final[dict[str, tuple[str, str]]] = {
    "title": ("Báo cáo KPI tuần", "Weekly KPI review"),
    "unit": ("Đơn vị", "Unit"),
    "week": ("Tuần", "Week"),
    "period": ("Từ ngày – đến ngày", "From – to"),
    "generated_at": ("Lập lúc", "Generated at"),
    "kpis": ("Chỉ số", "KPIs"),
    "kpi": ("Chỉ số", "KPI"),
    "measure_unit": ("Đơn vị đo", "Measure"),
    "this_week": ("Tuần này", "This week"),
    "last_week": ("Tuần trước", "Last week"),
    "change": ("Thay đổi", "Change"),
    "target": ("Mục tiêu", "Target"),
    "status": ("Đánh giá", "Status"),
    "trend": ("12 tuần", "12 weeks"),
    "source": ("Căn cứ", "Source"),
    "league": ("Xếp hạng đơn vị", "League table"),
    "league_on": ("Xếp hạng theo", "Ranked on"),
    "rank": ("Hạng", "Rank"),
    "code": ("Mã", "Code"),
    "name": ("Tên đơn vị", "Unit name"),
    "value": ("Giá trị", "Value"),
    "last_rank": ("Hạng tuần trước", "Last week's rank"),
    "movement": ("Thay đổi hạng", "Movement"),
    "alerts": ("Cảnh báo", "Alerts"),
    "severity": ("Mức độ", "Severity"),
    "episodes": ("Số lần", "Episodes"),
    "total": ("Tổng", "Total"),
    "unacknowledged": ("Chưa xác nhận", "Unacknowledged"),
    "longest": ("Kéo dài nhất", "Longest"),
    "started": ("Bắt đầu", "Started"),
    "minutes": ("Số phút", "Minutes"),
    "minutes_short": ("phút", "min"),
    "notes": ("Ghi chú", "Notes"),
    "no_data": ("không có dữ liệu", "no data"),
    "none": ("không có", "none"),
    "critical": ("Nghiêm trọng", "Critical"),
    "warning": ("Cảnh báo", "Warning"),
    "info": ("Thông tin", "Info"),
    # The page's words (dashboard/views/review.py), so the files say what the screen says.
    "status_good": ("Đạt", "Met"),
    "status_warning": ("Gần đạt", "Nearly met"),
    "status_bad": ("Chưa đạt", "Not met"),
    "points": ("điểm %", "pp"),
    "status_none": ("—", "—"),
    "page": ("Trang", "Page"),
    "mail_intro": (
        "Kính gửi {name}, đây là báo cáo KPI tuần {week} của {unit}. Bản PDF đính kèm.",
        "Dear {name}, here is the weekly KPI review of {unit} for week {week}. "
        "The PDF is attached.",
    ),
    "mail_subject": ("Báo cáo tuần {week} – {unit}", "Weekly review {week} – {unit}"),
    "mail_alerts": (
        "Cảnh báo trong tuần: {total} (nghiêm trọng {critical}, cảnh báo {warning}, "
        "thông tin {info}); chưa xác nhận: {unack}",
        "Alerts this week: {total} (critical {critical}, warning {warning}, info {info}); "
        "unacknowledged: {unack}",
    ),
}

SEVERITIES: Final = ("critical", "warning", "info")


def text(key: str, lang: str) -> str:
    vi, en = TEXT[key]
    return vi if lang == "vi" else en


def status_word(status: Status, lang: str) -> str:
    return text(f"status_{status}", lang)


def shown_value(row: KpiRow, value: float | None) -> float | None:
    """The number as the page shows it: a ratio × 100 (its unit is then "%")."""
    if value is None:
        return None
    return value * 100 if row.is_ratio else value


def format_kpi(row: KpiRow, value: float | None, lang: str, *, signed: bool = False) -> str:
    """``value`` of ``row`` as text: "92,5 %" (vi) / "92.5 %" (en), "không có dữ liệu" for
    None; ``signed`` (a change) puts "+" before a rise and shows a ratio's change in
    percentage points ("+2,5 điểm %")."""
    number = shown_value(row, value)
    if number is None:
        return text("no_data", lang)
    shown = format_number(number, row.decimals, lang)
    if not signed:
        return f"{shown} {row.unit}".rstrip()
    if number > 0:
        shown = "+" + shown
    # A ratio's change is in percentage points, as on the page: "+2,5 điểm %".
    return f"{shown} {text('points', lang) if row.is_ratio else row.unit}".rstrip()


def format_movement(row: LeagueRow) -> str:
    """ "+2" up two places, "-1" down one, "0", "" when unranked (Noto Sans has no arrows)."""
    if row.movement is None:
        return ""
    return f"+{row.movement}" if row.movement > 0 else str(row.movement)


def local(moment: datetime, report: WeeklyReport) -> datetime:
    """``moment`` in the site's time zone: the one the report's week starts in."""
    return moment.astimezone(report.starts.tzinfo)


def week_dates(report: WeeklyReport) -> str:
    """ "16/11/2026 – 22/11/2026": Monday to Sunday of the week, local."""
    first = local(report.starts, report).date()
    last = (local(report.ends, report) - timedelta(seconds=1)).date()
    return f"{first:%d/%m/%Y} – {last:%d/%m/%Y}"


def mail_subject(report: WeeklyReport, lang: str) -> str:
    return text("mail_subject", lang).format(week=report.week, unit=report.unit_name.get(lang))


def mail_body(report: WeeklyReport, lang: str, recipient_name: str) -> str:
    """The text body: greeting, one line per KPI, the alerts counts; ``lang`` first, then
    the other language below a rule, so a forwarded e-mail reads in both."""
    other = "en" if lang == "vi" else "vi"
    parts = [_mail_part(report, shown, recipient_name) for shown in (lang, other)]
    return "\n\n---\n\n".join(parts)


def _mail_part(report: WeeklyReport, lang: str, recipient_name: str) -> str:
    unit = report.unit_name.get(lang)
    lines = [
        text("mail_intro", lang).format(name=recipient_name, week=report.week, unit=unit),
        f"{text('week', lang)} {report.week}: {week_dates(report)}",
        "",
    ]
    for row in report.kpis:
        target = "" if row.target is None else f"; {text('target', lang).lower()} "
        if row.target is not None:
            target += format_kpi(row, row.target, lang)
        status = "" if row.status == "none" else f" – {status_word(row.status, lang)}"
        lines.append(
            f"- {row.label.get(lang)}: {format_kpi(row, row.this_week, lang)} "
            f"({text('last_week', lang).lower()} {format_kpi(row, row.last_week, lang)}"
            f"{target}){status}"
        )
    counts = report.alerts.by_severity
    lines += [
        "",
        text("mail_alerts", lang).format(
            total=report.alerts.total,
            critical=counts.get("critical", 0),
            warning=counts.get("warning", 0),
            info=counts.get("info", 0),
            unack=report.alerts.unacknowledged,
        ),
    ]
    lines += [f"* {note}" for note in report.notes]
    lines += ["", report.site_name.get(lang)]
    return "\n".join(lines)


def file_stem(unit_code: str, week: object, lang: str) -> str:
    """The files' name without extension: "bao-cao-tuan-48-2026-W47" (en "weekly-review-…")."""
    prefix = "bao-cao-tuan" if lang == "vi" else "weekly-review"
    return f"{prefix}-{unit_code}-{week}"
