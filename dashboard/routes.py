"""The dashboard's URLs, driven by the hierarchy (no level is named here):

    /                              the map of home: the scope (or the country)
    /?place=<code>                 the map of a unit's children (a province's communes ...)
    /?unit=<code>&metric=<id>      the map a unit belongs to, with its panel open (a click on
                                   a unit of the lowest level; the link of alert e-mails)
    /area/<level>/<code>           a unit's own page (dashboard/unit_page.py)
    /geo/<level>.json?v=<hash>     the map geometry of a level (dashboard/geo.py)
    /geo/<level>/<code>.json       the geometry of the units of a level inside one unit

``day=YYYY-MM-DD`` shows the map at the end of that day (before 2025-07-01: mapped from
the pre-2025 units). ``metric=<id>`` and ``lang=vi|en`` pick the metric and the language;
a link that leaves them out keeps what the page shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import parse_qs, urlencode

_CODE = re.compile(r"^[0-9A-Za-z_-]{1,20}$")
_AREA = re.compile(r"^/area/(?P<level>[a-z][a-z0-9_]*)/(?P<code>[^/]+)/?$")
# The URL of the country: /?place= with nothing (a bare / is home, which may be a province).
COUNTRY = ""


@dataclass(frozen=True, slots=True)
class Selection:
    """What a URL asks for; None where it says nothing (or something unusable).
    ``place`` is :data:`COUNTRY` for an explicit ``?place=``."""

    unit: str | None = None
    metric: str | None = None
    lang: str | None = None
    place: str | None = None
    day: date | None = None  # ?day=2025-03-15: the map at the end of that day


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0].strip() if values and values[0].strip() else None


def _code(value: str | None) -> str | None:
    return value if value is not None and _CODE.match(value) else None


def parse_location(pathname: str | None, search: str | None) -> Selection:
    """Read the selection from the path and the query string. A malformed unit code is
    dropped here (the panel then shows its hint); an unknown but well-formed code is kept
    so the panel can say that no such unit exists."""
    query = parse_qs((search or "").lstrip("?"), keep_blank_values=True)
    unit = _first(query, "unit")
    match = _AREA.match(_strip_prefix(pathname))
    if match is not None:
        unit = match["code"]
    place: str | None = None
    if "place" in query:
        place = _code(_first(query, "place")) if _first(query, "place") else COUNTRY
    lang = _first(query, "lang")
    return Selection(
        unit=_code(unit),
        metric=_first(query, "metric"),
        lang=lang if lang in ("vi", "en") else None,
        place=place,
        day=parse_day(_first(query, "day")),
    )


def parse_day(value: object) -> date | None:
    """A calendar day "YYYY-MM-DD" (the date input's value, the URL's ``day``)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _strip_prefix(pathname: str | None) -> str:
    """The path from its last ``/area/`` on: the app may be served under a prefix."""
    path = pathname or ""
    at = path.rfind("/area/")
    return path[at:] if at >= 0 else path


def _query(metric: str | None, lang: str | None, **rest: str) -> str:
    query = rest | ({"metric": metric} if metric else {}) | ({"lang": lang} if lang else {})
    return f"?{urlencode(query)}" if query else ""


def place_href(
    prefix: str, place: str | None, metric: str | None = None, lang: str | None = None
) -> str:
    """The map of ``place`` (None = the country), relative to the app's path prefix."""
    return f"{prefix.rstrip('/')}/{_query(metric, lang, place=place or COUNTRY)}"


def unit_href(prefix: str, code: str, metric: str | None = None, lang: str | None = None) -> str:
    """The map with a unit's panel open: ``/?unit=<code>`` (the map of its parent)."""
    return f"{prefix.rstrip('/')}/{_query(metric, lang, unit=code)}"


def area_href(
    prefix: str, level: str, code: str, metric: str | None = None, lang: str | None = None
) -> str:
    """A unit's own URL: ``/area/<level>/<code>``."""
    return f"{prefix.rstrip('/')}/area/{level}/{code}{_query(metric, lang)}"


def unit_link(public_url: str, unit: str, metric: str | None = None) -> str:
    """The link to a unit's panel, e.g. for an alert e-mail:
    ``http://ioc.example/?unit=20194&metric=pm25``."""
    query = {"unit": unit} | ({"metric": metric} if metric else {})
    return f"{public_url.rstrip('/')}/?{urlencode(query)}"
