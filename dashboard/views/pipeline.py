"""The ingest pipeline page's table: one row per worker from its last self-metrics snapshot
(``data.pipeline_frame``). Pure: DataFrame in, components out."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from dash import html

from dashboard.i18n import format_bytes, format_duration, format_number, format_when, text
from dashboard.views.panel import message_panel
from ingest.metrics import DEAD_LETTER_REASONS, dead_letter_field

STALE_INTERVALS = 3  # a worker silent for 3 snapshot intervals is "stale"

_COLUMNS = (
    "col_worker",
    "col_status",
    "col_received",
    "col_stored",
    "col_dead_lettered",
    "col_spooled",
    "col_pending",
    "col_spool",
    "col_latency",
    "col_lag",
    "col_last_seen",
)


def _data(**values: str) -> dict[str, Any]:
    """``data-*`` attributes (for styling and for tests to find cells): data(col=...)."""
    return {f"data-{key}": value for key, value in values.items()}


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def worker_state(row: pd.Series, now: datetime, default_interval_s: float) -> str:
    """ "stale" when the last snapshot is older than 3 intervals (the worker's own interval,
    from the snapshot), "disconnected" while its MQTT session is down, else "ok"."""
    interval = _number(row.get("interval_s")) or default_interval_s
    last_seen = row["last_seen"].to_pydatetime()
    if now - last_seen > timedelta(seconds=STALE_INTERVALS * interval):
        return "stale"
    if _number(row.get("mqtt_connected")) == 0:
        return "disconnected"
    return "ok"


def _count(value: Any, lang: str) -> str:
    number = _number(value)
    return text("not_available", lang) if number is None else format_number(number, lang)


def _seconds(value: Any, lang: str) -> str:
    number = _number(value)
    return text("not_available", lang) if number is None else format_duration(number, lang)


def _dead_letters(row: pd.Series, lang: str) -> list[Any]:
    parts = []
    for reason in DEAD_LETTER_REASONS:
        count = _number(row.get(dead_letter_field(reason)))
        if count:
            label = text(f"reason_{reason}", lang)
            parts.append(html.Li(f"{label}: {format_number(count, lang)}", **_data(reason=reason)))
    cell: list[Any] = [html.Span(_count(row.get("dead_lettered"), lang), className="total")]
    if parts:
        cell.append(html.Ul(parts, className="reasons"))
    return cell


def _spool(row: pd.Series, lang: str) -> str:
    size = _number(row.get("spool_bytes"))
    batches = _number(row.get("spool_batches"))
    if size is None or batches is None:
        return text("not_available", lang)
    return text(
        "spool_size", lang, size=format_bytes(size, lang), batches=format_number(batches, lang)
    )


def _latency(row: pd.Series, lang: str) -> str:
    return f"{_seconds(row.get('write_latency_p50_s'), lang)} / " + _seconds(
        row.get("write_latency_p99_s"), lang
    )


def worker_row(
    worker: str,
    row: pd.Series,
    *,
    lang: str,
    now: datetime,
    tz: ZoneInfo,
    default_interval_s: float,
) -> html.Tr:
    state = worker_state(row, now, default_interval_s)
    last_seen = row["last_seen"].to_pydatetime()
    age = format_duration((now - last_seen).total_seconds(), lang)
    interval = _number(row.get("interval_s")) or default_interval_s
    status = html.Span(
        text(f"status_{state}", lang),
        className=f"state state-{state}",
        title=text("stale_hint", lang, seconds=round(STALE_INTERVALS * interval)),
    )
    cells: list[Any] = [
        status,
        _count(row.get("received"), lang),
        _count(row.get("stored"), lang),
        _dead_letters(row, lang),
        _count(row.get("spooled"), lang),
        _count(row.get("pending"), lang),
        _spool(row, lang),
        _latency(row, lang),
        _seconds(row.get("lag_last_s"), lang),
        text("ago", lang, time=format_when(last_seen, tz), age=age),
    ]
    tds = [
        html.Td(cell, **_data(col=key.removeprefix("col_")))
        for key, cell in zip(_COLUMNS[1:], cells, strict=True)
    ]
    return html.Tr(
        [html.Th(worker, scope="row"), *tds],
        className=f"worker-row worker-{state}",
        **_data(worker=worker, state=state),
    )


def pipeline_table(
    frame: pd.DataFrame, *, lang: str, now: datetime, tz: ZoneInfo, default_interval_s: float
) -> html.Div:
    """The workers' table, or "no data" when no worker has written a snapshot."""
    if frame.empty:
        return message_panel(text("pipeline_no_data", lang))
    header = html.Thead(html.Tr([html.Th(text(key, lang), scope="col") for key in _COLUMNS]))
    rows = [
        worker_row(
            str(worker), row, lang=lang, now=now, tz=tz, default_interval_s=default_interval_s
        )
        for worker, row in frame.iterrows()
    ]
    return html.Div(html.Table([header, html.Tbody(rows)], className="pipeline-table"))
