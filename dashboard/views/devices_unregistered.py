"""The devices page's table of devices that send data but are not registered, and how to
register them (dashboard/devices_unregistered.py gives the rows). Pure: frame in,
components out."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from dash import html

from dashboard.i18n import add_texts, format_number, format_when, text
from dashboard.views.devices import kind_label
from dashboard.views.devices_page import (
    DISPLAY_LIMIT,
    data_attrs,
    last_seen_text,
    not_available,
    present,
    table_header,
    unit_cell,
)
from dashboard.views.panel import message_panel

add_texts(
    {
        "dev_unreg_none": (
            "Không có thiết bị chưa đăng ký nào đang gửi dữ liệu",
            "No unregistered device is sending data",
        ),
        "dev_col_device_id": ("Mã thiết bị", "Device id"),
        "dev_col_why": ("Tình trạng", "Why"),
        "dev_col_first_seen": ("Lần đầu", "First seen"),
        "dev_col_count": ("Số bản tin", "Messages"),
        "dev_why_no_position": (
            "Chưa đăng ký và không gửi tọa độ",
            "Not registered and sends no position",
        ),
        "dev_why_outside_map": ("Tọa độ nằm ngoài bản đồ", "Its position is outside the map"),
        "dev_why_not_registered": (
            "Chưa đăng ký; đơn vị theo tọa độ thiết bị gửi",
            "Not registered; unit from the position it sends",
        ),
        "dev_why_unplaced": (
            "Chưa đăng ký; chưa rõ đơn vị",
            "Not registered; unit not known",
        ),
        "dev_register_how": (
            "Cách đăng ký: thêm một dòng device_id,kind,name,lon,lat (kinh độ, vĩ độ WGS84)"
            " vào tệp {path}, rồi khởi động lại tiến trình thu nhận (cityops ingest)."
            " Trang này tự đọc lại tệp khi tệp thay đổi. Ví dụ:",
            "To register one, add a line device_id,kind,name,lon,lat (WGS84 longitude,"
            " latitude) to {path}, then restart the ingest (cityops ingest). This page reads"
            " the file again when it changes. For example:",
        ),
        "dev_register_example": (
            "{device_id},{kind},Tên trạm,108.2208,16.0678",
            "{device_id},{kind},Station name,108.2208,16.0678",
        ),
        "dev_register_ask": (
            "Đề nghị quản trị viên đăng ký các thiết bị này vào danh mục thiết bị"
            " (device_id,kind,name,lon,lat).",
            "Ask an administrator to add these devices to the device registry"
            " (device_id,kind,name,lon,lat).",
        ),
        "dev_unit_unknown": ("Chưa rõ", "Not known"),
    }
)


def _when(value: Any, tz: ZoneInfo, lang: str) -> str:
    return (
        format_when(pd.Timestamp(value).to_pydatetime(), tz)
        if present(value)
        else not_available(lang)
    )


def unregistered_table(
    frame: pd.DataFrame,
    *,
    lang: str,
    now: datetime,
    tz: ZoneInfo,
    registry_path: str | None,
    limit: int = DISPLAY_LIMIT,
) -> html.Div:
    """The unregistered devices, newest first, and how to register them: the registry's
    path and a line to copy for an admin (``registry_path``), "ask an administrator" for
    everyone else."""
    if frame.empty:
        return message_panel(text("dev_unreg_none", lang))
    keys = (
        "dev_col_device_id",
        "dev_col_kind",
        "dev_col_unit",
        "dev_col_why",
        "dev_col_first_seen",
        "dev_col_last_seen",
        "dev_col_count",
    )
    rows = []
    for record in frame.head(limit).to_dict("records"):
        count = record["count"]
        cells = [
            html.Th(record["device_id"], scope="row"),
            html.Td(kind_label(str(record["kind"]), lang)),
            html.Td(unit_cell(record, lang, "dev_unit_unknown")),
            html.Td(text(f"dev_why_{record['why']}", lang)),
            html.Td(_when(record["first_seen"], tz, lang)),
            html.Td(last_seen_text(record["last_seen"], now, tz, lang)),
            html.Td(format_number(int(count), lang) if present(count) else not_available(lang)),
        ]
        rows.append(html.Tr(cells, **data_attrs(device=str(record["device_id"]))))
    first = frame.iloc[0]
    if registry_path is not None:
        example = text(
            "dev_register_example", lang, device_id=first["device_id"], kind=first["kind"]
        )
        how: list[Any] = [
            html.P(text("dev_register_how", lang, path=registry_path)),
            html.Pre(
                html.Code(f"device_id,kind,name,lon,lat\n{example}"), className="dev-register-line"
            ),
        ]
    else:
        how = [html.P(text("dev_register_ask", lang))]
    table = html.Table([table_header(keys, lang), html.Tbody(rows)], className="dev-table")
    return html.Div([table, html.Div(how, className="dev-register")])
