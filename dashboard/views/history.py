"""What the map says when it shows a day in the past: the note above the map and, on each
unit mapped from pre-2025 units, the old units it came from (docs/design/009). Pure."""

from __future__ import annotations

from datetime import date

import pandas as pd

from dashboard.history import source_codes
from dashboard.i18n import text
from dashboard.views.map import MapArrays, MapUnit


def sources_text(sources: str, lang: str) -> str:
    """ "20194, 20296*" → "từ 2 đơn vị cũ: 20194, 20296 (một phần)"."""
    codes = source_codes(sources)
    listed = ", ".join(
        f"{code} ({text('history_in_part', lang)})" if partial else code for code, partial in codes
    )
    return text("history_sources", lang, count=len(codes), codes=listed)


def mark_mapped(arrays: MapArrays, units: list[MapUnit], values: pd.DataFrame, lang: str) -> int:
    """Add the old units to the hover text of every mapped unit; how many were mapped."""
    if "mapped" not in values.columns:
        return 0
    mapped = 0
    for position, unit in enumerate(units):
        if unit.code in values.index and bool(values.at[unit.code, "mapped"]):
            note = sources_text(str(values.at[unit.code, "sources"]), lang)
            arrays.customdata[position][3] = f"{arrays.customdata[position][3]}<br>{note}"
            mapped += 1
    return mapped


def history_note(day: date | None, mapped: int, reform: date | None, lang: str) -> str:
    """The line above the map: "" when live; the day shown, and whether values were
    mapped from the units before the reform."""
    if day is None:
        return ""
    shown = text("history_day", lang, day=day.strftime("%d/%m/%Y"))
    if mapped and reform is not None:
        before = text("history_mapped", lang, reform=reform.strftime("%d/%m/%Y"), count=mapped)
        return f"{shown} · {before}"
    return shown
