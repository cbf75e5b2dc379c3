"""Every text the dashboard shows, Vietnamese first, English second, plus number and
time formatting per language.

Views never hold string literals for people: they call :func:`text` with a key from
:data:`TEXTS`. Names of units, metrics and bands come from the hierarchy and the
metric catalogue in the settings, which carry their own vi/en labels.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
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
        "Bấm vào một đơn vị trên bản đồ để xem chi tiết",
        "Click a unit on the map to see its details",
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
    # Drill-down: breadcrumb and search of units.
    "breadcrumb_label": ("Vị trí trên bản đồ", "Where the map is"),
    "search_placeholder": ("Tìm xã, phường, tỉnh… hoặc mã", "Find a commune, province… or code"),
    "search_label": ("Tìm đơn vị hành chính", "Find an administrative unit"),
    "search_none": ("Không tìm thấy đơn vị nào", "No unit found"),
    # The map on a past day, across the 2025 reform (dashboard/views/history.py).
    "history_label": ("Ngày", "Day"),
    "history_live": ("Trực tiếp", "Live"),
    "history_day": ("Giá trị cuối ngày {day}", "Values at the end of {day}"),
    "history_mapped": (
        "{count} đơn vị quy đổi từ đơn vị hành chính trước {reform}",
        "{count} units mapped from the administrative units before {reform}",
    ),
    "history_sources": ("từ {count} đơn vị cũ: {codes}", "from {count} former units: {codes}"),
    "history_in_part": ("một phần", "in part"),
    # The ingest pipeline page (/pipeline/).
    "nav_pipeline": ("Tình trạng thu nhận dữ liệu", "Ingest pipeline health"),
    "nav_map": ("Về bản đồ", "Back to the map"),
    "pipeline_title": ("Tình trạng thu nhận dữ liệu", "Ingest pipeline health"),
    "download_csv": ("Tải CSV", "Download CSV"),
    "pipeline_no_data": (
        "Chưa có dữ liệu: chưa có tiến trình thu nhận nào gửi số liệu",
        "No data: no ingest worker has reported yet",
    ),
    "col_worker": ("Tiến trình", "Worker"),
    "col_status": ("Trạng thái", "Status"),
    "col_received": ("Đã nhận", "Received"),
    "col_stored": ("Đã lưu", "Stored"),
    "col_dead_lettered": ("Tin lỗi", "Dead-lettered"),
    "col_spooled": ("Qua bộ đệm đĩa", "Spooled"),
    "col_pending": ("Chờ xác nhận", "Pending"),
    "col_spool": ("Bộ đệm đĩa", "Spool"),
    "col_latency": ("Thời gian ghi p50 / p99", "Write latency p50 / p99"),
    "col_lag": ("Độ trễ", "Lag"),
    "col_last_seen": ("Lần cuối", "Last seen"),
    "status_ok": ("Hoạt động", "Running"),
    "status_stale": ("Mất tín hiệu", "Stale"),
    "status_disconnected": ("Mất kết nối MQTT", "MQTT disconnected"),
    "stale_hint": (
        "Không có số liệu mới trong {seconds} giây (3 chu kỳ)",
        "No snapshot for {seconds} s (3 intervals)",
    ),
    "reason_bad_topic": ("chủ đề MQTT sai mẫu", "topic does not match"),
    "reason_empty": ("bản tin rỗng", "empty payload"),
    "reason_too_large": ("bản tin quá lớn", "payload too large"),
    "reason_bad_utf8": ("không phải UTF-8", "not UTF-8"),
    "reason_not_json": ("không phải JSON", "not JSON"),
    "reason_bad_shape": ("sai cấu trúc", "wrong shape"),
    "reason_duplicate_key": ("trùng khóa", "duplicate key"),
    "reason_no_ts": ("thiếu thời điểm", "no timestamp"),
    "reason_bad_ts": ("thời điểm sai", "bad timestamp"),
    "reason_ts_future": ("thời điểm ở tương lai", "timestamp in the future"),
    "reason_ts_past": ("thời điểm quá cũ", "timestamp too old"),
    "reason_bad_metric_name": ("tên chỉ số sai", "bad metric name"),
    "reason_not_numeric": ("giá trị không phải số", "not a number"),
    "reason_nan_or_inf": ("NaN hoặc vô cực", "NaN or infinity"),
    "reason_out_of_range": ("ngoài khoảng cho phép", "out of range"),
    "reason_no_metrics": ("không có chỉ số", "no metrics"),
    "reason_bad_position": ("tọa độ sai", "bad position"),
    "reason_no_device": ("không rõ thiết bị", "no device id"),
    "reason_unknown_unit": ("mã đơn vị không tồn tại", "unknown unit code"),
    "reason_kind_mismatch": ("sai loại thiết bị", "device kind mismatch"),
    "reason_unsupported": ("chưa hỗ trợ", "not supported"),
    "reason_invalid": ("không hợp lệ", "invalid"),
    "reason_internal": ("lỗi nội bộ", "internal error"),
    "reason_store_refused": ("CSDL từ chối", "refused by the store"),
    "reason_other": ("khác", "other"),
    "spool_size": ("{size}, {batches} lô", "{size}, {batches} batches"),
    "not_available": ("–", "–"),
    "ago": ("{time} ({age} trước)", "{time} ({age} ago)"),
    "unit_ms": ("{value} ms", "{value} ms"),
    "unit_s": ("{value} giây", "{value} s"),
    "unit_min": ("{value} phút", "{value} min"),
    "unit_h": ("{value} giờ", "{value} h"),
    # The device layer of the map (dashboard/devices.py, dashboard/views/devices.py).
    "device_state_ok": ("Bình thường", "OK"),
    "device_state_warning": ("Cảnh báo", "Warning"),
    "device_state_alarm": ("Báo động", "Alarm"),
    "device_state_offline": ("Mất kết nối", "Offline"),
    "device_legend_title": ("Thiết bị", "Devices"),
    "device_kind_air": ("Cảm biến không khí", "Air quality sensor"),
    "device_kind_water": ("Trạm đo mực nước", "Water level gauge"),
    "device_last_seen": ("Lần cuối: {time}", "Last seen: {time}"),
    "device_never_seen": ("Chưa từng gửi dữ liệu", "Never reported"),
    "device_reading": ("{metric}: {value}", "{metric}: {value}"),
}


def add_texts(texts: Mapping[str, tuple[str, str]]) -> None:
    """Add a page's own texts (key -> (Vietnamese, English)) to :data:`TEXTS`, once, at
    import of the page's module; a key that is already taken is a programming error."""
    taken = sorted(set(texts) & set(TEXTS))
    if taken:
        raise ValueError(f"text keys already defined: {taken}")
    for key, pair in texts.items():
        if len(pair) != 2 or not all(isinstance(part, str) and part for part in pair):
            raise ValueError(f"text {key!r} needs a Vietnamese and an English string")
    TEXTS.update(texts)


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


_VI_SEPARATORS: Final = str.maketrans(",.", ".,")


def format_number(value: float, lang: str, decimals: int = 0) -> str:
    """12.345,6 in Vietnamese, 12,345.6 in English."""
    english = f"{value:,.{decimals}f}"
    if lang == "en":
        return english
    return english.translate(_VI_SEPARATORS)


def format_bytes(size: float, lang: str) -> str:
    """Binary units: 512 B, 64 KiB, 1,5 MiB (one decimal from MiB up)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            decimals = 0 if unit == "KiB" else 1
            return f"{format_number(size / scale, lang, decimals)} {unit}"
    return f"{format_number(size, lang)} B"


def format_duration(seconds: float, lang: str) -> str:
    """A short duration: 4,2 ms / 1,5 giây / 12 phút / 3 giờ (negative shown with its sign)."""
    size = abs(seconds)
    if size < 1:
        return text("unit_ms", lang, value=format_number(seconds * 1000, lang, 1))
    if size < 60:
        return text("unit_s", lang, value=format_number(seconds, lang, 1))
    if size < 3600:
        return text("unit_min", lang, value=format_number(seconds / 60, lang))
    return text("unit_h", lang, value=format_number(seconds / 3600, lang, 1))
