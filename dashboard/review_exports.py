"""The weekly review as files: ``<prefix>export/review.xlsx`` and ``export/review.pdf``
with ``?unit=48&week=2026-W47&lang=vi`` (week: default last week; lang: default the
user's language, as on the page). The same report the page shows
(reports.weekly.build_weekly), within what the signed-in user may see: a unit outside
their access answers 404 like an unknown one.

Mounted next to the CSV exports (dashboard/exports.py), behind the sign-in gate.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Response, request

from core.errors import CityOpsError, RetryableError
from core.settings import Settings
from dashboard.access import Access

if TYPE_CHECKING:
    from dashboard.context import DashboardContext

log = logging.getLogger("cityops.dashboard")

KINDS = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def _plain(message: str, status: int) -> Response:
    return Response(f"{message}\n", status=status, mimetype="text/plain; charset=utf-8")


def review_file(
    ctx: DashboardContext,
    access: Access,
    args: Mapping[str, str],
    kind: str,
    settings: Settings | None = None,
) -> Response:
    """The review as ``kind`` ("xlsx" or "pdf") for the unit and week in ``args``.
    ``settings``: the full catalogue (ctx.settings holds only the live metrics, without the
    public-service KPIs the review shows)."""
    from reports.mail import file_stem
    from reports.pdf import write_pdf
    from reports.weekly import UnknownUnit, build_weekly
    from reports.weeks import BadWeek, last_complete_week, parse_week
    from reports.xlsx import write_xlsx

    unit = (args.get("unit") or "").strip()
    lang = args.get("lang") or ctx.settings.site.language
    if lang not in ("vi", "en"):
        return _plain(f"lang must be vi or en: {lang!r}", 400)
    if not unit or not access.can_see(unit):
        return _plain(f"không có đơn vị / no such unit: {unit!r}", 404)
    now = ctx.clock.now()
    try:
        week = parse_week(args["week"]) if args.get("week") else last_complete_week(now, ctx.tz)
    except BadWeek as exc:
        return _plain(str(exc), 400)
    try:
        report = build_weekly(
            settings or ctx.settings,
            ctx.data.store,
            ctx.state_engine,
            ctx.hierarchy,
            unit,
            week,
            now=now,
        )
        if kind == "pdf":
            body = write_pdf(report, lang)
        else:
            buffer = io.BytesIO()
            write_xlsx(report, lang, buffer)
            body = buffer.getvalue()
    except UnknownUnit as exc:
        return _plain(str(exc), 404)
    except Exception as exc:
        if isinstance(exc, (RetryableError, CityOpsError)):
            log.warning("review export %s %s %s failed: %s", unit, week, kind, exc)
        else:
            log.exception("review export %s %s %s failed", unit, week, kind)
        return _plain("Không tải được dữ liệu / could not load the data, try again", 503)
    filename = f"{file_stem(unit, week, lang)}.{kind}"
    return Response(
        body,
        mimetype=KINDS[kind],
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def mount_review_exports(
    ctx: DashboardContext, server: Any, routes_prefix: str, settings: Settings | None = None
) -> None:
    """The two routes on the Flask ``server`` (signed-in users only: the gate of
    dashboard/auth.py runs before them)."""
    from dashboard.auth import current_access, remembered_lang

    def download(kind: str) -> Response:
        args = {key: value for key, value in request.args.items()}
        if not args.get("lang"):  # the language the user reads the page in
            args["lang"] = remembered_lang(ctx.settings.site.language)
        return review_file(ctx, current_access(), args, kind, settings)

    for kind in KINDS:
        server.add_url_rule(
            f"{routes_prefix}export/review.{kind}",
            f"cityops_review_{kind}",
            download,
            defaults={"kind": kind},
        )
