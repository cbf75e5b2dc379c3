"""The page's callbacks: parse inputs, call ``data.*`` and ``views.*``, and never let an
exception blank the screen.

Each callback is a plain function of a :class:`DashboardContext` and its inputs (tests call
them directly); :func:`register` binds them to an app and is the only place that reads
``dash.ctx``. On a failure a callback logs to ``cityops.dashboard`` and answers with a
sentence ("Không tải được dữ liệu …") while the last good map stays on screen.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dash
import pandas as pd
from dash import ClientsideFunction, Input, Output, State, html, no_update

from core.errors import RetryableError
from core.settings import MetricSettings
from dashboard import ids
from dashboard.access import Access
from dashboard.auth import current_access
from dashboard.context import DashboardContext
from dashboard.devices import FRAME_COLUMNS
from dashboard.i18n import format_clock, text
from dashboard.kpi import RangeError, parse_range
from dashboard.mapview import MapView
from dashboard.navigation import apply_location, find_units, navigate, place_of, render_breadcrumb
from dashboard.overview import range_options, render_overview_panel
from dashboard.pages import relabel_shell, remember_lang
from dashboard.routes import parse_day
from dashboard.scoped import ScopedData
from dashboard.unit_controls import refresh_due
from dashboard.views.bands import band_scale
from dashboard.views.devices import device_legend, device_patch_values, device_trace
from dashboard.views.history import history_note, mark_mapped
from dashboard.views.legend import device_legend_box, legend
from dashboard.views.map import BASE_TEXT_PX, map_arrays, map_figure, map_update
from dashboard.views.page import metric_options

log = logging.getLogger("cityops.dashboard")


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
        _legend(ctx, metric, lang),
        text("dead_letters_hint", lang),
        text("search_placeholder", lang),
        text("search_label", lang),
        text("history_label", lang),
        text("history_live", lang),
    )


def _legend(ctx: DashboardContext, metric: MetricSettings | None, lang: str) -> Any:
    """The metric's bands, then the device states when there are devices to draw."""
    if metric is None:
        return None
    parts = [legend(metric, lang, stale_after=ctx.stale_after)]
    if ctx.data.registry():
        parts.append(device_legend_box(device_legend(lang), lang))
    return parts


def drawn_key(metric_id: str, lang: str, size: float, geometry: str = "") -> str:
    """What the figure on screen was drawn for. ``geometry`` is the versioned geometry URL:
    a page open for weeks gets a full figure, not an update, once a restarted server serves
    other boundaries (other units, other order)."""
    return f"{metric_id}|{lang}|{size:g}" + (f"|{geometry}" if geometry else "")


def refresh_map(
    ctx: DashboardContext,
    access: Access,
    metric_value: object,
    lang_value: object,
    selected: object,
    drawn: object,
    size_value: object = None,
    place_data: object = None,
    day_value: object = None,
) -> tuple[Any, ...]:
    """(figure, drawn key, "updated at", dead-letter badge, status, history note, map
    update) for the map of the place in ``place_data`` (home when empty), live or at the
    end of the day in ``day_value`` ("YYYY-MM-DD"; before the 2025 reform mapped from the
    old units).

    A full figure when the one on screen was drawn for another place, metric or language
    (or not at all); otherwise no figure but a map update (``views.map.map_update``: new
    colours, hover texts, outlines and device states) that the browser applies itself
    (``assets/map.js``). Units out of the user's reach are drawn without data."""
    lang = ctx.lang(lang_value)
    data = ScopedData(ctx.data, access)
    size = text_px(size_value)
    badge = _dead_letter_badge(ctx, lang)
    if not ctx.metrics:
        return no_update, no_update, no_update, badge, text("no_data", lang), "", no_update
    metric_id = ctx.metric_id(metric_value)
    metric = ctx.metrics[metric_id]
    try:
        now = ctx.clock.now()
        view: MapView = ctx.views.of_place(place_of(place_data))
        day = parse_day(day_value)
        stale_after = ctx.stale_after
        if day is None:
            values = data.map_values(metric_id, view.level, view.parent)
        else:
            at = end_of_day(day, ctx.tz)
            now = min(now, at)  # a day's last values, none of them "old data"
            stale_after = timedelta(days=1)
            values = data.map_values_at(metric_id, view.level, view.parent, at)
        arrays = map_arrays(
            view.units,
            values,
            metric,
            lang=lang,
            now=now,
            stale_after=stale_after,
            tz=ctx.tz,
            selected=selected if isinstance(selected, str) else None,
            text_px=size,
        )
        note = history_note(day, mark_mapped(arrays, view.units, values, lang), _reform(ctx), lang)
        # No device layer on a past day (states are live), nor above MAX_DEVICES_DRAWN in a
        # view (a national view of every sensor is noise, not a map).
        devices = data.devices(view.place) if day is None else NO_DEVICES
        if len(devices) > MAX_DEVICES_DRAWN:
            devices = NO_DEVICES
        key = drawn_key(metric_id, lang, size, view.key) + f"|devices={len(devices)}"
        update: Any = no_update
        if drawn == key:
            figure: Any = no_update
            update = map_update(arrays, view.units, key, view.inset)
            if len(devices):
                update["devices"] = device_update(devices, ctx, lang, size)
        else:
            figure = map_figure(
                view.geo_url,
                view.units,
                arrays,
                band_scale(metric),
                lang=lang,
                inset=view.inset,
                text_px=size,
            )
            if len(devices):
                figure.add_trace(
                    device_trace(devices, lang=lang, text_px=size, tz=ctx.tz, metrics=ctx.metrics)
                )
    except Exception as exc:
        _log_failure(f"map refresh ({metric_id})", exc)
        seconds = round(ctx.settings.dashboard.refresh_s)
        return (
            no_update,
            no_update,
            no_update,
            badge,
            text("load_error", lang, seconds=seconds),
            no_update,
            no_update,
        )
    updated = text("updated_at", lang, time=format_clock(ctx.clock.now(), ctx.tz))
    return figure, key, updated, badge, "", note, update


def end_of_day(day: date, tz: ZoneInfo) -> datetime:
    """00:00 local time of the next day, in UTC: the map of a day shows its last values."""
    return datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)


def _reform(ctx: DashboardContext) -> date | None:
    return None if ctx.data.history is None else ctx.settings.hierarchy.history.reform_date


# Above this many devices in a view the device layer is left out (the units' colours say it).
MAX_DEVICES_DRAWN = 5000
NO_DEVICES = pd.DataFrame(columns=list(FRAME_COLUMNS))


def device_update(
    devices: Any, ctx: DashboardContext, lang: str, size: float
) -> dict[str, list[Any]]:
    """New state colours, symbols, sizes and hover texts of the device trace (the last
    trace of the figure); positions stay in the browser."""
    values = device_patch_values(devices, lang, text_px=size, tz=ctx.tz, metrics=ctx.metrics)
    return {
        "color": values.color,
        "symbol": values.symbol,
        "size": values.size,
        "hovertext": values.hovertext,
    }


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
    access: Access,
    unit_value: object,
    metric_value: object,
    lang_value: object,
    size_value: object = None,
    place_data: object = None,
    range_value: object = "live",
    first_day: object = None,
    last_day: object = None,
) -> html.Div:
    """The panel of the selected unit, else of the place on the map (a province's values
    rolled up from its devices): KPI cards over the range, the chosen metric's trend, the
    active alerts of the unit and inside it (dashboard/overview.py); or a sentence saying
    why there is none."""
    return render_overview_panel(
        ctx,
        access,
        unit_value,
        metric_value,
        lang_value,
        size_value,
        place_data,
        range_value,
        first_day,
        last_day,
        text_px=text_px(size_value),
    )


def _range_end(ctx: DashboardContext, period: object, first: object, last: object) -> datetime:
    """Where the panel's range ends (now for a range that cannot be read)."""
    now = ctx.clock.now()
    try:
        return parse_range(period, first, last, now, ctx.tz).end
    except RangeError:
        return now


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
        Output(ids.PLACE, "data"),
        Output(ids.SEARCH, "value"),
        Output(ids.DAY, "date"),
        Input(ids.URL, "pathname"),
        Input(ids.URL, "search"),
    )
    def _apply_location(pathname: str | None, search: str | None) -> Any:
        return apply_location(ctx, current_access(), pathname, search)

    @app.callback(
        Output(ids.URL, "href"),
        Input(ids.MAP, "clickData"),
        State(ids.METRIC, "value"),
        State(ids.LANG, "value"),
        prevent_initial_call=True,
    )
    def _navigate(click: object, metric: object, lang: object) -> Any:
        return navigate(ctx, current_access(), click, metric, lang)

    @app.callback(
        Output(ids.BREADCRUMB, "children"),
        Input(ids.PLACE, "data"),
        Input(ids.SELECTED_UNIT, "data"),
        Input(ids.LANG, "value"),
    )
    def _render_breadcrumb(place: object, unit: object, lang: object) -> Any:
        return render_breadcrumb(ctx, current_access(), place, unit, lang)

    @app.callback(
        Output(ids.SEARCH_RESULTS, "children"),
        Input(ids.SEARCH, "value"),
        Input(ids.LANG, "value"),
        Input(ids.URL, "href"),
        prevent_initial_call=True,
    )
    def _find_units(query: object, lang: object, _href: object) -> Any:
        if dash.ctx.triggered_id == ids.URL:
            return []  # the page moved (a result was picked): close the list
        return find_units(ctx, current_access(), query, lang)

    @app.callback(
        Output(ids.SITE_TITLE, "children"),
        Output(ids.METRIC_LABEL, "children"),
        Output(ids.METRIC, "options"),
        Output(ids.LANG_LABEL, "children"),
        Output(ids.LEGEND, "children"),
        Output(ids.DEAD_LETTERS, "title"),
        Output(ids.SEARCH, "placeholder"),
        Output(ids.SEARCH_LABEL, "children"),
        Output(ids.DAY_LABEL, "children"),
        Output(ids.DAY, "placeholder"),
        Input(ids.LANG, "value"),
        Input(ids.METRIC, "value"),
    )
    def _render_chrome(lang: object, metric: object) -> Any:
        if dash.ctx.triggered_id == ids.LANG:
            remember_lang(lang)
        return render_chrome(ctx, lang, metric)

    @app.callback(
        Output(ids.NAV_LINKS, "children"),
        Output(ids.USER_BOX, "children"),
        Input(ids.LANG, "value"),
        prevent_initial_call=True,
    )
    def _relabel_shell(lang: object) -> Any:
        links, _label, user = relabel_shell(ctx.url_prefix, ctx.lang(lang), "")
        return links, user

    @app.callback(
        Output(ids.MAP, "figure"),
        Output(ids.MAP_DRAWN, "data"),
        Output(ids.UPDATED_AT, "children"),
        Output(ids.DEAD_LETTERS, "children"),
        Output(ids.MAP_STATUS, "children"),
        Output(ids.HISTORY_NOTE, "children"),
        Output(ids.MAP_UPDATE, "data"),
        Input(ids.REFRESH, "n_intervals"),
        Input(ids.METRIC, "value"),
        Input(ids.LANG, "value"),
        Input(ids.SELECTED_UNIT, "data"),
        Input(ids.TEXT_PX, "data"),
        Input(ids.PLACE, "data"),
        Input(ids.DAY, "date"),
        State(ids.MAP_DRAWN, "data"),
    )
    def _refresh_map(
        _tick: object,
        metric: object,
        lang: object,
        unit: object,
        size: object,
        place: object,
        day: object,
        drawn: object,
    ) -> Any:
        return refresh_map(ctx, current_access(), metric, lang, unit, drawn, size, place, day)

    # The map's refresh, applied in the browser (assets/map.js); its output records the
    # drawn key of the last update applied.
    app.clientside_callback(  # type: ignore[no-untyped-call]
        ClientsideFunction("cityops", "recolour"),
        Output(ids.MAP_APPLIED, "data"),
        Input(ids.MAP_UPDATE, "data"),
    )

    @app.callback(
        Output(ids.PANEL, "children"),
        Input(ids.SELECTED_UNIT, "data"),
        Input(ids.METRIC, "value"),
        Input(ids.LANG, "value"),
        Input(ids.REFRESH, "n_intervals"),
        Input(ids.TEXT_PX, "data"),
        Input(ids.PLACE, "data"),
        Input(ids.RANGE, "value"),
        Input(ids.RANGE_DAYS, "start_date"),
        Input(ids.RANGE_DAYS, "end_date"),
    )
    def _render_panel(
        unit: object,
        metric: object,
        lang: object,
        tick: object,
        size: object,
        place: object,
        period: object,
        first: object,
        last: object,
    ) -> Any:
        # A range is redrawn every few beats (its buckets change slowly), live every beat,
        # chosen days wholly in the past never.
        if dash.ctx.triggered_id == ids.REFRESH and not refresh_due(
            str(period), tick, _range_end(ctx, period, first, last), ctx.clock.now()
        ):
            return no_update
        access = current_access()
        return render_panel(ctx, access, unit, metric, lang, size, place, period, first, last)

    @app.callback(
        Output(ids.RANGE_DAYS, "style"),
        Output(ids.RANGE_LABEL, "children"),
        Output(ids.RANGE, "options"),
        Input(ids.RANGE, "value"),
        Input(ids.LANG, "value"),
    )
    def _range_controls(period: object, lang_value: object) -> Any:
        lang = ctx.lang(lang_value)
        shown = {} if period == "custom" else {"display": "none"}
        return shown, text("ov_range_label", lang), range_options(lang)
