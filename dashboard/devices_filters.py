"""The devices page's filters (unit, kind, status): in the URL query, in the dropdowns,
and the dropdowns' choices for one user. Plain functions of a :class:`DashboardContext`
and an :class:`Access`; dashboard/devices_page.py binds them.

The URL is the truth, so a link opens the same view: a dropdown's change is written to
the URL; a link, back/forward or the first load set the dropdowns from it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode

import dash

from dashboard import ids
from dashboard.access import Access
from dashboard.context import DashboardContext
from dashboard.i18n import text
from dashboard.views import devices_page as views
from dashboard.views.devices import kind_label
from layers.levels import fold

FILTERS = ("unit", "kind", "status")


def parse_filters(search: str | None) -> dict[str, str | None]:
    """unit, kind and status of a URL query ("" and absent are None)."""
    query = parse_qs((search or "").lstrip("?"))
    return {key: next(iter(query.get(key, [])), "") or None for key in FILTERS}


def filters_search(search: str | None, **chosen: object) -> str:
    """The URL query with the filters ``chosen`` (None or "": left out), other arguments
    (``lang``) kept."""
    query = {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items() if v}
    for key in FILTERS:
        query.pop(key, None)
        value = chosen.get(key)
        if isinstance(value, str) and value:
            query[key] = value
    return f"?{urlencode(query)}" if query else ""


def unit_options(ctx: DashboardContext, access: Access, lang: str) -> list[dict[str, str]]:
    """The units ``access`` may see (an admin: the deployment's scope, or the country),
    each before what is inside it; searchable with or without accents and by code."""
    hierarchy = ctx.hierarchy
    if access.everything:
        scope = ctx.settings.layers.scope
        tops = [scope] if scope and hierarchy.get(scope) else []
        tops = tops or [unit.code for unit in hierarchy.units_at(hierarchy.levels[0])]
    else:
        tops = access.top_units()
    options: list[dict[str, str]] = []
    seen: set[str] = set()
    for top in tops:
        queue = [top]
        while queue:
            code = queue.pop(0)
            queue.extend(child.code for child in hierarchy.children(code))
            if code in seen or not access.can_see(code):
                continue
            seen.add(code)
            name = hierarchy.full_name(code, lang)
            label = f"{name} ({code})"
            options.append({"label": label, "value": code, "search": f"{label} {fold(name)}"})
    return options


def kind_options(ctx: DashboardContext, access: Access, lang: str) -> list[dict[str, str]]:
    """The catalogue's kinds and those of the registered devices the user may see."""
    # Derived values per period (VN_AQI) come from no device.
    kinds = {metric.kind for metric in ctx.metrics.values() if metric.period_s is None}
    kinds |= {d.kind for d in ctx.data.registry() if d.unit_code and access.can_see(d.unit_code)}
    if access.everything:
        kinds |= {device.kind for device in ctx.data.registry()}
    return [{"label": kind_label(kind, lang), "value": kind} for kind in sorted(kinds)]


def _with_asked(options: list[dict[str, str]], asked: str | None) -> list[dict[str, str]]:
    """``options`` and the value the URL asks for when it is not one of them (a unit out of
    reach, a typo), labelled as written: the dropdown would otherwise clear it, and the
    link would no longer open the view it names."""
    if asked is None or any(option["value"] == asked for option in options):
        return options
    return [*options, {"label": asked, "value": asked}]


def filter_options(
    ctx: DashboardContext, access: Access, lang: str, search: str | None
) -> tuple[tuple[list[dict[str, str]], ...], tuple[list[dict[str, str]], ...]]:
    """The options of the unit, kind and status dropdowns: as they are, and with what
    ``search`` asks for."""
    standard = (
        unit_options(ctx, access, lang),
        kind_options(ctx, access, lang),
        views.status_options(lang),
    )
    asked = parse_filters(search)
    wanted = tuple(
        _with_asked(options, asked[key]) for options, key in zip(standard, FILTERS, strict=True)
    )
    return standard, wanted


def render_labels(ctx: DashboardContext, lang_value: object) -> tuple[str, ...]:
    """The filters' labels and placeholders and the section titles in ``lang``."""
    lang = ctx.lang(lang_value)
    keys = (
        "dev_filter_unit",
        "dev_filter_kind",
        "dev_filter_status",
        "dev_filter_unit_all",
        "dev_filter_kind_all",
        "dev_filter_status_all",
        "dev_registered",
        "dev_unreg_title",
    )
    return tuple(text(key, lang) for key in keys)


def sync_filters(
    ctx: DashboardContext,
    access: Access,
    trigger: str | None,
    lang_value: object,
    search: str | None,
    chosen: tuple[object, object, object],
    has_options: bool = False,
) -> tuple[Any, ...]:
    """(URL search, unit, kind, status values, unit, kind, status options).

    A dropdown changed: the URL follows. The first call, a link, back/forward: the
    dropdowns follow the URL, their options in the same answer, so the dropdown never sees
    a value outside its options (it would clear it, and the URL would lose it). A new
    language: the options are relabelled. ``has_options``: the browser has the options
    already (sent again only when the URL asks for a value outside them)."""
    keep = dash.no_update
    if trigger in (views.DEV_UNIT, views.DEV_KIND, views.DEV_STATUS):
        unit, kind, status = chosen
        new = filters_search(search, unit=unit, kind=kind, status=status)
        same = new.lstrip("?") == (search or "").lstrip("?")
        return (keep if same else new, *([keep] * 6))
    standard, wanted = filter_options(ctx, access, ctx.lang(lang_value), search)
    if trigger == ids.LANG:
        return (*([keep] * 4), *wanted)
    asked = parse_filters(search)
    values = (asked["unit"], asked["kind"], asked["status"])
    if has_options and wanted == standard:
        return (keep, *values, keep, keep, keep)
    return (keep, *values, *wanted)
