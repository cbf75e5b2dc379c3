"""The devices page's components (``/devices/``): filters, the counts per status and kind,
the table of registered devices worst first, and the devices sending data without being
registered, with how to register them. Pure: frames in, components out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import pandas as pd
from dash import dcc, html

from core.settings import MetricSettings
from dashboard.devices_status import LOOKBACK, STATUSES
from dashboard.exports import csv_link as export_link
from dashboard.i18n import add_texts, format_duration, format_number, format_when, text
from dashboard.views.bands import BandScale, band_scale, value_text
from dashboard.views.devices import kind_label
from dashboard.views.panel import message_panel

# Rows drawn, worst first (a refresh redraws them: 1,000 rows are 14,000 components and
# a second of work per screen); the counts and the CSV cover every device.
DISPLAY_LIMIT: Final = 100  # rows drawn: Dash builds ~14 components a row (CSV: all)
SUMMARY_ORDER: Final = ("online", "late", "offline")  # as people say it: the good news first

# Component ids of this page (dashboard/devices_page.py binds them).
DEV_UNIT = "dev-unit"
DEV_KIND = "dev-kind"
DEV_STATUS = "dev-status"
DEV_UNIT_LABEL = "dev-unit-label"
DEV_KIND_LABEL = "dev-kind-label"
DEV_STATUS_LABEL = "dev-status-label"
DEV_UPDATED = "dev-updated"
DEV_MESSAGE = "dev-message"
DEV_SUMMARY = "dev-summary"
DEV_TABLE_TITLE = "dev-table-title"
DEV_TABLE = "dev-table"
DEV_CSV = "dev-csv"
DEV_UNREG_TITLE = "dev-unregistered-title"
DEV_UNREG = "dev-unregistered"
DEV_UNREG_CSV = "dev-unregistered-csv"

add_texts(
    {
        "dev_title": ("Tình trạng thiết bị", "Device status"),
        "dev_status_online": ("Trực tuyến", "Online"),
        "dev_status_late": ("Trễ", "Late"),
        "dev_status_offline": ("Mất kết nối", "Offline"),
        "dev_status_hint": (
            "Gửi dữ liệu mỗi {interval}: trực tuyến nếu bản tin cuối trong vòng 2 chu kỳ,"
            " trễ nếu trong vòng 5 chu kỳ, quá nữa là mất kết nối",
            "Reports every {interval}: online when the last message is within 2 intervals,"
            " late within 5, offline after that",
        ),
        "dev_filter_unit": ("Đơn vị hành chính", "Administrative unit"),
        "dev_filter_unit_all": ("Tất cả đơn vị", "All units"),
        "dev_filter_kind": ("Loại thiết bị", "Device kind"),
        "dev_filter_kind_all": ("Tất cả các loại", "All kinds"),
        "dev_filter_status": ("Trạng thái", "Status"),
        "dev_filter_status_all": ("Mọi trạng thái", "Any status"),
        "dev_registered": ("Thiết bị đã đăng ký", "Registered devices"),
        "dev_col_device": ("Thiết bị", "Device"),
        "dev_col_kind": ("Loại", "Kind"),
        "dev_col_unit": ("Đơn vị hành chính", "Administrative unit"),
        "dev_col_status": ("Trạng thái", "Status"),
        "dev_col_last_seen": ("Bản tin cuối", "Last message"),
        "dev_col_interval": ("Chu kỳ gửi", "Reports every"),
        "dev_col_values": ("Giá trị mới nhất", "Latest values"),
        "dev_never_seen": (
            "Không có bản tin nào trong {days} ngày qua",
            "No message in the last {days} days",
        ),
        "dev_no_unit": ("Ngoài mọi đơn vị", "Outside every unit"),
        "dev_total": ("Tổng {count} thiết bị", "{count} devices in all"),
        "dev_count": ("{label} {count}", "{label} {count}"),
        "dev_loading": ("Đang tải…", "Loading…"),
        "dev_none_registered": (
            "Chưa có thiết bị nào được đăng ký",
            "No device is registered yet",
        ),
        "dev_none_visible": (
            "Không có thiết bị nào trong các đơn vị bạn được xem",
            "There is no device in the units you may see",
        ),
        "dev_none_match": ("Không có thiết bị nào khớp bộ lọc", "No device matches the filters"),
        "dev_shown_first": (
            "Hiển thị {shown} trên {total} thiết bị, xấu nhất trước; tải CSV để xem tất cả",
            "Showing {shown} of {total} devices, worst first; download the CSV for all",
        ),
        "dev_unreg_title": (
            "Thiết bị đang gửi dữ liệu nhưng chưa đăng ký",
            "Devices sending data but not registered",
        ),
    }
)


def present(value: Any) -> bool:
    """Not None, NaN, NaT or <NA>."""
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):  # not a scalar
        return True


def data_attrs(**values: str) -> dict[str, Any]:
    """``data-*`` attributes (for styling and for tests to find things): data_attrs(status=...)."""
    return {f"data-{key}": value for key, value in values.items()}


def status_label(status: str, lang: str) -> str:
    return text(f"dev_status_{status}", lang)


def status_badge(status: str, lang: str, interval_s: float | None = None) -> html.Span:
    """The status in words on its colour (never the colour alone), the rule as a tooltip."""
    title = (
        None
        if interval_s is None
        else text("dev_status_hint", lang, interval=format_duration(interval_s, lang))
    )
    return html.Span(status_label(status, lang), className=f"state dev-{status}", title=title)


def last_seen_text(value: Any, now: datetime, tz: ZoneInfo, lang: str) -> str:
    """ "08:05 02/11 (3 phút trước)" in local time; never seen: within the lookback."""
    if not present(value):
        return text("dev_never_seen", lang, days=LOOKBACK.days)
    seen = pd.Timestamp(value).to_pydatetime()
    age = format_duration(max((now - seen).total_seconds(), 0.0), lang)
    return text("ago", lang, time=format_when(seen, tz), age=age)


def summary(
    counts: Mapping[str, Mapping[str, int]],
    lang: str,
    href: Callable[[str | None, str | None], str],
) -> html.Div:
    """ "Tổng 150 thiết bị | Trực tuyến 142 | Trễ 3 | Mất kết nối 5" (a pill per status,
    in words), then the same per kind; each count links to the table filtered by it
    (``href(kind, status)``)."""

    def line(kind: str | None, by_status: Mapping[str, int]) -> html.Div:
        total = sum(by_status.values())
        head = (
            text("dev_total", lang, count=format_number(total, lang))
            if kind is None
            else f"{kind_label(kind, lang)} ({format_number(total, lang)})"
        )
        parts: list[Any] = [dcc.Link(head, href=href(kind, None), className="dev-count-head")]
        for status in SUMMARY_ORDER:
            label = text(
                "dev_count",
                lang,
                label=status_label(status, lang),
                count=format_number(by_status.get(status, 0), lang),
            )
            link = dcc.Link(label, href=href(kind, status), className="dev-count-link")
            parts.append(
                html.Span(
                    link,
                    className=f"dev-count dev-count-{status}",
                    **data_attrs(status=status, count=str(by_status.get(status, 0))),
                )
            )
        return html.Div(parts, className="dev-summary-line", **data_attrs(kind=kind or ""))

    lines = [line(None, counts.get("", {}))]
    lines.extend(line(kind, by_status) for kind, by_status in counts.items() if kind)
    return html.Div(lines, className="dev-summary-lines")


def values_cell(
    row: Mapping[Any, Any],
    metrics: Mapping[str, MetricSettings],
    lang: str,
    scales: Mapping[str, BandScale] | None = None,
) -> Any:
    """ "Bụi mịn PM2.5: 35,2 µg/m³" per metric of the device's kind that has a value
    (``scales``: each metric's :func:`band_scale`, made once per table)."""
    items = []
    for metric_id, metric in metrics.items():
        value: Any = row.get(metric_id)
        if metric.kind != row.get("kind") or not present(value):
            continue
        scale = scales[metric_id] if scales is not None else band_scale(metric)
        shown = value_text(scale, float(value), lang)
        items.append(html.Li(f"{metric.label.get(lang)}: {shown}", **data_attrs(metric=metric_id)))
    return html.Ul(items, className="dev-values") if items else not_available(lang)


def unit_cell(row: Mapping[Any, Any], lang: str, none: str = "dev_no_unit") -> Any:
    if not isinstance(row.get("unit_code"), str):
        return html.Span(text(none, lang), className="dev-muted")
    return row["unit_name"]


def table_header(keys: tuple[str, ...], lang: str) -> html.Thead:
    return html.Thead(html.Tr([html.Th(text(key, lang), scope="col") for key in keys]))


def devices_table(
    frame: pd.DataFrame,
    metrics: Mapping[str, MetricSettings],
    *,
    lang: str,
    now: datetime,
    tz: ZoneInfo,
    empty: str,
    limit: int = DISPLAY_LIMIT,
) -> html.Div:
    """The registered devices in the frame's order (worst first), or the ``empty`` text
    key's message."""
    if frame.empty:
        return message_panel(text(empty, lang))
    keys = (
        "dev_col_device",
        "dev_col_kind",
        "dev_col_unit",
        "dev_col_status",
        "dev_col_last_seen",
        "dev_col_interval",
        "dev_col_values",
    )
    scales = {metric_id: band_scale(metric) for metric_id, metric in metrics.items()}
    rows = []
    for record in frame.head(limit).to_dict("records"):
        status = str(record["status"])
        device = [html.Span(record["name"] or record["device_id"], className="dev-name")]
        if record["name"]:
            device.append(html.Span(record["device_id"], className="dev-id"))
        cells = [
            html.Th(device, scope="row"),
            html.Td(kind_label(str(record["kind"]), lang)),
            html.Td(unit_cell(record, lang)),
            html.Td(status_badge(status, lang, float(record["interval_s"]))),
            html.Td(last_seen_text(record["last_seen"], now, tz, lang)),
            html.Td(format_duration(float(record["interval_s"]), lang)),
            html.Td(values_cell(record, metrics, lang, scales)),
        ]
        rows.append(
            html.Tr(
                cells,
                className=f"dev-row dev-row-{status}",
                **data_attrs(device=str(record["device_id"]), status=status),
            )
        )
    parts: list[Any] = []
    if len(frame) > limit:
        shown, total = format_number(limit, lang), format_number(len(frame), lang)
        parts.append(html.P(text("dev_shown_first", lang, shown=shown, total=total)))
    parts.append(html.Table([table_header(keys, lang), html.Tbody(rows)], className="dev-table"))
    return html.Div(parts)


def not_available(lang: str) -> str:
    return text("not_available", lang)


def csv_link(href: str, lang: str) -> html.A:
    return export_link(href, lang, "download-link")


def filter_bar(lang: str) -> html.Div:
    """The three filters; their options come from the page's callback (they depend on the
    user)."""

    def control(label_id: str, label_key: str, dropdown_id: str, all_key: str) -> html.Div:
        return html.Div(
            [
                html.Label(text(label_key, lang), id=label_id, htmlFor=dropdown_id),
                dcc.Dropdown(
                    id=dropdown_id,
                    options=[],
                    placeholder=text(all_key, lang),
                    clearable=True,
                    searchable=True,
                    className="dev-dropdown",
                ),
            ],
            className="control dev-filter",
        )

    return html.Div(
        [
            control(DEV_UNIT_LABEL, "dev_filter_unit", DEV_UNIT, "dev_filter_unit_all"),
            control(DEV_KIND_LABEL, "dev_filter_kind", DEV_KIND, "dev_filter_kind_all"),
            control(DEV_STATUS_LABEL, "dev_filter_status", DEV_STATUS, "dev_filter_status_all"),
        ],
        className="dev-filters",
    )


def devices_layout(lang: str) -> list[Any]:
    """The page's body (the shell around it: dashboard/pages.py). Tables arrive through
    the render callback; until then they say "loading"."""
    loading = message_panel(text("dev_loading", lang))
    return [
        filter_bar(lang),
        html.Div(
            [html.Span(id=DEV_UPDATED, className="updated-at"), html.Div(id=DEV_MESSAGE)],
            className="status dev-status-line",
            role="status",
        ),
        html.Div(loading, id=DEV_SUMMARY, className="dev-summary"),
        html.Section(
            [
                html.Div(
                    [
                        html.H2(text("dev_registered", lang), id=DEV_TABLE_TITLE),
                        html.Div(id=DEV_CSV),
                    ],
                    className="dev-section-head",
                ),
                html.Div(loading, id=DEV_TABLE),
            ],
            className="dev-section",
        ),
        html.Section(
            [
                html.Div(
                    [
                        html.H2(text("dev_unreg_title", lang), id=DEV_UNREG_TITLE),
                        html.Div(id=DEV_UNREG_CSV),
                    ],
                    className="dev-section-head",
                ),
                html.Div(loading, id=DEV_UNREG),
            ],
            className="dev-section",
        ),
    ]


def status_options(lang: str) -> list[dict[str, str]]:
    return [{"label": status_label(status, lang), "value": status} for status in STATUSES]
