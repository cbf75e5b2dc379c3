"""The map legend: one row per display band of the metric, then "no data" and "old data"."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from dash import html

from core.settings import MetricSettings
from dashboard.i18n import text
from dashboard.views.bands import NO_DATA_COLOUR, band_range_text, band_scale
from dashboard.views.map import STALE_OPACITY


def legend_rows(metric: MetricSettings, lang: str) -> list[tuple[str, str, str]]:
    """(colour, band label, range) per band, e.g. ("#00E400", "Tốt", "0–25 µg/m³")."""
    scale = band_scale(metric)
    return [
        (
            colour,
            label.get(lang),
            band_range_text(scale, index, lang) if metric.legend_ranges else "",
        )
        for index, (colour, label) in enumerate(zip(scale.colours, scale.labels, strict=True))
    ]


def _row(colour: str, label: str, detail: str, *, opacity: float = 1.0) -> html.Li:
    return html.Li(
        [
            html.Span(className="swatch", style={"backgroundColor": colour, "opacity": opacity}),
            html.Span(label, className="legend-label"),
            html.Span(detail, className="legend-range"),
        ],
        className="legend-row",
    )


def legend(metric: MetricSettings, lang: str, *, stale_after: timedelta) -> html.Div:
    rows = [_row(colour, label, detail) for colour, label, detail in legend_rows(metric, lang)]
    first_colour = band_scale(metric).colours[0]
    rows.append(_row(NO_DATA_COLOUR, text("no_data", lang), ""))
    minutes = round(stale_after.total_seconds() / 60)
    stale_detail = text("stale_detail", lang, minutes=minutes)
    rows.append(_row(first_colour, text("stale", lang), stale_detail, opacity=STALE_OPACITY))
    children: list[html.Div | html.Ul | html.P] = [
        html.Div(
            text("legend_title", lang, metric=metric.label.get(lang), unit=metric.unit),
            className="legend-title",
        ),
        html.Ul(rows, className="legend-rows"),
    ]
    if metric.source:
        children.append(html.P(metric.source, className="legend-source"))
    return html.Div(children, className="legend")


def device_legend_box(rows: Sequence[tuple[str, str, str]], lang: str) -> html.Div:
    """The device layer's states: (state, colour, label) rows, as drawn on the map."""
    items = [
        html.Li(
            [
                html.Span(className=f"device-mark device-{state}", style={"backgroundColor": c}),
                html.Span(label, className="legend-label"),
            ],
            className="legend-row",
        )
        for state, c, label in rows
    ]
    return html.Div(
        [
            html.Div(text("device_legend_title", lang), className="legend-title"),
            html.Ul(items, className="legend-rows"),
        ],
        className="legend legend-devices",
    )
