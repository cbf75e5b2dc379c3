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
import pandas as pd
from dash import Input, Output, html

from core.errors import RetryableError
from dashboard import ids
from dashboard.access import Access
from dashboard.auth import current_access
from dashboard.context import DashboardContext
from dashboard.exports import csv_link, export_href
from dashboard.i18n import add_texts, format_clock, text
from dashboard.pages import mount_page
from dashboard.pipeline_extra import (
    dead_letter_frame,
    kinds_table,
    last_write_frame,
    letters_table,
)
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


def kinds(ctx: DashboardContext, access: Access, _args: object = None) -> pd.DataFrame:
    """The last write per kind (cached like every named query); admins and operators."""
    if not access.sees_pipeline:
        raise PermissionError(text("pipeline_not_allowed", "en"))
    return ctx.data._cached(
        ("pipeline_kinds",),
        lambda: last_write_frame(ctx.data.store, ctx.metrics, ctx.clock.now()),
    )


def letters(ctx: DashboardContext, access: Access, _args: object = None) -> pd.DataFrame | None:
    """The newest dead letters (None: no dead-letter store); admins and operators."""
    if not access.sees_pipeline:
        raise PermissionError(text("pipeline_not_allowed", "en"))
    if ctx.dead_letters is None:
        return None
    dead_letters = ctx.dead_letters
    return ctx.data._cached(("dead_letters",), lambda: dead_letter_frame(dead_letters))


def render_pipeline(ctx: DashboardContext, access: Access, lang_value: object) -> tuple[Any, ...]:
    """("updated at", workers table, kinds table, dead-letters table), or messages.
    Admins and operators only: the pipeline is the whole deployment's, not one unit's."""
    lang = ctx.lang(lang_value)
    if not access.sees_pipeline:
        refused = message_panel(text("pipeline_not_allowed", lang), kind="warning")
        return "", refused, None, None
    try:
        now = ctx.clock.now()
        table = pipeline_table(
            ScopedData(ctx.data, access).pipeline(),
            lang=lang,
            now=now,
            tz=ctx.tz,
            default_interval_s=ctx.settings.ingest.metrics_interval_s,
        )
        by_kind = kinds_table(kinds(ctx, access), lang=lang, now=now, tz=ctx.tz)
        recent = letters_table(letters(ctx, access), lang=lang, tz=ctx.tz)
    except Exception as exc:
        if isinstance(exc, RetryableError):
            log.warning("pipeline page refresh failed, will retry: %s", exc)
        else:
            log.exception("pipeline page refresh failed")
        seconds = round(ctx.settings.dashboard.refresh_s)
        error = message_panel(text("load_error", lang, seconds=seconds), kind="error")
        return dash.no_update, error, dash.no_update, dash.no_update
    updated = text("updated_at", lang, time=format_clock(now, ctx.tz))
    return updated, table, by_kind, recent


KINDS_TABLE = "pipeline-kinds"
LETTERS_TABLE = "pipeline-letters"
KINDS_TITLE = "pipeline-kinds-title"
LETTERS_TITLE = "pipeline-letters-title"


def pipeline_body(prefix: str) -> Any:
    def body(lang: str) -> list[Any]:
        return [
            html.Div(html.Span(id=ids.UPDATED_AT, className="updated-at"), className="status"),
            html.Div(id=ids.PIPELINE_TABLE, className="pipeline-body", role="status"),
            csv_link(export_href(prefix, "pipeline_workers"), lang),
            html.H2(text("pipe_kinds_title", lang), id=KINDS_TITLE),
            html.Div(id=KINDS_TABLE, className="pipeline-body"),
            csv_link(export_href(prefix, "pipeline_kinds"), lang),
            html.H2(text("pipe_letters_title", lang), id=LETTERS_TITLE),
            html.Div(id=LETTERS_TABLE, className="pipeline-body"),
            csv_link(export_href(prefix, "dead_letters"), lang),
        ]

    return body


def _workers_export(ctx: DashboardContext, access: Access, _args: object) -> pd.DataFrame:
    if not access.sees_pipeline:
        raise PermissionError(text("pipeline_not_allowed", "en"))
    return ScopedData(ctx.data, access).pipeline()


def _letters_export(ctx: DashboardContext, access: Access, _args: object) -> pd.DataFrame:
    frame = letters(ctx, access)
    return dead_letter_frame_empty() if frame is None else frame


def dead_letter_frame_empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["received_at", "topic", "reason", "payload"])


def mount_pipeline_page(main: dash.Dash, ctx: DashboardContext) -> dash.Dash:
    """Serve the page at ``<main's prefix>pipeline/`` on ``main``'s server (``…/pipeline``
    redirects there)."""

    ctx.exports.add("pipeline_workers", _workers_export)
    ctx.exports.add("pipeline_kinds", kinds)
    ctx.exports.add("dead_letters", _letters_export)

    def register(app: dash.Dash) -> None:
        @app.callback(
            Output(ids.UPDATED_AT, "children"),
            Output(ids.PIPELINE_TABLE, "children"),
            Output(KINDS_TABLE, "children"),
            Output(LETTERS_TABLE, "children"),
            Input(ids.REFRESH, "n_intervals"),
            Input(ids.LANG, "value"),
        )
        def _render(_tick: object, lang: object) -> Any:
            return render_pipeline(ctx, current_access(), lang)

        @app.callback(
            Output(KINDS_TITLE, "children"),
            Output(LETTERS_TITLE, "children"),
            Input(ids.LANG, "value"),
        )
        def _titles(lang_value: object) -> Any:
            lang = ctx.lang(lang_value)
            return text("pipe_kinds_title", lang), text("pipe_letters_title", lang)

    return mount_page(
        main,
        ctx,
        path=PIPELINE_PATH,
        title_key="pipeline_title",
        layout=pipeline_body(main.config.requests_pathname_prefix or "/"),
        register=register,
    )
