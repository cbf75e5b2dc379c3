"""The weekly KPI review, ``/review/?unit=<code>&week=2026-W47`` (issue #7): for a leader,
one unit's KPIs this week against last week and the target, the units below it ranked,
and the week's alerts. The data is reports/weekly.py's WeeklyReport, the very object the
XLSX and PDF files are written from, so the files show what the page shows.

Without ``unit`` the page opens the user's top unit (an admin: the site's home, else the
first unit of the top level); without ``week`` the last complete week. A unit out of the
user's reach answers exactly like an unknown code. Callbacks are plain functions of a
:class:`DashboardContext` and an :class:`Access` (tests call them with crafted users).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode

import dash
import pandas as pd
from dash import Input, Output

from core.errors import RetryableError
from core.settings import Settings
from dashboard import ids
from dashboard.access import Access
from dashboard.auth import current_access
from dashboard.context import DashboardContext
from dashboard.exports import export_href
from dashboard.i18n import add_texts, as_lang, text
from dashboard.pages import mount_page
from dashboard.views import review as views
from dashboard.views.panel import message_panel
from reports.model import IsoWeek, WeeklyReport
from reports.weekly import build_weekly
from reports.weeks import BadWeek, iso_week_of, last_complete_week, parse_week, previous

log = logging.getLogger("cityops.dashboard")

REVIEW_PATH = "review/"
EXPORT_NAME = "review"

add_texts(
    {
        "review_bad_week": (
            "Tuần phải có dạng 2026-W47 và phải tồn tại: {value}",
            "The week must look like 2026-W47 and exist: {value}",
        ),
        "review_no_unit": ("Tài khoản chưa được giao đơn vị nào", "No unit is assigned to you"),
    }
)


class ReviewView(NamedTuple):
    """One drawing of the page (in the order of the render callback's outputs)."""

    week: Any
    exports: Any
    message: Any
    kpis: Any
    league: Any
    alerts: Any


def query_of(search: str | None) -> dict[str, str]:
    parsed = parse_qs((search or "").lstrip("?"), keep_blank_values=True)
    return {key: values[0].strip() for key, values in parsed.items() if values}


def default_unit(ctx: DashboardContext, access: Access) -> str | None:
    """The user's highest unit; an admin's: the site's home, else the first top unit."""
    tops = access.top_units()
    if tops:
        return tops[0]
    if not access.everything:
        return None
    home = ctx.views.places.home()
    if home is not None:
        return home
    firsts = ctx.hierarchy.units_at(ctx.hierarchy.levels[0])
    return firsts[0].code if firsts else None


def chosen_unit(ctx: DashboardContext, access: Access, search: str | None) -> str | None:
    """The unit of the URL (as typed: may be unknown or out of reach), else the default."""
    return query_of(search).get("unit") or default_unit(ctx, access)


def chosen_week(ctx: DashboardContext, search: str | None) -> IsoWeek:
    """The week of the URL, else the last complete one. BadWeek for a malformed one."""
    value = query_of(search).get("week")
    if value:
        return parse_week(value)
    return last_complete_week(ctx.clock.now(), ctx.tz)


def reachable(ctx: DashboardContext, access: Access, code: str | None) -> bool:
    return code is not None and ctx.hierarchy.get(code) is not None and access.can_see(code)


def unit_options(
    ctx: DashboardContext, access: Access, current: str | None, lang: str
) -> list[dict[str, str]]:
    """The picker: the user's top units, the current unit's parents within reach, the
    current unit and its children. Nothing out of reach."""
    hierarchy = ctx.hierarchy
    codes: list[str] = []
    home = default_unit(ctx, access)
    tops = access.top_units() or (
        [home] if home is not None else [u.code for u in hierarchy.units_at(hierarchy.levels[0])]
    )
    codes.extend(tops)
    if reachable(ctx, access, current) and current is not None:
        codes.extend(unit.code for unit in hierarchy.ancestors(current))
        codes.extend(unit.code for unit in hierarchy.children(current))
    seen: set[str] = set()
    options = []
    for code in codes:
        if code in seen or not reachable(ctx, access, code):
            continue
        seen.add(code)
        depth = len(hierarchy.ancestors(code)) - 1
        name = (
            hierarchy.unit(code).full_name
            if lang == "vi"
            else hierarchy.full_name(code, "en").split(",")[0]
        )
        options.append({"label": "· " * depth + f"{name} ({code})", "value": code})
    return options


def review_href(ctx: DashboardContext, unit: str | None, week: IsoWeek, lang: str | None) -> str:
    args = {"unit": unit, "week": str(week), "lang": lang}
    query = urlencode({key: value for key, value in args.items() if value})
    return f"{ctx.url_prefix.rstrip('/')}/{REVIEW_PATH}?{query}"


def load_report(
    ctx: DashboardContext, settings: Settings, unit_code: str, week: IsoWeek
) -> WeeklyReport:
    """The review of a unit the caller has checked. ``settings``: the whole catalogue
    (``ctx.settings`` leaves the ratio metrics out of the map's metric lists)."""
    return build_weekly(
        settings,
        ctx.data.store,
        ctx.state_engine,
        ctx.hierarchy,
        unit_code,
        week,
        now=ctx.clock.now(),
    )


def _failed(ctx: DashboardContext, lang: str, exc: Exception) -> Any:
    if isinstance(exc, RetryableError):
        log.warning("review page failed, will retry: %s", exc)
    else:
        log.exception("review page failed")
    seconds = round(ctx.settings.dashboard.refresh_s)
    return message_panel(text("load_error", lang, seconds=seconds), kind="error")


def render_review(
    ctx: DashboardContext,
    settings: Settings,
    access: Access,
    search: str | None,
    lang_value: object,
) -> ReviewView:
    """The page for ``access`` at the URL query ``search``."""
    lang = ctx.lang(lang_value)
    url_lang = query_of(search).get("lang")
    code = chosen_unit(ctx, access, search)
    try:
        week = chosen_week(ctx, search)
    except BadWeek:
        bad = query_of(search).get("week", "")
        warning = message_panel(text("review_bad_week", lang, value=bad), kind="warning")
        fallback = last_complete_week(ctx.clock.now(), ctx.tz)
        nav = views.week_picker(
            fallback, lang, review_href(ctx, code, previous(fallback), url_lang), None
        )
        return ReviewView(nav, None, warning, None, None, None)
    current = iso_week_of(ctx.clock.now(), ctx.tz)
    later = previous(week, -1)
    nav = views.week_picker(
        week,
        lang,
        review_href(ctx, code, previous(week), url_lang),
        review_href(ctx, code, later, url_lang) if later.monday <= current.monday else None,
    )
    if code is None:
        return ReviewView(nav, None, message_panel(text("review_no_unit", lang)), None, None, None)
    if not reachable(ctx, access, code):  # out of reach: as if there were no such unit
        missing = message_panel(text("unknown_unit", lang, code=code), kind="warning")
        return ReviewView(nav, None, missing, None, None, None)
    prefix = ctx.url_prefix.rstrip("/")
    args = urlencode({"unit": code, "week": str(week)})
    exports = views.export_links(
        export_href(ctx.url_prefix, EXPORT_NAME, unit=code, week=str(week), lang=lang),
        f"{prefix}/export/review.xlsx?{args}",
        f"{prefix}/export/review.pdf?{args}",
        lang,
    )
    try:
        report = load_report(ctx, settings, code, week)
    except Exception as exc:
        return ReviewView(nav, exports, _failed(ctx, lang, exc), None, None, None)
    headline = next((row for row in report.kpis if row.metric_id == report.league_metric), None)
    return ReviewView(
        week=nav,
        exports=exports,
        message=None,
        kpis=views.kpis_section(report, lang, ctx.tz),
        league=views.league_table(report, headline, lang),
        alerts=views.alerts_summary(report.alerts, lang, ctx.tz),
    )


def sync_unit(
    ctx: DashboardContext,
    access: Access,
    trigger: str | None,
    search: str | None,
    picked: object,
    lang_value: object,
) -> tuple[Any, Any, Any]:
    """The picker and the URL follow each other: (URL search, picker value, options)."""
    lang = ctx.lang(lang_value)
    query = query_of(search)
    if trigger == views.REVIEW_UNIT and isinstance(picked, str) and picked:
        if picked == query.get("unit"):
            return dash.no_update, dash.no_update, dash.no_update
        query["unit"] = picked
        return "?" + urlencode(query), dash.no_update, unit_options(ctx, access, picked, lang)
    code = chosen_unit(ctx, access, search)
    value = code if reachable(ctx, access, code) else None
    return dash.no_update, value, unit_options(ctx, access, code, lang)


def review_frame(
    ctx: DashboardContext, settings: Settings, access: Access, args: Mapping[str, str]
) -> pd.DataFrame:
    """The "Tải CSV" rows: one per KPI of the page (empty for a unit out of reach)."""
    columns = ["metric", "label", "unit", "this_week", "last_week", "change", "target", "status"]
    lang = as_lang(args.get("lang"))
    code = args.get("unit") or default_unit(ctx, access)
    week = (
        parse_week(args["week"])
        if args.get("week")
        else last_complete_week(ctx.clock.now(), ctx.tz)
    )
    if not reachable(ctx, access, code) or code is None:
        return pd.DataFrame([], columns=columns)
    report = load_report(ctx, settings, code, week)
    records = [
        {
            "metric": row.metric_id,
            "label": row.label.get(lang),
            "unit": row.unit,
            "this_week": row.this_week,
            "last_week": row.last_week,
            "change": row.change,
            "target": row.target,
            "status": row.status,
        }
        for row in report.kpis
    ]
    return pd.DataFrame(records, columns=columns)


def mount_review_page(main: dash.Dash, ctx: DashboardContext, settings: Settings) -> dash.Dash:
    """Serve the page at ``<main's prefix>review/`` with its CSV export ``review``.
    ``settings``: the whole configuration, ratio metrics included."""

    def csv_rows(ctx: DashboardContext, access: Access, args: Mapping[str, str]) -> pd.DataFrame:
        return review_frame(ctx, settings, access, args)

    ctx.exports.add(EXPORT_NAME, csv_rows)

    def register(app: dash.Dash) -> None:
        @app.callback(
            Output(ids.URL, "search"),
            Output(views.REVIEW_UNIT, "value"),
            Output(views.REVIEW_UNIT, "options"),
            Input(ids.URL, "search"),
            Input(views.REVIEW_UNIT, "value"),
            Input(ids.LANG, "value"),
        )
        def _sync(search: str | None, picked: object, lang: object) -> Any:
            trigger = dash.ctx.triggered_id
            return sync_unit(
                ctx,
                current_access(),
                trigger if isinstance(trigger, str) else None,
                search,
                picked,
                lang,
            )

        @app.callback(
            Output(views.REVIEW_WEEK, "children"),
            Output(views.REVIEW_EXPORTS, "children"),
            Output(views.REVIEW_MESSAGE, "children"),
            Output(views.REVIEW_KPIS, "children"),
            Output(views.REVIEW_LEAGUE, "children"),
            Output(views.REVIEW_ALERTS, "children"),
            Input(ids.URL, "search"),
            Input(ids.LANG, "value"),
        )
        def _render(search: str | None, lang: object) -> Any:
            return tuple(render_review(ctx, settings, current_access(), search, lang))

        @app.callback(
            Output(views.REVIEW_UNIT_LABEL, "children"),
            Input(ids.LANG, "value"),
            prevent_initial_call=True,
        )
        def _labels(lang: object) -> Any:
            return text("review_unit", ctx.lang(lang))

    return mount_page(
        main,
        ctx,
        path=REVIEW_PATH,
        title_key="review_title",
        layout=views.review_layout,
        register=register,
    )
