"""The unit page on the real app (Flask's test client, real sign-in): its route, crafted
callback and export requests of a commune officer for another commune."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

import dashboard.app as app_module
from core.db import make_engine
from core.settings import Settings
from core.store import SqliteStore
from core.types import Point
from dashboard.context import DashboardContext
from dashboard.unit_controls import UNIT_HEAD
from dashboard.unit_page import mount_unit_page
from layers.geography import Geography
from tests.conftest import FakeClock
from tests.fixtures.signin import add_user, dash_headers, sign_in

NOW = datetime.now(UTC).replace(microsecond=0)
HAI_VAN, CAM_LE = "20194", "20260"


@dataclass
class Site:
    client: FlaskClient
    ctx: DashboardContext
    engine: Engine


@pytest.fixture
def site(
    tmp_path: Path, settings: Settings, geography: Geography, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Site]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    add_user(engine, "hai-van", "leader", [HAI_VAN])
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    for code, value in ((HAI_VAN, 95.0), (CAM_LE, 41.5)):
        tags = {"device": f"aq-{code}", "province": "48", "commune": code}
        store.write([Point("air", tags, {"pm25": value, "pm10": 1.0}, NOW - timedelta(minutes=2))])
    # The context create_app builds, caught on its way to the exports.
    seen: list[DashboardContext] = []
    real = app_module.mount_exports
    monkeypatch.setattr(
        app_module, "mount_exports", lambda ctx, *args: (seen.append(ctx), real(ctx, *args))
    )
    app = app_module.create_app(
        settings, store, geography, state_engine=engine, clock=FakeClock(NOW), devices=list
    )
    if not any(rule.rule.startswith("/area/") for rule in app.server.url_map.iter_rules()):
        mount_unit_page(app, seen[0])  # until dashboard/app.py mounts it itself
    yield Site(app.server.test_client(), seen[0], engine)
    store.close()
    engine.dispose()


def render_request(client: FlaskClient, pathname: str, search: str = "") -> Any:
    """What Dash's renderer posts for the unit page's render callback."""
    callback = next(
        c
        for c in client.get("/area/_dash-dependencies").get_json()
        if f"{UNIT_HEAD}.children" in c["output"]
    )
    outputs = [
        {"id": part.split(".")[0], "property": part.split(".")[1]}
        for part in callback["output"].strip(".").split("...")
    ]
    values = {"pathname": pathname, "search": search, "value": "vi", "data": None}
    body = {
        "output": callback["output"],
        "outputs": outputs,
        "inputs": [
            {"id": i["id"], "property": i["property"], "value": values[i["property"]]}
            for i in callback["inputs"]
        ],
        "changedPropIds": ["url.pathname"],
        "state": [],
    }
    return client.post(
        "/area/_dash-update-component", data=json.dumps(body), headers=dash_headers(client)
    )


def test_the_page_is_served_to_signed_in_users_only(site: Site) -> None:
    client = site.client
    assert client.get("/area/commune/20194").status_code == 303  # to the sign-in page
    assert sign_in(client, "hai-van").status_code == 303
    page = client.get("/area/commune/20194?metric=pm25")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<title>Đơn vị hành chính</title>" in html
    assert "/_cityops/plotly-geo.min.js?v=" in html  # the geo bundle, not the full one
    redirect = client.get("/area")
    assert (redirect.status_code, redirect.headers["Location"]) == (308, "/area/")
    assert client.get("/area/_dash-layout").status_code == 200


def test_crafted_requests_for_another_commune_get_nothing(site: Site) -> None:
    client = site.client
    assert sign_in(client, "hai-van").status_code == 303
    mine = render_request(client, "/area/commune/20194").get_data(as_text=True)
    assert "95,0" in mine
    theirs = render_request(client, "/area/commune/20260").get_data(as_text=True)
    assert "Không có đơn vị hành chính mã 20260" in theirs
    assert "41,5" not in theirs
    unknown = render_request(client, "/area/commune/20261").get_data(as_text=True)
    assert theirs.replace("20260", "X") == unknown.replace("20261", "X")

    csv = client.get("/export/unit_kpis.csv?unit=20194").get_data(as_text=True)
    assert csv.startswith("\ufeffmetric,label,unit,value")
    assert "95.0" in csv
    blank = client.get("/export/unit_kpis.csv?unit=20260").get_data(as_text=True)
    assert "41.5" not in blank
    assert blank == client.get("/export/unit_kpis.csv?unit=20261").get_data(as_text=True)
    ranking = client.get("/export/unit_children.csv?unit=48&metric=pm25")
    assert ranking.get_data(as_text=True).splitlines()[1:] == []  # the header only
    trend = client.get("/export/unit_trend.csv?unit=20260&metric=pm25")
    assert trend.get_data(as_text=True).splitlines()[1:] == []
    bad = client.get("/export/unit_trend.csv?unit=20194&range=custom&start=2026-13-01&end=x")
    assert bad.status_code == 400
    assert "Not a valid day" in bad.get_data(as_text=True)
