"""Every text the dashboard shows, Vietnamese first, English second, plus number and
time formatting per language.

Views never hold string literals for people: they call :func:`text` with a key from
:data:`TEXTS`. Names of units, metrics and bands come from the hierarchy and the
metric catalogue in the settings, which carry their own vi/en labels.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo

Lang = Literal["vi", "en"]
LANGS: Final[tuple[Lang, ...]] = ("vi", "en")

# key -> (Vietnamese, English). Placeholders in braces are filled by ``text(key, lang, **values)``.
TEXTS: Final[dict[str, tuple[str, str]]] = {
    "metric_label": ("Chỉ số", "Metric"),
    "lang_label": ("Ngôn ngữ", "Language"),
    "lang_vi": ("Tiếng Việt", "Tiếng Việt"),
    "lang_en": ("English", "English"),
    "updated_at": ("Cập nhật lúc {time}", "Updated at {time}"),
    "dead_letters": ("Tin lỗi: {count}", "Rejected messages: {count}"),
    "dead_letters_hint": (
        "Số bản tin từ thiết bị không đọc được, đang được lưu lại để kiểm tra",
        "Messages from devices that could not be read, kept for checking",
    ),
    "no_data": ("Không có dữ liệu", "No data"),
    "stale": ("Dữ liệu cũ", "Old data"),
    "stale_since": ("Dữ liệu cũ, từ {time}", "Old data, from {time}"),
    "stale_detail": ("quá {minutes} phút chưa cập nhật", "no update for {minutes} min"),
    "load_error": (
        "Không tải được dữ liệu, sẽ thử lại sau {seconds} giây",
        "Could not load data, retrying in {seconds} s",
    ),
    "pick_unit": (
        "Bấm vào một xã, phường trên bản đồ để xem chi tiết",
        "Click a commune on the map to see its details",
    ),
    "unknown_unit": (
        "Không có đơn vị hành chính mã {code}",
        "There is no administrative unit with code {code}",
    ),
    "latest_values": ("Giá trị mới nhất", "Latest values"),
    "trend_title": ("{metric} ({unit}), 24 giờ qua", "{metric} ({unit}), last 24 hours"),
    "trend_no_data": ("Không có dữ liệu trong 24 giờ qua", "No data in the last 24 hours"),
    "devices": ("{count} thiết bị", "{count} devices"),
    "measured_at": ("lúc {time}", "at {time}"),
    "band_range": ("{low}–{high} {unit}", "{low}–{high} {unit}"),
    "band_above": ("trên {low} {unit}", "above {low} {unit}"),
    "band_up_to": ("đến {high} {unit}", "up to {high} {unit}"),
    "legend_title": ("{metric} ({unit})", "{metric} ({unit})"),
    "time_axis": ("Giờ", "Time"),
}


def text(key: str, lang: str, **values: object) -> str:
    """The text for ``key`` in ``lang`` (Vietnamese for anything but "en"), NFC-normalised.

    Raises KeyError for an unknown key: a typo should fail a test, not show a blank."""
    vi, en = TEXTS[key]
    template = en if lang == "en" else vi
    filled = template.format(**values).replace(" ()", "") if values else template
    return unicodedata.normalize("NFC", filled)  # a metric without a unit leaves no "()"


def as_lang(value: object, default: Lang = "vi") -> Lang:
    """A language code from user input (URL, selector); anything unknown is the default."""
    if value == "en":
        return "en"
    if value == "vi":
        return "vi"
    return default


def format_clock(ts: datetime, tz: ZoneInfo) -> str:
    """HH:MM:SS in the local time zone."""
    return ts.astimezone(tz).strftime("%H:%M:%S")


def format_when(ts: datetime, tz: ZoneInfo) -> str:
    """Local time and date, "14:05 02/11" (day/month, as written in Vietnam)."""
    return ts.astimezone(tz).strftime("%H:%M %d/%m")
