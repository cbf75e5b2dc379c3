"""The drill-down's callbacks: the URL → the place on the map and the selected unit, a
click on the map → a new URL, the breadcrumb, and the search of units by name or code.

Plain functions of a :class:`DashboardContext` (tests call them directly); registered by
:func:`dashboard.callbacks.register`. The URL is the one source of truth: a click, a crumb
or a search result changes the URL, and :func:`apply_location` answers every change the
same way, including the browser's back button and a link opened on a wall screen.
"""

from __future__ import annotations

from typing import Any

from dash import no_update

from dashboard.access import Access
from dashboard.context import DashboardContext
from dashboard.routes import COUNTRY, parse_location, place_href, unit_href
from dashboard.views.nav import breadcrumb_links, search_results

SEARCH_LIMIT = 8


def clicked_code(click_data: object) -> str | None:
    """The unit code of a map click (``clickData.points[0].location``)."""
    if not isinstance(click_data, dict):
        return None
    points = click_data.get("points")
    if not isinstance(points, list) or not points or not isinstance(points[0], dict):
        return None
    location = points[0].get("location")
    return location if isinstance(location, str) and location else None


def place_value(place: str | None) -> str:
    """The PLACE store's value: a unit code, or :data:`COUNTRY` for the country."""
    return COUNTRY if place is None else place


def place_of(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def apply_location(
    ctx: DashboardContext, access: Access, pathname: str | None, search: str | None
) -> tuple[Any, Any, Any, Any, str, Any]:
    """(metric, selected unit, language, place, search box, day) from the URL: on load,
    on a click that navigated (map, breadcrumb, search result) and on the back button.

    ``?place=`` names the map; ``/area/<level>/<code>`` (or ``?unit=``) a unit, whose map
    is its own place if it has units below, else its parent's. A place out of reach
    (another deployment's link, a typo) opens home. Metric and language change only when
    the URL names them, so a link without them keeps what the screen shows.

    A user who is not an admin starts at their own unit (its map, its panel), and a place
    or unit out of their reach opens that instead."""
    selection = parse_location(pathname, search)
    wanted = place_of(selection.place) if selection.place is not None else selection.unit
    unit = selection.unit
    mine = access.top_units()
    if mine and (
        (wanted is None and selection.place is None)
        or (wanted is not None and not access.reaches(wanted))
        or (selection.place == COUNTRY and not access.everything)
    ):
        wanted = unit = mine[0]
    if unit is not None and not access.can_see(unit):
        unit = None
    view = ctx.views.of_place(wanted)
    metric = ctx.metric_id(selection.metric) if selection.metric else no_update
    lang = ctx.lang(selection.lang) if selection.lang else no_update
    day = selection.day.isoformat() if selection.day else no_update
    return metric, unit, lang, place_value(view.place), "", day


def navigate(
    ctx: DashboardContext,
    access: Access,
    click_data: object,
    metric_value: object,
    lang_value: object,
) -> Any:
    """Where a click on the map goes: into the unit when it has units below (its map),
    else the map with the unit's panel open. Nothing for a click outside every unit or on
    a unit out of the user's reach."""
    code = clicked_code(click_data)
    unit = ctx.hierarchy.get(code) if code is not None else None
    if unit is None or not ctx.views.places.within_reach(unit.code):
        return no_update
    if not access.reaches(unit.code):
        return no_update
    metric = ctx.metric_id(metric_value)
    lang = ctx.lang(lang_value)
    if ctx.views.places.can_open(unit.code):
        return place_href(ctx.url_prefix, unit.code, metric, lang)
    return unit_href(ctx.url_prefix, unit.code, metric, lang)


def render_breadcrumb(
    ctx: DashboardContext,
    access: Access,
    place_data: object,
    unit_value: object,
    lang_value: object,
) -> Any:
    """Home › … › the place on the map (› the selected unit when it is not a place)."""
    lang = ctx.lang(lang_value)
    place = place_of(place_data)
    crumbs = ctx.views.places.breadcrumb(place, lang)
    unit = ctx.hierarchy.get(unit_value) if isinstance(unit_value, str) else None
    if (
        unit is not None
        and unit.code != place
        and ctx.views.places.within_reach(unit.code)
        and access.can_see(unit.code)
    ):
        crumbs = ctx.views.places.breadcrumb(unit.code, lang)
    return breadcrumb_links(crumbs, ctx.url_prefix, lang)


def find_units(ctx: DashboardContext, access: Access, query: object, lang_value: object) -> Any:
    """Units whose name (accents and case ignored) or code matches, within reach of the
    deployment and of the user, as links: a unit with units below opens its map, the
    others the map with their panel."""
    lang = ctx.lang(lang_value)
    if not isinstance(query, str) or not query.strip():
        return []
    places = ctx.views.places
    found = []
    exact = ctx.hierarchy.get(query.strip())
    if exact is not None:
        found.append(exact)
    found += [unit for unit in ctx.hierarchy.search(query, limit=50) if unit is not exact]
    reachable = [
        unit for unit in found if places.within_reach(unit.code) and access.reaches(unit.code)
    ][:SEARCH_LIMIT]
    links = [
        (
            ctx.hierarchy.full_name(unit.code, lang),
            place_href(ctx.url_prefix, unit.code)
            if places.can_open(unit.code)
            else unit_href(ctx.url_prefix, unit.code),
        )
        for unit in reachable
    ]
    return search_results(links, lang)
