"""The map geometry over HTTP: one prepared, gzipped body per view, served by URL.

    /geo/<level>.json?v=<hash>                  every unit of ``level`` inside the scope
    /geo/<level>/<parent_code>.json?v=<hash>    the units of ``level`` inside one unit
                                                (the communes of a province: drill-down)

A view is prepared once per process (simplified for the size it is drawn at, see
``Geography.map_geojson``), serialised, gzipped at level 9 and kept in memory; nothing is
compressed per request. ``<hash>`` is the first 16 hex digits of the SHA-256 of the JSON.

Caching (docs/design/008-national-maps.md): the page only ever asks for versioned URLs,
which are answered ``public, max-age=1 year, immutable``: a wall screen that reloads after a
power cut or a kiosk restart draws from its cache without asking; new boundaries give new
bytes, a new hash and so a new URL. A request without ``v`` (or with an old one) is answered
``no-cache`` with the ETag, so it is revalidated (304) and never served stale. The ETag is
strong and names the bytes sent: ``"<hash>"`` plain, ``"<hash>-gz"`` gzipped.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from dataclasses import dataclass

from flask import Request, Response

from layers.geography import Geography

VERSIONED_MAX_AGE_S = 365 * 24 * 3600
HASH_DIGITS = 16


@dataclass(frozen=True, slots=True)
class GeoBody:
    """One view, ready to send."""

    plain: bytes
    gzipped: bytes
    version: str  # hash of ``plain``; the ``v`` of the URL and the ETag

    @property
    def etags(self) -> tuple[str, str]:
        return self.version, f"{self.version}-gz"


def encode(collection: object) -> GeoBody:
    plain = json.dumps(collection, ensure_ascii=False, separators=(",", ":")).encode()
    return encode_bytes(plain)


def encode_bytes(plain: bytes) -> GeoBody:
    """Any body served by a versioned URL (the geometry, the vendored plotly.js)."""
    version = hashlib.sha256(plain).hexdigest()[:HASH_DIGITS]
    return GeoBody(plain, gzip.compress(plain, 9, mtime=0), version)


def versioned_response(request: Request, body: GeoBody, mimetype: str) -> Response:
    """``body`` with the caching rules above: immutable for its own ``v``, revalidated
    otherwise; gzipped bytes as stored when the client accepts gzip."""
    if request.args.get("v") == body.version:
        cache = f"public, max-age={VERSIONED_MAX_AGE_S}, immutable"
    else:
        cache = "no-cache"  # revalidate: an unversioned URL may change with a restart
    zipped = request.accept_encodings["gzip"] > 0
    etag = body.etags[1] if zipped else body.etags[0]
    headers = {"Cache-Control": cache, "ETag": f'"{etag}"', "Vary": "Accept-Encoding"}
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    if zipped:
        headers["Content-Encoding"] = "gzip"  # Flask-Compress leaves it alone
        return Response(body.gzipped, mimetype=mimetype, headers=headers)
    return Response(body.plain, mimetype=mimetype, headers=headers)


class GeoCache:
    """The prepared bodies of the views asked for so far (thread-safe)."""

    def __init__(self, geography: Geography, url_prefix: str = "/") -> None:
        self.geography = geography
        self.url_prefix = url_prefix if url_prefix.endswith("/") else url_prefix + "/"
        self._bodies: dict[tuple[str, str | None], GeoBody] = {}
        self._lock = threading.Lock()

    def get(self, level: str, parent: str | None = None) -> GeoBody:
        """The body of a view, prepared on first use. Raises KeyError for a level without
        boundaries or a parent that has no units of ``level`` inside the scope."""
        key = (level, parent)
        with self._lock:
            if key not in self._bodies:
                self._bodies[key] = encode(self.geography.map_geojson(level, parent))
            return self._bodies[key]

    def url(self, level: str, parent: str | None = None) -> str:
        """The versioned URL the page uses (prepares the view if needed)."""
        version = self.get(level, parent).version
        path = f"geo/{level}.json" if parent is None else f"geo/{level}/{parent}.json"
        return f"{self.url_prefix}{path}?v={version}"

    def response(self, request: Request, level: str, parent: str | None = None) -> Response:
        try:
            body = self.get(level, parent)
        except KeyError:
            what = f"{level}/{parent}" if parent is not None else level
            return Response(
                json.dumps({"error": "no such map geometry", "view": what}, ensure_ascii=False),
                status=404,
                mimetype="application/json",
            )
        return versioned_response(request, body, "application/json")
