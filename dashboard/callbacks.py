"""The page's callbacks: parse inputs, call ``data.*`` and ``views.*``, and never let an
exception blank the screen.

Each callback is a plain function of a :class:`DashboardContext` and its inputs (tests call
them directly); :func:`register` binds them to an app and is the only place that reads
``dash.ctx``. On a failure a callback logs to ``cityops.dashboard`` and answers with a
sentence ("Không tải được dữ liệu …") while the last good map stays on screen.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dash
from dash import Input, Output, State, html, no_update

from core.errors import RetryableError
from core.ports import Clock, DeadLetterStore
from core.settings import MetricSettings, Settings
from core.types import UnitRef
from dashboard import ids
from dashboard.data import TREND_WINDOW, DashboardData
from dashboard.i18n import as_lang, format_clock, text
from dashboard.routes import parse_location
from dashboard.views.bands import band_scale
from dashboard.views.legend import legend
from dashboard.views.map import BASE_TEXT_PX, MapUnit, map_arrays, map_figure, map_patch
from dashboard.views.page import metric_options
from dashboard.views.panel import message_panel, metric_rows, trend_figure, unit_panel
from layers.levels import Hierarchy

log = logging.getLogger("cityops.dashboard")


@dataclass(frozen=True, slots=True)
class DashboardContext:
    """What the callbacks need, built once by ``create_app``."""

    settings: Settings
    data: DashboardData
    hierarchy: Hierarchy
    map_units: list[MapUnit]
    geo_url: str
    clock: Clock
    tz: ZoneInfo
    dead_letters: DeadLetterStore | None = None
    inset: frozenset[str] = frozenset()  # far units drawn in an inset (views.map.inset_codes)

    @property
    def metrics(self) -> Mapping[str, MetricSettings]:
        return self.settings.metrics

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.settings.dashboard.stale_after_s)

    def metric_id(self, value: object) -> str:
        """A known metric id, or the default one for anything else."""
        if isinstance(value, str) and value in self.metrics:
            return value
        return self.settings.dashboard.default_metric

    def lang(self, value: object) -> str:
        return as_lang(value, default=self.settings.site.language)


def text_px(value: object) -> float:
    """The page's root font size as the browser reported it, within sane limits."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return float(min(max(value, 10.0), 96.0))
    return BASE_TEXT_PX


# Runs in the browser: the root font size follows the screen width (style.css), and the
# figures scale their fonts and lines with it.
TEXT_PX_JS = """function(_pathname) {
    return parseFloat(getComputedStyle(document.documentElement).fontSize) || null;
}"""


def _log_failure(what: str, exc: Exception) -> None:
    if isinstance(exc, RetryableError):
        # An unreachable store is an operations problem, not a bug: no traceback.
        log.warning("%s failed, will retry on the next refresh: %s", what, exc)
    else:
        log.exception("%s failed", what)


def clicked_code(click_data: object) -> str | None:
    """The unit code of a map click (``clickData.points[0].location``)."""
    if not isinstance(click_data, dict):
        return None
    points = click_data.get("points")
    if not isinstance(points, list) or not points or not isinstance(points[0], dict):
        return None
    location = points[0].get("location")
    return location if isinstance(location, str) and location else None


def apply_location(
    ctx: DashboardContext,
    trigger: str | None,
    pathname: str | None,
    search: str | None,
    click_data: object,
) -> tuple[Any, Any, Any]:
    """(metric, selected unit, language): from the URL when the page loads, the unit
    alone when a commune is clicked."""
    if trigger == ids.MAP:
        code = clicked_code(click_data)
        return no_update, code if code is not None else no_update, no_update
    selection = parse_location(pathname, search)
    return ctx.metric_id(selection.metric), selection.unit, ctx.lang(selection.lang)


def render_chrome(
    ctx: DashboardContext, lang_value: object, metric_value: object
) -> tuple[Any, ...]:
    """Texts that follow the language and metric: title, labels, options, legend."""
    lang = ctx.lang(lang_value)
    metric = ctx.metrics[ctx.metric_id(metric_value)] if ctx.metrics else None
    return (
        ctx.settings.site.name.get(lang),
        text("metric_label", lang),
        metric_options(ctx.metrics, lang),
        text("lang_label", lang),
        legend(metric, lang, stale_after=ctx.stale_after) if metric is not None else None,
        text("dead_letters_hint", lang),
    )


def drawn_key(metric_id: str, lang: str, size: float, geometry: str = "") -> str:
    """What the figure on screen was drawn for. ``geometry`` is the versioned geometry URL:
    a page open for weeks gets a full figure, not a Patch, once a restarted server serves
    other boundaries (other units, other order)."""
    return f"{metric_id}|{lang}|{size:g}" + (f"|{geometry}" if geometry else "")


def refresh_map(
    ctx: DashboardContext,
    metric_value: object,
    lang_value: object,
    selected: object,
    drawn: object,
    size_value: object = None,
) -> tuple[Any, Any, Any, Any, Any]:
    """(figure, drawn key, "updated at", dead-letter badge, status).

    A full figure when the one on screen was drawn for another metric or language (or
    not at all); otherwise a Patch with the new colours, hover texts and outlines."""
    lang = ctx.lang(lang_value)
    size = text_px(size_value)
    badge = _dead_letter_badge(ctx, lang)
    if not ctx.metrics:
        return no_update, no_update, no_update, badge, text("no_data", lang)
    metric_id = ctx.metric_id(metric_value)
    metric = ctx.metrics[metric_id]
    try:
        now = ctx.clock.now()
        values = ctx.data.map_values(metric_id)
        arrays = map_arrays(
            ctx.map_units,
            values,
            metric,
            lang=lang,
            now=now,
            stale_after=ctx.stale_after,
            tz=ctx.tz,
            selected=selected if isinstance(selected, str) else None,
            text_px=size,
        )
        key = drawn_key(metric_id, lang, size, ctx.geo_url)
        if drawn == key:
            figure: Any = map_patch(arrays, ctx.map_units, ctx.inset)
        else:
            figure = map_figure(
                ctx.geo_url,
                ctx.map_units,
                arrays,
                band_scale(metric),
                lang=lang,
                inset=ctx.inset,
                text_px=size,
            )
    except Exception as exc:
        _log_failure(f"map refresh ({metric_id})", exc)
        seconds = round(ctx.settings.dashboard.refresh_s)
        return no_update, no_update, no_update, badge, text("load_error", lang, seconds=seconds)
    updated = text("updated_at", lang, time=format_clock(now, ctx.tz))
    return figure, key, updated, badge, ""


def _dead_letter_badge(ctx: DashboardContext, lang: str) -> Any:
    if ctx.dead_letters is None:
        return no_update
    try:
        count = ctx.dead_letters.count()
    except Exception as exc:
        _log_failure("dead-letter count", exc)
        return no_update
    return text("dead_letters", lang, count=count)


def render_panel(
    ctx: DashboardContext,
    unit_value: object,
    metric_value: object,
    lang_value: object,
    size_value: object = None,
) -> html.Div:
    """The selected unit's panel, or a sentence saying why there is none."""
    lang = ctx.lang(lang_value)
    if not isinstance(unit_value, str) or not unit_value:
        return message_panel(text("pick_unit", lang))
    unit = ctx.hierarchy.get(unit_value)
    if unit is None:
        return message_panel(text("unknown_unit", lang, code=unit_value), kind="warning")
    metric_id = ctx.metric_id(metric_value)
    try:
        now = ctx.clock.now()
        ref = UnitRef(unit.level, unit.code)
        latest = ctx.data.unit_latest(ref)
        rows = metric_rows(
            latest,
            ctx.metrics,
            lang=lang,
            now=now,
            stale_after=ctx.stale_after,
            tz=ctx.tz,
            selected_metric=metric_id,
        )
        metric = ctx.metrics[metric_id]
        series = ctx.data.trend(metric_id, ref)
        trend = (
            None
            if series.empty
            else trend_figure(
                series,
                metric,
                lang=lang,
                now=now,
                window=TREND_WINDOW,
                tz=ctx.tz,
                text_px=text_px(size_value),
            )
        )
        return unit_panel(ctx.hierarchy.full_name(unit.code, lang), rows, metric, trend, lang=lang)
    except Exception as exc:
        _log_failure(f"panel of {unit_value}", exc)
        seconds = round(ctx.settings.dashboard.refresh_s)
        return message_panel(text("load_error", lang, seconds=seconds), kind="error")


def register(app: dash.Dash, ctx: DashboardContext) -> None:
    """Bind the callbacks to ``app`` (per app, not the global registry: the factory may
    build several apps in one process, e.g. in tests)."""
    app.clientside_callback(  # type: ignore[no-untyped-call]
        TEXT_PX_JS, Output(ids.TEXT_PX, "data"), Input(ids.URL, "pathname")
    )

    @app.callback(
        Output(ids.METRIC, "value"),
        Output(ids.SELECTED_UNIT, "data"),
        Output(ids.LANG, "value"),
        Input(ids.URL, "pathname"),
        Input(ids.URL, "search"),
        Input(ids.MAP, "clickData"),
    )
    def _apply_location(pathname: str | None, search: str | None, click: object) -> Any:
        trigger = dash.ctx.triggered_id
        return apply_location(
            ctx, trigger if isinstance(trigger, str) else None, pathname, search, click
        )

    @app.callback(
        Output(ids.SITE_TITLE, "children"),
        Output(ids.METRIC_LABEL, "children"),
        Output(ids.METRIC, "options"),
        Output(ids.LANG_LABEL, "children"),
        Output(ids.LEGEND, "children"),
        Output(ids.DEAD_LETTERS, "title"),
        Input(ids.LANG, "value"),
        Input(ids.METRIC, "value"),
    )
    def _render_chrome(lang: object, metric: object) -> Any:
        return render_chrome(ctx, lang, metric)

    @app.callback(
        Output(ids.MAP, "figure"),
        Output(ids.MAP_DRAWN, "data"),
        Output(ids.UPDATED_AT, "children"),
        Output(ids.DEAD_LETTERS, "children"),
        Output(ids.MAP_STATUS, "children"),
        Input(ids.REFRESH, "n_intervals"),
        Input(ids.METRIC, "value"),
        Input(ids.LANG, "value"),
        Input(ids.SELECTED_UNIT, "data"),
        Input(ids.TEXT_PX, "data"),
        State(ids.MAP_DRAWN, "data"),
    )
    def _refresh_map(
        _tick: object, metric: object, lang: object, unit: object, size: object, drawn: object
    ) -> Any:
        return refresh_map(ctx, metric, lang, unit, drawn, size)

    @app.callback(
        Output(ids.PANEL, "children"),
        Input(ids.SELECTED_UNIT, "data"),
        Input(ids.METRIC, "value"),
        Input(ids.LANG, "value"),
        Input(ids.REFRESH, "n_intervals"),
        Input(ids.TEXT_PX, "data"),
    )
    def _render_panel(
        unit: object, metric: object, lang: object, _tick: object, size: object
    ) -> Any:
        return render_panel(ctx, unit, metric, lang, size)
