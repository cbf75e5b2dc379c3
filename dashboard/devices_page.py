"""The devices page, ``/devices/``: is every registered device reporting (online, late,
offline), and which devices send data without being registered (issue #5).

The filters live in the URL (``?unit=&kind=&status=``), so a link opens the same view;
the dropdowns and the URL follow each other. Callbacks are plain functions of a
:class:`DashboardContext` and the user's :class:`Access` (tests call them with crafted
users); :func:`mount_devices_page` binds them with ``current_access()``. Every frame comes
from dashboard/devices_status.py and devices_unregistered.py, which keep to the user's
units; the CSV exports ``devices`` and ``devices_unregistered`` are the same functions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import dash
import pandas as pd
from dash import Input, Output, State

from core.errors import RetryableError
from dashboard import ids
from dashboard.access import Access
from dashboard.auth import current_access
from dashboard.context import DashboardContext
from dashboard.devices_filters import filters_search, parse_filters, render_labels, sync_filters
from dashboard.devices_status import (
    LOOKBACK,
    FilterError,
    check_status,
    count_by,
    device_status_frame,
    latest_readings,
)
from dashboard.devices_unregistered import (
    MAX_PLACEMENTS,
    place_devices,
    read_unassigned,
    unknown_ids,
    unregistered_frame,
)
from dashboard.exports import export_href
from dashboard.i18n import as_lang, format_clock, text
from dashboard.pages import mount_page
from dashboard.views import devices_page as views
from dashboard.views.devices_unregistered import unregistered_table
from dashboard.views.panel import message_panel

log = logging.getLogger("cityops.dashboard")

DEVICES_PATH = "devices/"
PLACEMENT_TTL_S = 300.0  # where an unregistered device sends from changes rarely


class DevicesView(NamedTuple):
    """One refresh of the page (in the order of the render callback's outputs)."""

    updated: Any
    message: Any
    summary: Any
    table: Any
    table_csv: Any
    unregistered: Any
    unregistered_csv: Any


# ---------------------------------------------------------------------------- data


def _readings(ctx: DashboardContext) -> pd.DataFrame:
    """Every device's last values: one scan per refresh beat for every screen."""
    return ctx.data._cached(
        ("dev_readings",),
        lambda: latest_readings(ctx.data.store, ctx.metrics, ctx.clock.now() - LOOKBACK),
    )


def _unassigned(ctx: DashboardContext) -> pd.DataFrame:
    return ctx.data._cached(("dev_unassigned",), lambda: read_unassigned(ctx.state_engine))


def _placed(ctx: DashboardContext, readings: pd.DataFrame) -> dict[str, str | None]:
    registered = {device.device_id for device in ctx.data.registry()}
    unknown = unknown_ids(readings, ctx.metrics, registered)

    def place() -> pd.DataFrame:
        found = place_devices(
            ctx.data.store,
            ctx.metrics,
            readings,
            registered,
            ctx.hierarchy.levels[-1],
            ctx.clock.now() - LOOKBACK,
            MAX_PLACEMENTS,
        )
        return pd.DataFrame({"unit_code": pd.Series(found, dtype="object")})

    key = ("dev_placements", tuple(sorted(unknown)))
    frame = ctx.data.cache.get_or_compute(key, max(PLACEMENT_TTL_S, ctx.data.cache_s), place)
    return {str(k): (v if isinstance(v, str) else None) for k, v in frame["unit_code"].items()}


def registered_devices(
    ctx: DashboardContext, access: Access, args: Mapping[str, str | None], lang: str = "vi"
) -> pd.DataFrame:
    """The registered devices ``access`` may see, filtered by ``args`` (unit, kind,
    status), worst first. FilterError for a status that does not exist."""
    return device_status_frame(
        ctx.data.store,
        ctx.data.registry(),
        ctx.metrics,
        ctx.settings.devices,
        ctx.clock.now(),
        access,
        hierarchy=ctx.hierarchy,
        unit=args.get("unit") or None,
        kind=args.get("kind") or None,
        status=args.get("status") or None,
        lang=lang,
        readings=_readings(ctx),
    )


def unregistered_devices(
    ctx: DashboardContext, access: Access, args: Mapping[str, str | None], lang: str = "vi"
) -> pd.DataFrame:
    """The unregistered devices ``access`` may see, filtered by ``args`` (unit, kind)."""
    readings = _readings(ctx)
    return unregistered_frame(
        ctx.data.store,
        ctx.data.registry(),
        ctx.metrics,
        ctx.clock.now(),
        access,
        hierarchy=ctx.hierarchy,
        unassigned=_unassigned(ctx),
        placed=_placed(ctx, readings),
        unit=args.get("unit") or None,
        kind=args.get("kind") or None,
        lang=lang,
        readings=readings,
    )


# ---------------------------------------------------------------------------- callbacks


def _load_failed(ctx: DashboardContext, lang: str, exc: Exception) -> Any:
    if isinstance(exc, RetryableError):
        log.warning("devices page refresh failed, will retry: %s", exc)
    else:
        log.exception("devices page refresh failed")
    seconds = round(ctx.settings.dashboard.refresh_s)
    return message_panel(text("load_error", lang, seconds=seconds), kind="error")


def render_devices(
    ctx: DashboardContext, access: Access, lang_value: object, search: str | None
) -> DevicesView:
    """Every part of the page for ``access`` with the filters of the URL query ``search``.
    A store or database that does not answer: "could not load, retrying", and what is on
    screen stays."""
    lang = ctx.lang(lang_value)
    prefix = ctx.url_prefix
    chosen = parse_filters(search)
    keep = dash.no_update
    try:
        check_status(chosen["status"])
    except FilterError as exc:
        warning = message_panel(exc.in_lang(lang), kind="warning")
        return DevicesView("", warning, None, None, None, None, None)
    try:
        now = ctx.clock.now()
        unfiltered = registered_devices(ctx, access, {**chosen, "status": None}, lang)
        frame = unfiltered
        if chosen["status"]:
            frame = unfiltered[unfiltered["status"] == chosen["status"]]
        strangers = unregistered_devices(ctx, access, chosen, lang)
    except Exception as exc:
        return DevicesView(keep, _load_failed(ctx, lang, exc), keep, keep, keep, keep, keep)

    def href(kind: str | None, status: str | None) -> str:
        query = filters_search(search, unit=chosen["unit"], kind=kind, status=status)
        return f"{prefix.rstrip('/')}/{DEVICES_PATH}{query}"

    if any(chosen.values()):
        empty = "dev_none_match"
    else:
        empty = "dev_none_registered" if access.everything else "dev_none_visible"
    registry = str(ctx.settings.path(ctx.settings.devices.registry)) if access.everything else None
    csv_args = {**chosen, "lang": lang}
    return DevicesView(
        updated=text("updated_at", lang, time=format_clock(now, ctx.tz)),
        message=None,
        summary=views.summary(count_by(unfiltered), lang, href),
        table=views.devices_table(frame, ctx.metrics, lang=lang, now=now, tz=ctx.tz, empty=empty),
        table_csv=views.csv_link(export_href(prefix, "devices", **csv_args), lang),
        unregistered=unregistered_table(
            strangers, lang=lang, now=now, tz=ctx.tz, registry_path=registry
        ),
        unregistered_csv=views.csv_link(
            export_href(prefix, "devices_unregistered", **{**csv_args, "status": None}), lang
        ),
    )


# ---------------------------------------------------------------------------- page


def register_exports(ctx: DashboardContext) -> None:
    """``devices`` and ``devices_unregistered``: the rows of the tables, for the signed-in
    user, with the same filters (unit, kind, status) and ``lang`` for unit names."""

    def devices(ctx: DashboardContext, access: Access, args: Mapping[str, str]) -> pd.DataFrame:
        frame = registered_devices(ctx, access, args, as_lang(args.get("lang")))
        names = {
            metric_id: f"{metric_id} ({metric.unit})" if metric.unit else metric_id
            for metric_id, metric in ctx.metrics.items()
        }
        for metric_id, metric in ctx.metrics.items():
            frame[metric_id] = frame[metric_id].round(metric.decimals)
        return frame.rename(columns=names)

    def unregistered(
        ctx: DashboardContext, access: Access, args: Mapping[str, str]
    ) -> pd.DataFrame:
        return unregistered_devices(ctx, access, args, as_lang(args.get("lang")))

    ctx.exports.add("devices", devices)
    ctx.exports.add("devices_unregistered", unregistered)


def mount_devices_page(main: dash.Dash, ctx: DashboardContext) -> dash.Dash:
    """Serve the page at ``<main's prefix>devices/`` on ``main``'s server (``…/devices``
    redirects there), with its CSV exports."""
    register_exports(ctx)

    def register(app: dash.Dash) -> None:
        @app.callback(
            Output(ids.URL, "search"),
            Output(views.DEV_UNIT, "value"),
            Output(views.DEV_KIND, "value"),
            Output(views.DEV_STATUS, "value"),
            Output(views.DEV_UNIT, "options"),
            Output(views.DEV_KIND, "options"),
            Output(views.DEV_STATUS, "options"),
            Input(ids.URL, "search"),
            Input(ids.LANG, "value"),
            Input(views.DEV_UNIT, "value"),
            Input(views.DEV_KIND, "value"),
            Input(views.DEV_STATUS, "value"),
            State(views.DEV_STATUS, "options"),  # three options: empty before the first answer
        )
        def _sync(
            search: str | None,
            lang: object,
            unit: object,
            kind: object,
            status: object,
            status_options: object,
        ) -> Any:
            trigger = dash.ctx.triggered_id
            return sync_filters(
                ctx,
                current_access(),
                trigger if isinstance(trigger, str) else None,
                lang,
                search,
                (unit, kind, status),
                has_options=bool(status_options),
            )

        @app.callback(
            Output(views.DEV_UNIT_LABEL, "children"),
            Output(views.DEV_KIND_LABEL, "children"),
            Output(views.DEV_STATUS_LABEL, "children"),
            Output(views.DEV_UNIT, "placeholder"),
            Output(views.DEV_KIND, "placeholder"),
            Output(views.DEV_STATUS, "placeholder"),
            Output(views.DEV_TABLE_TITLE, "children"),
            Output(views.DEV_UNREG_TITLE, "children"),
            Input(ids.LANG, "value"),
            prevent_initial_call=True,  # the layout is drawn in the page's language
        )
        def _labels(lang: object) -> Any:
            return render_labels(ctx, lang)

        @app.callback(
            Output(views.DEV_UPDATED, "children"),
            Output(views.DEV_MESSAGE, "children"),
            Output(views.DEV_SUMMARY, "children"),
            Output(views.DEV_TABLE, "children"),
            Output(views.DEV_CSV, "children"),
            Output(views.DEV_UNREG, "children"),
            Output(views.DEV_UNREG_CSV, "children"),
            Input(ids.URL, "search"),
            Input(ids.LANG, "value"),
            Input(ids.REFRESH, "n_intervals"),
        )
        def _render(search: str | None, lang: object, _tick: object) -> Any:
            return tuple(render_devices(ctx, current_access(), lang, search))

    return mount_page(
        main,
        ctx,
        path=DEVICES_PATH,
        title_key="dev_title",
        layout=views.devices_layout,
        register=register,
    )
