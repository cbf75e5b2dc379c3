"""The dashboard's URLs. One page today; the route shape is ready for more:

    /                              the map of the configured map level
    /?unit=<code>&metric=<id>      the same, with a unit's panel open (alert e-mails link here)
    /area/<level>/<code>           reserved for a page per unit; today it opens that unit's panel
    /geo/<level>.json?v=<hash>     the map geometry of a level (dashboard/geo.py)
    /geo/<level>/<code>.json       the geometry of the units of a level inside one unit

``lang=vi|en`` in the query picks the language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

_CODE = re.compile(r"^[0-9A-Za-z_-]{1,20}$")
_AREA = re.compile(r"^/area/(?P<level>[a-z][a-z0-9_]*)/(?P<code>[^/]+)/?$")


@dataclass(frozen=True, slots=True)
class Selection:
    """What a URL asks for; None where it says nothing (or something unusable)."""

    unit: str | None = None
    metric: str | None = None
    lang: str | None = None


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0].strip() if values and values[0].strip() else None


def parse_location(pathname: str | None, search: str | None) -> Selection:
    """Read the selection from the path and the query string. A malformed unit code is
    dropped here (the panel then shows its hint); an unknown but well-formed code is kept
    so the panel can say that no such unit exists."""
    query = parse_qs((search or "").lstrip("?"))
    unit = _first(query, "unit")
    match = _AREA.match(pathname or "")
    if match is not None:
        unit = match["code"]
    if unit is not None and not _CODE.match(unit):
        unit = None
    lang = _first(query, "lang")
    return Selection(
        unit=unit,
        metric=_first(query, "metric"),
        lang=lang if lang in ("vi", "en") else None,
    )


def unit_link(public_url: str, unit: str, metric: str | None = None) -> str:
    """The link to a unit's panel, e.g. for an alert e-mail:
    ``http://ioc.example/?unit=20194&metric=pm25``."""
    query = {"unit": unit} | ({"metric": metric} if metric else {})
    return f"{public_url.rstrip('/')}/?{urlencode(query)}"
