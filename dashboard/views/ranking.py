"""The ranking table of a unit's page: its children (or devices) by one metric, best and
worst marked in words and colour. Pure: a frame of :func:`dashboard.ranking.children_ranking`
in, an HTML table out.

Sorting is by link: each sortable header links to the same page with ``?sort=<column>``
(``-<column>`` descending), so the order is part of the URL like the metric and range,
and the table needs no client-side component (Dash 4 deprecates its DataTable).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import pandas as pd
from dash import dcc, html

from core.settings import MetricSettings
from dashboard.i18n import add_texts, format_when, text
from dashboard.views.bands import band_colour, band_label, band_scale, value_text
from dashboard.views.devices import state_label
from dashboard.views.kpi import data_attributes
from dashboard.views.nav import aria
from layers.levels import fold

# column -> what it sorts by; the table's default order is by rank (best first).
SORTABLE: Final = ("rank", "name", "value", "devices", "last")
DEFAULT_SORT: Final = ("rank", False)

add_texts(
    {
        "unit_col_rank": ("Hạng", "Rank"),
        "unit_col_unit": ("Đơn vị", "Unit"),
        "unit_col_device": ("Thiết bị", "Device"),
        "unit_col_value": ("{metric} ({unit})", "{metric} ({unit})"),
        "unit_col_band": ("Mức", "Band"),
        "unit_col_devices": ("Số thiết bị", "Devices"),
        "unit_col_state": ("Trạng thái", "State"),
        "unit_col_last": ("Lần đo cuối", "Last reading"),
        "unit_col_mark": ("Ghi chú", "Note"),
        "unit_best": ("Tốt nhất", "Best"),
        "unit_worst": ("Kém nhất", "Worst"),
        "unit_sort_hint": ("Bấm tiêu đề cột để sắp xếp", "Click a column title to sort"),
    }
)


def parse_sort(value: object) -> tuple[str, bool]:
    """``?sort=value`` → ("value", False); ``-value`` → descending; anything else: by rank."""
    raw = value if isinstance(value, str) else ""
    column = raw.lstrip("-")
    return (column, raw.startswith("-")) if column in SORTABLE else DEFAULT_SORT


def sort_value(column: str, descending: bool) -> str:
    return f"-{column}" if descending else column


def sorted_ranking(frame: pd.DataFrame, column: str, descending: bool, lang: str) -> pd.DataFrame:
    """The rows in the chosen order; rows without a value stay last whatever the direction,
    ties keep the rank order."""
    if column == "rank" and not descending:
        return frame
    names = frame["name_en"] if lang == "en" else frame["name_vi"]
    keys = {
        "rank": frame["rank"],
        "name": names.map(lambda name: fold(str(name))),
        "value": frame["value"],
        "devices": frame["devices"],
        "last": frame["ts"],
    }
    key = keys[column]
    missing = key.isna()
    present = frame[~missing].assign(_key=key[~missing])
    ordered = present.sort_values("_key", ascending=not descending, kind="stable")
    return pd.concat([ordered.drop(columns="_key"), frame[missing]])


def _text_colour(background: str) -> str:
    red, green, blue = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    return "#111827" if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else "#FFFFFF"


def _header(
    column: str,
    label: str,
    sort: tuple[str, bool],
    sort_href: Callable[[str], str] | None,
) -> html.Th:
    if sort_href is None or column not in SORTABLE:
        return html.Th(label, scope="col")
    current, descending = sort
    chosen = column == current
    # A click on the sorted column turns it round; on another, sorts ascending by it.
    target = sort_value(column, not descending if chosen else False)
    arrow = (" ▼" if descending else " ▲") if chosen else ""
    state = ("descending" if descending else "ascending") if chosen else "none"
    return html.Th(
        dcc.Link(label + arrow, href=sort_href(target), className="sort-link"),
        scope="col",
        **aria(sort=state),
    )


def _when(ts: Any, tz: ZoneInfo) -> str:
    if ts is None or pd.isna(ts):
        return ""
    moment: datetime = pd.Timestamp(ts).to_pydatetime()
    return format_when(moment, tz)


def ranking_table(
    frame: pd.DataFrame,
    metric: MetricSettings,
    *,
    lang: str,
    tz: ZoneInfo,
    table_id: str,
    link: Callable[[str], str] | None = None,
    sort: tuple[str, bool] = DEFAULT_SORT,
    sort_href: Callable[[str], str] | None = None,
) -> html.Table:
    """One row per unit (or device): rank, name (a link to its page when ``link``), value,
    band (its colour), devices or state, last reading, and "best"/"worst" in words."""
    devices = bool(len(frame)) and frame["kind"].iloc[0] == "device"
    scale = band_scale(metric)
    unit_label = metric.unit or ""
    columns: list[tuple[str, str]] = [
        ("rank", text("unit_col_rank", lang)),
        ("name", text("unit_col_device" if devices else "unit_col_unit", lang)),
        ("value", text("unit_col_value", lang, metric=metric.label.get(lang), unit=unit_label)),
    ]
    if metric.bands:
        columns.append(("band", text("unit_col_band", lang)))
    columns.append(
        ("state", text("unit_col_state", lang))
        if devices
        else ("devices", text("unit_col_devices", lang))
    )
    columns += [("last", text("unit_col_last", lang)), ("mark", text("unit_col_mark", lang))]
    head = html.Thead(html.Tr([_header(col, label, sort, sort_href) for col, label in columns]))
    rows = []
    shown = sorted_ranking(frame, sort[0], sort[1], lang)
    for code, row in zip(shown.index, shown.to_dict("records"), strict=True):
        value = float(row["value"])
        present = not math.isnan(value)
        name = str(row["name_en"] if lang == "en" else row["name_vi"])
        mark = "best" if row["best"] else ("worst" if row["worst"] else "")
        cells: dict[str, Any] = {
            "rank": html.Td("" if math.isnan(row["rank"]) else str(int(row["rank"]))),
            "name": html.Th(
                dcc.Link(name, href=link(str(code))) if link is not None else name, scope="row"
            ),
            "value": html.Td(
                value_text(scale, value, lang).removesuffix(unit_label).strip()
                if present
                else text("no_data", lang),
                className="num" if present else "no-data",
            ),
            "devices": html.Td(str(int(row["devices"])), className="num"),
            "state": html.Td(state_label(row["state"], lang) if row["state"] else ""),
            "last": html.Td(_when(row["ts"], tz)),
            "mark": html.Td(text(f"unit_{mark}", lang) if mark else ""),
        }
        if present and metric.bands:
            colour = band_colour(scale, value)
            cells["band"] = html.Td(
                band_label(scale, value, lang),
                style={"backgroundColor": colour, "color": _text_colour(colour)},
            )
        else:
            cells["band"] = html.Td("")
        rows.append(
            html.Tr(
                [cells[column] for column, _ in columns],
                className=f"rank-{mark}" if mark else None,
                **data_attributes(code=str(code), mark=mark),
            )
        )
    return html.Table(
        [head, html.Tbody(rows)],
        id=table_id,
        className="ranking-table",
        title=text("unit_sort_hint", lang) if sort_href is not None else None,
    )
