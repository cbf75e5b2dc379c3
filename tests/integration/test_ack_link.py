"""The acknowledge link of alert e-mails on the real dashboard over HTTP (waitress on a free
loopback port, ``requests`` as the browser), with a real SQLite state database: GET shows
and never acknowledges, POST acknowledges and audits, expired and forged links are
refused, and it all works without signing in while every other page still asks for it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, delete, insert, select, update

from alerts.action_tables import acknowledgements, audit_log
from alerts.links import AckSigner
from alerts.repository import alert_states
from core.db import make_engine
from core.settings import Settings, load_settings
from core.store import SqliteStore
from dashboard.app import create_app, make_server, stop_server
from layers.geography import Geography
from tests.conftest import FakeClock
from tests.fixtures.signin import PASSWORD, TEST_SECRET_ENV, add_user

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECRET = TEST_SECRET_ENV["CITYOPS_DASHBOARD__AUTH__SECRET_KEY"].encode()
NOW = datetime.now(UTC).replace(microsecond=0)
AN = "an.nguyen@danang.gov.vn"
HAI_VAN = "20194"


@dataclass
class Site:
    url: str
    engine: Engine
    settings: Settings

    def token(self, **changes: Any) -> str:
        fields: dict[str, Any] = {
            "rule_id": "pm25-bad",
            "unit_code": HAI_VAN,
            "episode": 3,
            "email": AN,
            "lang": "vi",
            "expires_at": NOW + timedelta(hours=24),
        }
        fields.update(changes)
        return AckSigner(SECRET).token(**fields)

    def acks(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(select(acknowledgements)).mappings()]

    def audit(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(select(audit_log)).mappings()]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)
    folder = tmp_path_factory.mktemp("ack")
    engine = make_engine(f"sqlite:///{folder / 'state.sqlite'}")
    add_user(engine, "admin")
    store = SqliteStore(folder / "timeseries.sqlite")
    app = create_app(
        settings,
        store,
        Geography.from_settings(settings),
        state_engine=engine,
        clock=FakeClock(NOW),
        devices=list,
    )
    server = make_server(app, "127.0.0.1", 0, threads=2)
    port = int(server.effective_port)
    thread = threading.Thread(target=server.run, name="dashboard-ack", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not answer on 127.0.0.1:{port}")
            time.sleep(0.05)
    try:
        yield Site(f"http://127.0.0.1:{port}", engine, settings)
    finally:
        stop_server(server)
        thread.join(timeout=5)
        store.close()
        engine.dispose()


@pytest.fixture
def site(served: Site) -> Site:
    """The server with Hải Vân's PM2.5 alert firing in episode 3, nothing acknowledged."""
    with served.engine.begin() as connection:
        connection.execute(delete(acknowledgements))
        connection.execute(delete(audit_log))
        connection.execute(delete(alert_states))
        connection.execute(
            insert(alert_states),
            {
                "rule_id": "pm25-bad",
                "unit_code": HAI_VAN,
                "state": "firing",
                "since": NOW - timedelta(minutes=20),
                "value": 92.4,
                "last_eval": NOW,
                "fired_at": NOW - timedelta(minutes=19),
                "active_at": NOW - timedelta(minutes=20),
                "resolved_at": None,
                "episode": 3,
                "error": None,
            },
        )
    return served


def get(site: Site, token: str) -> requests.Response:
    return requests.get(f"{site.url}/ack/{token}", allow_redirects=False, timeout=10)


def post(site: Site, token: str, comment: str = "") -> requests.Response:
    return requests.post(
        f"{site.url}/ack/{token}", data={"comment": comment}, allow_redirects=False, timeout=10
    )


def test_get_shows_the_alert_and_acknowledges_nothing(site: Site) -> None:
    token = site.token()
    for _ in range(3):  # a mail scanner, the preview pane, the person
        page = get(site, token)
        assert page.status_code == 200
    body = page.text
    assert "Bụi mịn PM2.5 ở mức Xấu" in body
    assert "Phường Hải Vân, Thành phố Đà Nẵng (20194)" in body
    assert "<th" in body
    assert ">3</td>" in body
    assert "Đang mở: đang cảnh báo" in body
    assert "chưa ai xác nhận" in body
    assert AN in body
    assert '<button type="submit">Xác nhận đã nhận cảnh báo</button>' in body
    assert 'name="comment"' in body
    assert 'href="/area/commune/20194"' in body
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "Set-Cookie" not in page.headers  # no session is made for a link
    assert "http://" not in body.replace(site.url, "")
    assert "https://" not in body
    assert site.acks() == []
    assert site.audit() == []


def test_post_acknowledges_and_writes_the_audit_log(site: Site) -> None:
    answer = post(site, site.token(), comment="Đã cử người kiểm tra trạm")
    assert answer.status_code == 200
    assert "Đã xác nhận" in answer.text
    assert f"{AN} (e-mail) đã nhận cảnh báo này" in answer.text
    (ack,) = site.acks()
    assert (ack["rule_id"], ack["unit_code"], ack["episode"]) == ("pm25-bad", HAI_VAN, 3)
    assert ack["acked_by"] == f"{AN} (e-mail)"
    assert ack["comment"] == "Đã cử người kiểm tra trạm"
    (entry,) = site.audit()
    assert (entry["actor"], entry["action"], entry["target"]) == (
        f"{AN} (e-mail)",
        "ack",
        "pm25-bad/20194",
    )
    assert '"episode": 3' in entry["detail"]
    # The page now says who acknowledged it.
    again = get(site, site.token())
    assert f"bởi {AN} (e-mail) lúc" in again.text


def test_english_link_gets_an_english_page(site: Site) -> None:
    page = get(site, site.token(lang="en"))
    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert "PM2.5 at Bad level" in page.text
    assert "Acknowledge this alert" in page.text
    assert "Open: firing" in page.text


def test_expired_link_is_410_and_points_to_the_dashboard(site: Site) -> None:
    token = site.token(expires_at=NOW - timedelta(seconds=1))
    page = get(site, token)
    assert page.status_code == 410
    assert "Liên kết đã hết hạn — hãy mở bảng điều khiển" in page.text
    assert 'href="/area/commune/20194"' in page.text
    assert "<form" not in page.text
    assert post(site, token).status_code == 410
    assert site.acks() == []
    assert site.audit() == []


@pytest.mark.parametrize("mangle", ["payload", "signature", "secret", "garbage"])
def test_forged_or_cut_links_are_400(site: Site, mangle: str) -> None:
    token = site.token()
    body, signature = token.split(".")
    forged = {
        "payload": f"{site.token(episode=4).split('.')[0]}.{signature}",
        "signature": f"{body}.{signature[:-2]}AA",
        "secret": AckSigner(b"not-the-dashboards-key-0123456789").token(
            "pm25-bad", HAI_VAN, 3, AN, "vi", NOW + timedelta(hours=1)
        ),
        "garbage": "abc",
    }[mangle]
    page = get(site, forged)
    assert page.status_code == 400
    assert "Liên kết không hợp lệ" in page.text
    assert "Traceback" not in page.text
    assert post(site, forged).status_code == 400
    assert site.acks() == []


def test_unknown_rule_is_404(site: Site) -> None:
    page = get(site, site.token(rule_id="no-such-rule"))
    assert page.status_code == 404
    assert "Không còn quy tắc cảnh báo này" in page.text
    assert post(site, site.token(rule_id="no-such-rule")).status_code == 404
    assert site.acks() == []


def test_an_ended_episode_can_still_be_acknowledged(site: Site) -> None:
    with site.engine.begin() as connection:
        connection.execute(update(alert_states).values(state="ok", fired_at=None, resolved_at=NOW))
    page = get(site, site.token())
    assert page.status_code == 200
    assert "Đã kết thúc" in page.text
    assert "bạn vẫn có thể xác nhận là đã nhận được thư" in page.text
    assert post(site, site.token()).status_code == 200
    assert len(site.acks()) == 1


def test_an_alert_without_a_state_yet_is_unknown_not_ended(site: Site) -> None:
    with site.engine.begin() as connection:
        connection.execute(delete(alert_states))
    page = get(site, site.token())
    assert page.status_code == 200
    assert "Không rõ" in page.text
    assert "đã kết thúc" not in page.text
    assert "<form" in page.text


def test_a_too_long_comment_is_refused_with_the_form_again(site: Site) -> None:
    answer = post(site, site.token(), comment="x" * 1001)
    assert answer.status_code == 400
    assert "1000" in answer.text
    assert "<form" in answer.text
    assert site.acks() == []


def test_no_sign_in_for_the_link_while_other_pages_still_ask(site: Site) -> None:
    for path in ("/", "/alerts/", "/pipeline/"):
        answer = requests.get(f"{site.url}{path}", allow_redirects=False, timeout=10)
        assert answer.status_code == 303, path
        assert answer.headers["Location"].startswith("/login?next="), path
    # Someone signed in (a session and its CSRF cookie) posts the link's form, which has no
    # CSRF field: the link is exempt, so it still works.
    browser = requests.Session()
    form = browser.get(f"{site.url}/login", timeout=10).text
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    signed_in = browser.post(
        f"{site.url}/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": csrf, "next": "/"},
        allow_redirects=False,
        timeout=10,
    )
    assert signed_in.status_code == 303
    answer = browser.post(f"{site.url}/ack/{site.token()}", data={}, timeout=10)
    assert answer.status_code == 200
    assert len(site.acks()) == 1
