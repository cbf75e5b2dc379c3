"""CSV downloads of every table and chart, within what the signed-in user may see.

A page declares an export once (``ctx.exports.add("devices", producer)``); the producer is
the same access-filtered function its table uses, called with the signed-in user's
:class:`~dashboard.access.Access` and the link's query arguments. So a crafted link for
another unit gets what the page would show for it: nothing.

Served at ``<prefix>export/<name>.csv?<args>`` as UTF-8 with a byte-order mark (Excel on
Windows otherwise reads Vietnamese as mojibake), times in local time (ISO 8601 with offset).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pandas as pd
from dash import html
from flask import Response, request

from core.errors import RetryableError
from dashboard.access import Access
from dashboard.i18n import text

if TYPE_CHECKING:
    from dashboard.context import DashboardContext

log = logging.getLogger("cityops.dashboard")

Producer = Callable[["DashboardContext", Access, Mapping[str, str]], pd.DataFrame]
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


class Exports:
    """The named exports of one dashboard."""

    def __init__(self) -> None:
        self._producers: dict[str, Producer] = {}

    def add(self, name: str, producer: Producer) -> None:
        if not name or not set(name) <= _NAME_CHARS:
            raise ValueError(f"export names are [a-z0-9_]: {name!r}")
        if name in self._producers:
            raise ValueError(f"export {name!r} is already declared")
        self._producers[name] = producer

    def names(self) -> list[str]:
        return sorted(self._producers)

    def frame(
        self, name: str, ctx: DashboardContext, access: Access, args: Mapping[str, str]
    ) -> pd.DataFrame:
        """The rows of export ``name`` for ``access`` (KeyError for an unknown name)."""
        return self._producers[name](ctx, access, args)


def export_href(prefix: str, name: str, **args: object) -> str:
    """The download link of export ``name`` with the page's filters (None values left out)."""
    query = {key: str(value) for key, value in args.items() if value not in (None, "")}
    return f"{prefix.rstrip('/')}/export/{name}.csv" + (f"?{urlencode(query)}" if query else "")


def csv_link(href: str, lang: str, class_name: str = "download-link") -> html.A:
    """The "Tải CSV" link under a table or chart (``href`` from :func:`export_href`)."""
    return html.A(text("download_csv", lang), href=href, className=class_name, download="")


def to_csv(frame: pd.DataFrame, tz: ZoneInfo) -> bytes:
    """``frame`` as CSV bytes: UTF-8 with BOM, datetimes in ``tz`` (ISO 8601), the index
    kept when it is named."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert(tz).map(_iso)
        elif out[column].dtype == object:
            out[column] = out[column].map(lambda v: _iso(v.astimezone(tz)) if _aware(v) else v)
    if isinstance(out.index, pd.DatetimeIndex) and out.index.tz is not None:
        out.index = pd.Index([_iso(ts) for ts in out.index.tz_convert(tz)], name=out.index.name)
    keep_index = out.index.name is not None
    text: str = out.to_csv(index=keep_index, lineterminator="\r\n")
    return b"\xef\xbb\xbf" + text.encode("utf-8")


def _aware(value: Any) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None


def _iso(value: Any) -> str:
    if value is None or value is pd.NaT:
        return ""
    return str(value.isoformat(timespec="seconds"))


def mount_exports(ctx: DashboardContext, server: Any, routes_prefix: str) -> None:
    """``<prefix>export/<name>.csv`` on the Flask ``server`` (signed-in users only: the
    gate of dashboard/auth.py runs before it)."""
    from dashboard.auth import current_access

    def download(name: str) -> Response:
        args = {key: value for key, value in request.args.items()}
        try:
            frame = ctx.exports.frame(name, ctx, current_access(), args)
        except KeyError:
            return Response(f"no export {name!r}\n", status=404, mimetype="text/plain")
        except ValueError as exc:  # a bad filter value: say which
            return Response(f"{exc}\n", status=400, mimetype="text/plain")
        except Exception as exc:
            if isinstance(exc, RetryableError):
                log.warning("export %s failed: %s", name, exc)
            else:
                log.exception("export %s failed", name)
            return Response(
                "Không tải được dữ liệu / could not load the data, try again\n",
                status=503,
                mimetype="text/plain; charset=utf-8",
            )
        stamp = ctx.clock.now().astimezone(ctx.tz).strftime("%Y%m%d-%H%M")
        return Response(
            to_csv(frame, ctx.tz),
            mimetype="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="cityops-{name}-{stamp}.csv"',
                "Cache-Control": "no-store",
            },
        )

    server.add_url_rule(f"{routes_prefix}export/<name>.csv", "cityops_export", download)
