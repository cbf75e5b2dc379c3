"""Wall links on SQLite and PostgreSQL: only the token's hash is kept, a revoked link
stops opening its wall, and the sign-in gate lets a wall session read its own wall only
(the real app behind the real gate, through Flask's test client)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from alerts.action_tables import audit_log
from alerts.actions import AlertActions
from core.db import make_engine
from core.settings import Settings
from dashboard.app import create_app
from dashboard.wall_links import RECHECK_S, WallGate, WallLinks, hash_token, wall_links, wall_url
from layers.geography import Geography
from tests.conftest import FakeClock
from tests.fixtures.signin import add_user, sign_in
from tests.unit.dashboard.devices_seed import NOW, FakeStore

WALL = "phong-dieu-hanh"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    built = make_engine(url)
    yield built
    built.dispose()


def test_only_the_hash_is_kept_and_revoking_is_recorded(engine: Engine) -> None:
    clock = FakeClock(NOW)
    AlertActions(engine, clock).migrate()  # the audit log exists: link events go there
    links = WallLinks(engine, clock)
    assert links.migrate() == [1]
    assert links.migrate() == []  # idempotent
    link, token = links.create(WALL, "admin")
    assert len(token) >= 43  # 32 random bytes, URL-safe
    with engine.connect() as connection:
        stored = connection.execute(select(wall_links)).mappings().one()
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps({k: str(v) for k, v in stored.items()})
    assert links.by_token(token) == link
    assert links.by_token(token + "x") is None
    clock.advance(60)
    revoked = links.revoke(link.id, "truc-ban")
    assert revoked is not None
    assert revoked.revoked_at == NOW + timedelta(seconds=60)
    assert links.revoke(link.id, "truc-ban") == revoked  # again: no change
    assert links.revoke(999, "truc-ban") is None
    found = links.by_token(token)
    assert found is not None
    assert not found.active
    with engine.connect() as connection:
        actions = connection.execute(select(audit_log.c.action, audit_log.c.actor)).all()
    assert [tuple(row) for row in actions] == [
        ("wall_link_create", "admin"),
        ("wall_link_revoke", "truc-ban"),
    ]
    assert wall_url("https://dh.danang.gov.vn/", WALL, token) == (
        f"https://dh.danang.gov.vn/wall/{WALL}?key={token}"
    )
    assert hash_token(token) == stored["token_hash"]


def test_the_gate_rechecks_every_30_s(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    links = WallLinks(engine, FakeClock(NOW))
    links.migrate()
    link, token = links.create(WALL, "admin")
    other, other_token = links.create("sanh", "admin")
    now = [100.0]
    gate = WallGate(links, {WALL: ("48",), "sanh": ("48",)}, monotonic=lambda: now[0])
    session: dict[str, object] = {"u": "someone"}
    assert not gate.start(f"wall/{WALL}", other_token, session)  # another wall's link
    assert not gate.start(f"wall/{WALL}", "made-up", session)
    assert gate.start(f"wall/{WALL}/", token, session)
    assert "u" not in session  # a new session
    allowed = gate.check(f"wall/{WALL}/_dash-update-component", session)
    assert allowed is not None
    assert allowed.wall == WALL
    assert allowed.units == ("48",)
    assert gate.check("geo/commune.json", session) == allowed  # the map's geometry
    assert gate.check("alerts/", session) is not None
    assert gate.check("alerts/", session).refuse == 403  # type: ignore[union-attr]
    assert gate.check("wall/sanh/", session).refuse == 403  # type: ignore[union-attr]
    assert gate.check("alerts/", {}) is None  # not a wall session: the usual rules
    links.revoke(link.id, "admin")
    now[0] += RECHECK_S - 1
    assert gate.check(f"wall/{WALL}/", session) == allowed  # not re-read yet
    now[0] += 2
    refused = gate.check(f"wall/{WALL}/", session)
    assert refused is not None
    assert refused.refuse == 410
    assert refused.revoked
    assert not gate.start(f"wall/{WALL}", token, {})  # a revoked link opens nothing
    assert other.active


@pytest.fixture
def client(settings: Settings, geography: Geography, tmp_path: Path) -> Iterator[FlaskClient]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    add_user(engine, "admin")
    add_user(engine, "ha-noi", "viewer", ["01"])
    app = create_app(settings, FakeStore(), geography, devices=list, state_engine=engine)  # type: ignore[arg-type]
    app.server.config["TESTING"] = True
    app.server.config["cityops_engine"] = engine
    with app.server.test_client() as made:
        yield made
    engine.dispose()


def test_a_wall_link_opens_its_wall_and_nothing_else(client: FlaskClient) -> None:
    engine = client.application.config["cityops_engine"]
    links = WallLinks(engine)
    link, token = links.create(WALL, "admin")
    assert client.get(f"/wall/{WALL}/").status_code == 303  # no link, no sign-in: sign in
    opened = client.get(f"/wall/{WALL}?key={token}")
    assert opened.status_code == 303
    assert opened.location.endswith(f"/wall/{WALL}/")
    assert "key=" not in opened.location  # the token leaves the address bar
    page = client.get(f"/wall/{WALL}/")
    assert page.status_code == 200
    assert client.get(f"/wall/{WALL}/_dash-layout").status_code == 200
    assert client.get("/geo/commune.json").status_code in (200, 304)
    for other in ("/alerts/", "/", "/devices/", "/export/devices.csv", "/pipeline/"):
        assert client.get(other).status_code == 403, other
    assert links.get(link.id).last_seen is not None  # type: ignore[union-attr]
    links.revoke(link.id, "admin")
    auth = next(
        f.__self__  # type: ignore[attr-defined]
        for f in client.application.before_request_funcs[None]
        if hasattr(getattr(f, "__self__", None), "walls")
    )
    auth.walls._checked.clear()  # as if 30 s had passed
    refused = client.get(f"/wall/{WALL}/_dash-layout")
    assert refused.status_code == 410
    assert "Liên kết đã bị thu hồi" in refused.get_data(as_text=True)


def test_a_signed_in_user_opens_a_wall_of_their_units(client: FlaskClient) -> None:
    sign_in(client, "admin")
    assert client.get(f"/wall/{WALL}/").status_code == 200
    assert client.get("/alerts/").status_code == 200  # an ordinary session: every page
