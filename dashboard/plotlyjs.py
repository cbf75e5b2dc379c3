"""plotly.js for the page: plotly.js's geo bundle, vendored, instead of the full one.

``dcc.Graph`` draws with ``window.Plotly`` when the page already has it, and only
otherwise loads the full bundle that the plotly package ships (4.6 MiB: about 1 s of
script evaluation on a cold page, the largest part of the first map). The dashboard draws
choropleths (the map) and scatter (a unit's trend) only, which the geo partial bundle has
(choropleth, scattergeo, scatter; 1.3 MiB). It is the npm package
``plotly.js-geo-dist-min`` at the version of plotly.js that the plotly package bundles
(the figures Python builds follow that version's schema), committed with its licence under
``dashboard/vendor/plotly.js/`` (README there: source, version, checksum, how to update).

The page loads it as an ordinary script before Dash's renderer, so ``window.Plotly`` is
defined before any graph mounts and the full bundle is never requested. Served like the
geometry (``dashboard/geo.py``): gzipped once at start, a versioned URL answered
``immutable``.
"""

from __future__ import annotations

import re
from pathlib import Path

import dash
from flask import Response, request

from dashboard.geo import GeoBody, encode_bytes, versioned_response

VENDOR = Path(__file__).resolve().parent / "vendor" / "plotly.js"
BUNDLE = VENDOR / "plotly-geo.min.js"
ROUTE = "_cityops/plotly-geo.min.js"
_HEADER = re.compile(rb"plotly\.js \(geo - minified\) v(\d+\.\d+\.\d+)")


def bundle_version(data: bytes) -> str:
    """The plotly.js version in the bundle's header comment ("4.1.1")."""
    found = _HEADER.search(data[:300])
    if found is None:
        raise ValueError("not plotly.js's minified geo bundle")
    return found[1].decode()


# The vendored bundle holds no internet endpoint (vendor/plotly.js/README.md): plotly's
# default world topology URL (cdn.plot.ly) became this placeholder, filled in with this
# server's own assets URL when served; the Chart Studio upload became about:blank.
TOPOJSON_PLACEHOLDER = b"__CITYOPS_TOPOJSON_URL__"


def with_topojson_url(bundle: bytes, topojson_url: str) -> bytes:
    """The bundle as served: geo maps fetch the world topology from ``topojson_url``.
    Raises ValueError when the placeholder is not there exactly once (an updated bundle
    that was not prepared as vendor/plotly.js/README.md says)."""
    if bundle.count(TOPOJSON_PLACEHOLDER) != 1:
        raise ValueError(
            f"expected {TOPOJSON_PLACEHOLDER.decode()} once in the plotly.js bundle: "
            "prepare it as dashboard/vendor/plotly.js/README.md says"
        )
    local = topojson_url if topojson_url.endswith("/") else topojson_url + "/"
    return bundle.replace(TOPOJSON_PLACEHOLDER, local.encode())


def mount_plotly_js(app: dash.Dash, topojson_url: str) -> str:
    """Serve the bundle (:func:`with_topojson_url`) on ``app``'s server and load it in ``app``'s
    page, before the renderer. Returns its URL."""
    body: GeoBody = encode_bytes(with_topojson_url(BUNDLE.read_bytes(), topojson_url))
    routes = app.config.routes_pathname_prefix or "/"
    requests = app.config.requests_pathname_prefix or "/"

    def bundle() -> Response:
        return versioned_response(request, body, "text/javascript")

    app.server.add_url_rule(f"{routes}{ROUTE}", "cityops_plotly_js", bundle)
    url = f"{requests}{ROUTE}?v={body.version}"
    # An external script that this server serves: listed after Dash's React scripts and
    # before its renderer (Dash.scripts keeps the order; serve_locally does not drop it).
    app.scripts.append_script({"external_url": url, "external_only": True})  # type: ignore[no-untyped-call]
    return url
