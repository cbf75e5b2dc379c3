"""Sign-in, sessions, CSRF and access by unit on the real app (Flask's test client, a real
SQLite state database, real scrypt hashes), including crafted callback and export
requests for a unit the user may not see."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from core.db import make_engine
from core.errors import ConfigError
from core.settings import Settings, load_settings
from core.store import SqliteStore
from core.types import Point
from dashboard.app import create_app
from dashboard.auth import load_secret
from dashboard.users import UserStore
from layers.geography import Geography
from tests.conftest import FakeClock
from tests.fixtures.signin import PASSWORD, TEST_SECRET_ENV, add_user, dash_headers, sign_in

REPO = Path(__file__).resolve().parents[3]
NOW = datetime.now(UTC).replace(microsecond=0)
HAI_VAN, CAM_LE = "20194", "20260"


@dataclass
class Site:
    client: FlaskClient
    engine: Engine
    clock: FakeClock


def make_site(tmp_path: Path, settings: Settings, geography: Geography) -> Site:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    add_user(engine, "admin")
    add_user(engine, "hai-van", "operator", [HAI_VAN])
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    for code, value in ((HAI_VAN, 95.0), (CAM_LE, 41.5)):
        tags = {"device": f"aq-{code}", "province": "48", "commune": code}
        store.write(
            [Point("air", tags, {"pm25": value, "pm10": value}, NOW - timedelta(minutes=2))]
        )
    clock = FakeClock(NOW)
    app = create_app(settings, store, geography, state_engine=engine, clock=clock, devices=list)
    return Site(app.server.test_client(), engine, clock)


@pytest.fixture
def site(tmp_path: Path, settings: Settings, geography: Geography) -> Iterator[Site]:
    made = make_site(tmp_path, settings, geography)
    yield made
    made.engine.dispose()


def panel_request(unit: str) -> dict[str, Any]:
    """What Dash's renderer posts for the unit panel of ``unit``."""
    inputs = [
        ("selected-unit", "data", unit),
        ("metric-select", "value", "pm25"),
        ("lang-select", "value", "vi"),
        ("refresh-interval", "n_intervals", 1),
        ("text-px", "data", 20),
        ("place", "data", "48"),
        ("overview-range", "value", "live"),
        ("overview-days", "start_date", None),
        ("overview-days", "end_date", None),
    ]
    return {
        "output": "unit-panel.children",
        "outputs": {"id": "unit-panel", "property": "children"},
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "changedPropIds": ["selected-unit.data"],
        "state": [],
    }


def post_callback(client: FlaskClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post(
        "/_dash-update-component",
        data=json.dumps(body),
        headers=dash_headers(client) | headers,
    )


def test_nothing_is_served_before_signing_in(site: Site) -> None:
    page = site.client.get("/?unit=20194")
    assert page.status_code == 303
    assert page.headers["Location"] == "/login?next=%2F%3Funit%3D20194"
    for path in ("/_dash-layout", "/geo/commune.json", "/export/devices.csv", "/pipeline/"):
        answer = site.client.get(path)
        assert answer.status_code in (303, 401), path
        assert b"20194" not in answer.data
    refused = site.client.post("/_dash-update-component", json=panel_request(HAI_VAN))
    assert refused.status_code == 401
    form = site.client.get("/login")
    assert form.status_code == 200
    assert "Đăng nhập" in form.get_data(as_text=True)
    with site.client.get("/assets/style.css") as style:  # the form's style
        assert style.status_code == 200


def test_sign_in_sets_a_safe_session_and_goes_where_asked(site: Site) -> None:
    form = site.client.get("/login?next=/pipeline/")
    # The other language keeps where the user was going.
    assert 'href="/login?lang=en&amp;next=%2Fpipeline%2F"' in form.get_data(as_text=True)
    token = form.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    answer = site.client.post(
        "/login",
        data={
            "username": "ADMIN ",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/pipeline/",
        },
    )
    assert (answer.status_code, answer.headers["Location"]) == (303, "/pipeline/")
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if "cityops_session" in c)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert site.client.get("/pipeline/").status_code == 200
    # Signing out needs the token too, then nothing is served.
    assert site.client.post("/logout").status_code == 403
    token = site.client.get_cookie("_csrf_token")
    assert token is not None
    out = site.client.post("/logout", data={"csrf_token": token.value})
    assert out.status_code == 303
    assert site.client.get("/").status_code == 303


def test_no_open_redirect_after_signing_in(site: Site) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        form = site.client.get("/login")
        token = form.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
        answer = site.client.post(
            "/login",
            data={"username": "admin", "password": PASSWORD, "csrf_token": token, "next": target},
        )
        assert answer.headers["Location"] == "/", target


def test_wrong_passwords_are_refused_then_throttled(site: Site) -> None:
    for _ in range(5):
        answer = sign_in(site.client, "admin", "not-the-password")
        assert answer.status_code == 401
        assert "Sai tên đăng nhập hoặc mật khẩu" in answer.get_data(as_text=True)
    locked = sign_in(site.client, "admin")  # the right password, but locked now
    assert locked.status_code == 429
    assert "Thử lại sau 15 phút" in locked.get_data(as_text=True)
    site.clock.advance(15 * 60 + 1)
    assert sign_in(site.client, "admin").status_code == 303
    # An unknown user gets the same answer as a wrong password.
    assert "Sai tên" in sign_in(site.client, "nobody-here", "x" * 12).get_data(as_text=True)


def test_a_form_without_its_token_is_refused(site: Site) -> None:
    site.client.get("/login")
    answer = site.client.post(
        "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert answer.status_code == 400
    assert site.client.get("/").status_code == 303


def test_callbacks_need_the_csrf_header(site: Site) -> None:
    assert sign_in(site.client, "admin").status_code == 303
    body = panel_request(HAI_VAN)
    forged = site.client.post(
        "/_dash-update-component",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", "X-CSRFToken": "forged"},
    )
    assert forged.status_code == 403
    answer = post_callback(site.client, body)
    assert answer.status_code == 200
    assert "95,0" in answer.get_data(as_text=True)


def test_sessions_end_when_idle_and_after_a_shift(site: Site) -> None:
    assert sign_in(site.client, "admin").status_code == 303
    site.clock.advance(119 * 60)  # idle 119 min: still in
    assert site.client.get("/").status_code == 200
    site.clock.advance(121 * 60)  # idle 121 min: out, and told so
    assert site.client.get("/").status_code == 303
    assert "Phiên làm việc đã hết hạn" in site.client.get("/login").get_data(as_text=True)
    assert sign_in(site.client, "admin").status_code == 303
    for _ in range(12):  # busy all shift, a request every hour: out after 12 h all the same
        site.clock.advance(3600)
        assert site.client.get("/").status_code == 200
    site.clock.advance(61)
    assert site.client.get("/").status_code == 303


def test_a_disabled_user_is_out_within_the_cache_time(
    tmp_path: Path, settings: Settings, geography: Geography, monkeypatch: Any
) -> None:
    monkeypatch.setattr("dashboard.auth.USER_TTL_S", 0.3)
    site = make_site(tmp_path, settings, geography)
    try:
        assert sign_in(site.client, "hai-van").status_code == 303
        assert site.client.get("/").status_code == 200
        UserStore(site.engine).disable("hai-van")
        assert site.client.get("/").status_code == 200  # read 0.3 s ago: not yet
        time.sleep(0.35)
        assert site.client.get("/").status_code == 303
        assert sign_in(site.client, "hai-van").status_code == 401
    finally:
        site.engine.dispose()


def test_a_commune_officer_gets_nothing_of_another_commune(site: Site) -> None:
    """Crafted requests: the panel callback and the CSV export for Cẩm Lệ, asked by the
    officer of Hải Vân, answer as for a unit that does not exist."""
    assert sign_in(site.client, "hai-van").status_code == 303
    mine = post_callback(site.client, panel_request(HAI_VAN)).get_data(as_text=True)
    assert "95,0" in mine
    other = post_callback(site.client, panel_request(CAM_LE)).get_data(as_text=True)
    assert "Không có đơn vị hành chính mã 20260" in other
    assert "41,5" not in other
    # The map of Đà Nẵng: Hải Vân coloured, Cẩm Lệ without data.
    body = {
        "output": "..map.figure...map-drawn.data...updated-at.children...dead-letter-badge."
        "children...map-status.children...history-note.children...map-update.data..",
        "outputs": [
            {"id": i, "property": p}
            for i, p in (
                ("map", "figure"),
                ("map-drawn", "data"),
                ("updated-at", "children"),
                ("dead-letter-badge", "children"),
                ("map-status", "children"),
                ("history-note", "children"),
                ("map-update", "data"),
            )
        ],
        "inputs": [
            {"id": i, "property": p, "value": v}
            for i, p, v in (
                ("refresh-interval", "n_intervals", 1),
                ("metric-select", "value", "pm25"),
                ("lang-select", "value", "vi"),
                ("selected-unit", "data", None),
                ("text-px", "data", 20),
                ("place", "data", "48"),
                ("map-day", "date", None),
            )
        ],
        "changedPropIds": [],
        "state": [{"id": "map-drawn", "property": "data", "value": None}],
    }
    answer = post_callback(site.client, body)
    assert answer.status_code == 200
    figure = answer.get_json()["response"]["map"]["figure"]
    trace = figure["data"][0]
    values = dict(zip(trace["locations"], trace["customdata"], strict=True))
    assert "95,0" in json.dumps(values[HAI_VAN], ensure_ascii=False)
    assert "41,5" not in json.dumps(values[CAM_LE], ensure_ascii=False)
    assert "41,5" not in answer.get_data(as_text=True)


def test_proxy_mode_trusts_the_header_only_from_the_proxy(
    tmp_path: Path, geography: Geography
) -> None:
    settings = load_settings(
        REPO / "config.yaml", environ=TEST_SECRET_ENV | {"CITYOPS_DASHBOARD__AUTH__MODE": "proxy"}
    )
    site = make_site(tmp_path, settings, geography)
    try:
        ok = site.client.get("/", headers={"X-Remote-User": "hai-van"})
        assert ok.status_code == 200
        assert site.client.get("/").status_code == 401  # no header: the proxy did not sign in
        unknown = site.client.get("/", headers={"X-Remote-User": "stranger"})
        assert unknown.status_code == 403
        outside = site.client.get(
            "/", headers={"X-Remote-User": "admin"}, environ_base={"REMOTE_ADDR": "10.0.0.9"}
        )
        assert outside.status_code == 403
        assert site.client.get("/login").status_code == 404  # no password form in this mode
    finally:
        site.engine.dispose()


def test_the_session_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    settings = load_settings(
        REPO / "config.yaml",
        environ={"CITYOPS_DASHBOARD__AUTH__SECRET_KEY_FILE": str(tmp_path / "k" / "secret.key")},
    )
    first = load_secret(settings)
    assert load_secret(settings) == first
    assert len(first) >= 32
    assert (tmp_path / "k" / "secret.key").stat().st_mode & 0o777 == 0o600
    short = load_settings(
        REPO / "config.yaml", environ={"CITYOPS_DASHBOARD__AUTH__SECRET_KEY": "short"}
    )
    with pytest.raises(ConfigError, match=r"dashboard\.auth\.secret_key"):
        load_secret(short)
