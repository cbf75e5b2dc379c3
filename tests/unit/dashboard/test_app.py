"""The app factory over HTTP: local assets only, compressed responses, the geometry route,
and a real waitress server on a free port."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dash
import pytest
from flask.testing import FlaskClient
from plotly.offline import get_plotlyjs_version
from sqlalchemy import Engine

from core.db import make_engine
from core.settings import Settings
from core.store import SqliteStore
from dashboard.app import create_app, make_server, stop_server
from dashboard.plotlyjs import BUNDLE, bundle_version, with_topojson_url
from layers.geography import Geography
from tests.fixtures.signin import add_user, sign_in

ASSETS = Path(__file__).resolve().parents[3] / "dashboard" / "assets"
TOPOJSON_LAYERS = {"coastlines", "countries", "lakes", "land", "ocean", "rivers", "subunits"}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield made
    made.dispose()


@pytest.fixture
def app(
    tmp_path: Path, settings: Settings, geography: Geography, engine: Engine
) -> Iterator[dash.Dash]:
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    add_user(engine, "admin")
    yield create_app(settings, store, geography, state_engine=engine)
    store.close()


@pytest.fixture
def client(app: dash.Dash) -> FlaskClient:
    signed_in = app.server.test_client()
    assert sign_in(signed_in, "admin").status_code == 303
    return signed_in


def test_page_loads_only_local_scripts_and_styles(client: FlaskClient) -> None:
    for path in ("/", "/area/commune/20194", "/?unit=20194&metric=pm10"):
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        references = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert references, html
        assert all(ref.startswith("/") and not ref.startswith("//") for ref in references), (
            references
        )
        if not path.startswith("/area/"):  # the unit page has its own title
            assert "<title>Trung tâm Điều hành Thông minh Đà Nẵng</title>" in html
    config = json.loads(
        re.search(r'id="_dash-config" type="application/json"[^>]*>(.*?)</script>', html, re.S)[1]
    )
    assert config["serve_locally"] is True
    assert "plotlyjs_url" not in config


def test_plotly_js_is_the_vendored_geo_bundle(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    scripts = re.findall(r'src="([^"]+)"', html)
    layout = client.get("/_dash-layout").get_data(as_text=True)
    assert "topojson" in layout  # the map's config points at the local topology
    renderer = next(src for src in scripts if "dash_renderer" in src)
    response = client.get(renderer, headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    # The geo bundle is a script of the page, before the renderer: dcc.Graph then finds
    # window.Plotly and never loads plotly's full bundle.
    bundle = next(src for src in scripts if "plotly" in src)
    assert re.fullmatch(r"/_cityops/plotly-geo\.min\.js\?v=[0-9a-f]{16}", bundle), scripts
    assert scripts.index(bundle) < scripts.index(renderer)
    assert not [src for src in scripts if src.endswith("plotly.min.js")]
    plotly = client.get(bundle, headers={"Accept-Encoding": "gzip"})
    assert plotly.status_code == 200
    assert plotly.headers["Content-Encoding"] == "gzip"  # stored gzipped, not per request
    assert "immutable" in plotly.headers["Cache-Control"]
    assert plotly.mimetype == "text/javascript"
    assert len(plotly.data) < 600_000  # 1.3 MiB uncompressed
    body = gzip.decompress(plotly.data)
    assert body == with_topojson_url(BUNDLE.read_bytes(), "/assets/topojson/")
    # Nothing in what the browser runs points at the internet by itself: what is left are
    # XML namespaces and links shown to people (licence comments, docs).
    urls = set(re.findall(rb"https?://[A-Za-z0-9./_-]+", body))
    fetchable = {
        url
        for url in urls
        if not url.startswith((b"http://www.w3.org/", b"https://github.com/"))
        and url
        not in {
            b"https://plotly.com/",  # the logo's link, hidden (displaylogo False)
            b"https://plotly.com/javascript/animations/",  # an error message's link
            b"http://syntheti.cc",  # licence comments
            b"http://getify.mit-license.org",
        }
    }
    assert fetchable == set()
    assert b"/assets/topojson/" in body
    etag = plotly.headers["ETag"]
    again = client.get(bundle, headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert again.status_code == 304
    # An old or missing version is revalidated, never cached as current.
    assert client.get("/_cityops/plotly-geo.min.js").headers["Cache-Control"] == "no-cache"


def test_vendored_plotly_js_matches_the_plotly_package() -> None:
    """The figures are built by the plotly package for its own plotly.js version: the
    vendored bundle must be that version (update both together: vendor/plotly.js/README.md)."""
    assert bundle_version(BUNDLE.read_bytes()) == get_plotlyjs_version()
    assert hashlib.sha256(BUNDLE.read_bytes()).hexdigest() in (
        BUNDLE.parent / "README.md"
    ).read_text(encoding="utf-8")
    licence = (BUNDLE.parent / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License")
    assert "Plotly" in licence


def _geo_url(client: FlaskClient) -> str:
    """The versioned URL the page uses (the e2e tests check that the browser asks for it)."""
    version = client.get("/geo/commune.json").headers["ETag"].strip('"')
    return f"/geo/commune.json?v={version}"


def test_geometry_route_serves_the_map_level_gzipped_and_cached(
    app: dash.Dash, client: FlaskClient
) -> None:
    url = _geo_url(client)
    assert re.fullmatch(r"/geo/commune\.json\?v=[0-9a-f]{16}", url), url
    response = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Vary"] == "Accept-Encoding"
    collection = json.loads(gzip.decompress(response.data))
    assert collection["type"] == "FeatureCollection"
    ids = [feature["id"] for feature in collection["features"]]
    assert len(ids) == 94
    assert "20194" in ids

    plain = client.get(url)
    assert "Content-Encoding" not in plain.headers
    assert json.loads(plain.data) == collection
    # strong ETags name the bytes: the version for the plain body, -gz for the gzipped one
    version = url.rsplit("=", 1)[1]
    assert plain.headers["ETag"] == f'"{version}"'
    assert response.headers["ETag"] == f'"{version}-gz"'
    assert hashlib.sha256(plain.data).hexdigest().startswith(version)

    etag = response.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "gzip"})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag


def test_unversioned_geometry_is_revalidated(app: dash.Dash, client: FlaskClient) -> None:
    version = _geo_url(client).rsplit("=", 1)[1]
    for url in ("/geo/commune.json", "/geo/commune.json?v=0123456789abcdef"):
        response = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-cache", url
        etag = response.headers["ETag"]
        assert etag == f'"{version}-gz"'
        check = client.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "gzip"})
        assert check.status_code == 304
    stale = client.get("/geo/commune.json", headers={"If-None-Match": '"0123456789abcdef"'})
    assert stale.status_code == 200


def test_geometry_of_the_children_of_one_unit(client: FlaskClient) -> None:
    response = client.get("/geo/commune/48.json", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    ids = [feature["id"] for feature in json.loads(gzip.decompress(response.data))["features"]]
    assert len(ids) == 94
    assert all(code.startswith("2") and len(code) == 5 for code in ids)
    assert client.get("/geo/province/48.json").status_code == 404  # not above its level


@pytest.mark.parametrize(
    "path",
    [
        "/geo/district.json",  # a level without boundaries
        "/geo/nope.json",
        "/geo/province%00.json",
        "/geo/commune/99.json",  # no such unit
        "/geo/commune/01.json",  # Hà Nội: outside the scope (Đà Nẵng)
        "/geo/commune/20194.json",  # a commune has no communes
        "/geo/nope/48.json",
    ],
)
def test_unknown_geometry_is_a_json_404(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, path
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "no such map geometry"
    assert "Traceback" not in response.get_data(as_text=True)


def test_geometry_route_serves_no_files(client: FlaskClient) -> None:
    response = client.get("/geo/..%2Fconfig.json")
    assert response.status_code in (200, 404)
    assert "layers:" not in response.get_data(as_text=True)
    assert client.get("/geo/../config.yaml").status_code in (200, 404)
    assert "layers:" not in client.get("/geo/../config.yaml").get_data(as_text=True)


def test_empty_world_topology_is_shipped(client: FlaskClient) -> None:
    with client.get("/assets/topojson/world_110m.json") as response:
        assert response.status_code == 200
        topology = json.loads(response.data)
    assert topology["type"] == "Topology"
    assert set(topology["objects"]) == TOPOJSON_LAYERS
    assert all(layer["geometries"] == [] for layer in topology["objects"].values())


def test_font_and_licence_are_shipped(client: FlaskClient) -> None:
    with client.get("/assets/style.css") as response:
        css = response.get_data(as_text=True)
    fonts = re.findall(r'url\("([^"]+)"\)', css)
    assert fonts == ["fonts/NotoSans-Regular.ttf", "fonts/NotoSans-Bold.ttf"]
    for font in fonts:
        with client.get(f"/assets/{font}") as response:
            assert response.status_code == 200, font
            assert response.data[:4] == b"\x00\x01\x00\x00"  # a TrueType file
    licence = (ASSETS / "fonts" / "OFL.txt").read_text(encoding="utf-8")
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence
    assert "Reserved Font Name" in licence


def test_factory_builds_independent_apps(
    tmp_path: Path, settings: Settings, geography: Geography, engine: Engine
) -> None:
    store = SqliteStore(tmp_path / "other.sqlite")
    try:
        first = create_app(settings, store, geography, state_engine=engine)
        second = create_app(settings, store, geography, state_engine=engine)
        assert first.server is not second.server
        # the map page's own (each other page is an app of its own)
        assert len(first.callback_map) == len(second.callback_map) == 11
    finally:
        store.close()


def test_waitress_server_on_a_free_port(app: dash.Dash) -> None:
    server = make_server(app, "127.0.0.1", 0)
    port = server.effective_port  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as r:
            assert r.status == 200
            assert 'name="csrf_token"' in r.read().decode()
        # everything but the sign-in page needs a session
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/geo/commune.json", timeout=5)
        assert refused.value.code == 401
        refused.value.close()
    finally:
        server.close()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_stop_server_returns_while_a_browser_keeps_a_connection_open(app: dash.Dash) -> None:
    import socket

    server = make_server(app, "127.0.0.1", 0)
    port = server.effective_port  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as browser:
        browser.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        assert browser.recv(12).startswith(b"HTTP/1.1 200")
        stop_server(server)
        thread.join(timeout=5)
        assert not thread.is_alive()


def test_the_vendored_bundle_holds_no_internet_endpoint() -> None:
    """Air-gapped by construction: plotly's CDN and Chart Studio URLs are not in the file,
    and the page fills the topology URL in with its own assets' (README there)."""
    bundle = BUNDLE.read_bytes()
    assert b"cdn.plot.ly" not in bundle
    assert b"cloud.plotly.com" not in bundle
    served = with_topojson_url(bundle, "/cityops/assets/topojson")
    assert b"__CITYOPS_TOPOJSON_URL__" not in served
    assert served.count(b'"/cityops/assets/topojson/"') == 1
    with pytest.raises(ValueError, match="README"):
        with_topojson_url(served, "/t/")  # an unprepared bundle is refused


def test_the_wall_screens_dark_theme_stays_on_the_walls(client: FlaskClient) -> None:
    for path in ("/", "/area/commune/20194", "/alerts/", "/review/"):
        html = client.get(path).get_data(as_text=True)
        assert "style.css" in html, path
        assert "wall.css" not in html, path
        assert "wall.js" not in html, path
