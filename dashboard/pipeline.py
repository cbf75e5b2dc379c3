"""The ingest pipeline page, ``/pipeline/``: per worker, its last self-metrics snapshot
(docs/design/007-self-metrics.md), refreshed on the dashboard's beat.

A page of its own (dashboard/pages.py) on the main app's Flask server. Callbacks are
plain functions of a :class:`DashboardContext` and the user's access (tests call them);
:func:`mount_pipeline_page` binds them.
"""

from __future__ import annotations

import logging
from typing import Any

import dash
from dash import Input, Output, html

from core.errors import RetryableError
from dashboard import ids
from dashboard.access import Access
from dashboard.auth import current_access
from dashboard.context import DashboardContext
from dashboard.i18n import add_texts, format_clock, text
from dashboard.pages import mount_page
from dashboard.scoped import ScopedData
from dashboard.views.panel import message_panel
from dashboard.views.pipeline import pipeline_table

log = logging.getLogger("cityops.dashboard")

PIPELINE_PATH = "pipeline/"

add_texts(
    {
        "pipeline_not_allowed": (
            "Trang này dành cho quản trị viên và cán bộ trực vận hành",
            "This page is for administrators and operators",
        )
    }
)


def render_pipeline(ctx: DashboardContext, access: Access, lang_value: object) -> tuple[Any, ...]:
    """("updated at", table or message). Admins and operators only: the pipeline is the
    whole deployment's, not one unit's."""
    lang = ctx.lang(lang_value)
    if not access.sees_pipeline:
        return "", message_panel(text("pipeline_not_allowed", lang), kind="warning")
    try:
        now = ctx.clock.now()
        table = pipeline_table(
            ScopedData(ctx.data, access).pipeline(),
            lang=lang,
            now=now,
            tz=ctx.tz,
            default_interval_s=ctx.settings.ingest.metrics_interval_s,
        )
    except Exception as exc:
        if isinstance(exc, RetryableError):
            log.warning("pipeline page refresh failed, will retry: %s", exc)
        else:
            log.exception("pipeline page refresh failed")
        seconds = round(ctx.settings.dashboard.refresh_s)
        error = message_panel(text("load_error", lang, seconds=seconds), kind="error")
        return dash.no_update, error
    return text("updated_at", lang, time=format_clock(now, ctx.tz)), table


def pipeline_body(lang: str) -> list[Any]:
    return [
        html.Div(html.Span(id=ids.UPDATED_AT, className="updated-at"), className="status"),
        html.Div(id=ids.PIPELINE_TABLE, className="pipeline-body", role="status"),
    ]


def mount_pipeline_page(main: dash.Dash, ctx: DashboardContext) -> dash.Dash:
    """Serve the page at ``<main's prefix>pipeline/`` on ``main``'s server (``…/pipeline``
    redirects there)."""

    def register(app: dash.Dash) -> None:
        @app.callback(
            Output(ids.UPDATED_AT, "children"),
            Output(ids.PIPELINE_TABLE, "children"),
            Input(ids.REFRESH, "n_intervals"),
            Input(ids.LANG, "value"),
        )
        def _render(_tick: object, lang: object) -> Any:
            return render_pipeline(ctx, current_access(), lang)

    return mount_page(
        main,
        ctx,
        path=PIPELINE_PATH,
        title_key="pipeline_title",
        layout=pipeline_body,
        register=register,
    )
