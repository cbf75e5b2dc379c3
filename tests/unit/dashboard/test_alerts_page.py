"""The alerts console on the real app: its plain callback functions with crafted users, and
over HTTP (sign-in, crafted callback requests and CSV exports of a commune officer for
another commune)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dash import html
from flask.testing import FlaskClient
from sqlalchemy import Engine

import dashboard.app as app_module
from alerts.actions import AckKey
from core.db import make_engine
from core.settings import Settings
from core.store import SqliteStore
from dashboard.access import Access
from dashboard.alerts_data import AlertSource
from dashboard.alerts_page import (
    acknowledge_alert,
    alerts_body,
    cancel_silence,
    mount_alerts_page,
    render_alerts,
    silence,
    silence_end,
)
from dashboard.context import DashboardContext
from dashboard.views import alerts_forms as f
from layers.geography import Geography
from tests.conftest import FakeClock
from tests.fixtures.signin import add_user, dash_headers, sign_in
from tests.unit.dashboard.alerts_seed import (
    CAM_LE,
    DA_NANG,
    HAI_VAN,
    NOW,
    add_log,
    add_state,
    officer,
    with_roster,
)
from tests.unit.dashboard.test_panel_and_legend import find, texts

HAI_VAN_KEY = f"pm25-bad|{HAI_VAN}|2"


@dataclass
class Site:
    client: FlaskClient
    ctx: DashboardContext
    engine: Engine
    clock: FakeClock


@pytest.fixture
def site(
    tmp_path: Path, settings: Settings, geography: Geography, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Site]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    add_user(engine, "admin")
    add_user(engine, "hai-van", "operator", [HAI_VAN])
    add_user(engine, "cam-le", "operator", [CAM_LE])
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    clock = FakeClock(NOW)
    # The context create_app builds, caught on its way to the exports.
    seen: list[DashboardContext] = []
    real = app_module.mount_exports
    monkeypatch.setattr(
        app_module, "mount_exports", lambda ctx, *args: (seen.append(ctx), real(ctx, *args))
    )
    app = create_app_with_alerts(with_roster(settings), store, geography, engine, clock, seen)
    fired = NOW - timedelta(minutes=30)
    add_state(engine, "pm25-bad", HAI_VAN, "firing", since=fired, fired_at=fired, episode=2)
    add_state(engine, "pm25-bad", CAM_LE, "firing", since=NOW, value=120.0, fired_at=NOW, episode=1)
    add_log(engine, "pm25-bad", HAI_VAN, 2, "firing", fired)
    add_log(engine, "pm25-bad", CAM_LE, 1, "firing", NOW)
    yield Site(app.server.test_client(), seen[0], engine, clock)
    store.close()
    engine.dispose()


def create_app_with_alerts(
    settings: Settings,
    store: SqliteStore,
    geography: Geography,
    engine: Engine,
    clock: FakeClock,
    seen: list[DashboardContext],
) -> Any:
    app = app_module.create_app(
        settings, store, geography, state_engine=engine, clock=clock, devices=list
    )
    if not any(rule.rule == "/alerts/" for rule in app.server.url_map.iter_rules()):
        mount_alerts_page(app, seen[0])  # until dashboard/app.py mounts it itself
    return app


def ids_of(component: Any, kind: str) -> list[Any]:
    return [
        node.id
        for node in find(html.Div(component), lambda n: isinstance(getattr(n, "id", None), dict))
        if node.id.get("type") == kind
    ]


def test_each_officer_sees_and_may_act_on_their_commune_only(site: Site) -> None:
    hierarchy = site.ctx.hierarchy
    view = render_alerts(site.ctx, officer(hierarchy, HAI_VAN), "vi")
    shown = " ".join(texts(view.active))
    assert "Phường Hải Vân, Thành phố Đà Nẵng" in shown
    assert "Cẩm Lệ" not in shown
    assert "120" not in shown
    assert ids_of(view.active, f.ACK_BUTTON) == [{"type": f.ACK_BUTTON, "key": HAI_VAN_KEY}]
    assert ids_of(view.active, f.SILENCE_BUTTON) == [{"type": f.SILENCE_BUTTON, "unit": HAI_VAN}]
    history = " ".join(texts(view.history))
    assert "Hải Vân" in history
    assert "Cẩm Lệ" not in history
    assert view.active_csv.href == "/export/alerts_active.csv?lang=vi"

    # A leader of the whole city reads both, with no button at all.
    leader = render_alerts(site.ctx, officer(hierarchy, DA_NANG, "leader"), "vi")
    assert "Phường Cẩm Lệ, Thành phố Đà Nẵng" in " ".join(texts(leader.active))
    for kind in (f.ACK_BUTTON, f.UNACK_BUTTON, f.SILENCE_BUTTON, f.CANCEL_BUTTON):
        assert ids_of(leader.active, kind) == []
    body = alerts_body(site.ctx, officer(hierarchy, DA_NANG, "leader"), "vi")
    form = find(html.Div(body), lambda n: getattr(n, "id", None) == f.SILENCE_FORM)
    assert form[0].hidden is True
    assert "Vai trò của bạn chỉ được xem" in " ".join(texts(body))


def test_rows_in_english_with_values_times_and_filters(site: Site) -> None:
    view = render_alerts(
        site.ctx, Access.admin(site.ctx.hierarchy), "en", {"unit": HAI_VAN, "state": "open"}
    )
    assert view.updated == "Updated at 08:00:00"
    row = find(view.active, lambda n: getattr(n, "data-unit", None) == HAI_VAN)[0]
    assert [part for part in texts(row) if part.strip()] == [
        "Critical",
        "PM2.5 at Bad level",
        "Hai Van Ward, Da Nang City",
        "92.4 µg/m³",
        "Firing",
        "07:30 02/11 (30 min ago)",
        "Told",
        "Nobody told yet",  # its firing event has no deliveries
        "On duty now",
        "At once – Hai Van Ward, Da Nang City:",
        "Nguyễn Văn An",
        "Escalation 1 – Da Nang City:",
        "Phạm Văn Cường",
        "Escalation 2 – Duty desk:",
        "truc-ban@example.gov.vn",
        "Not yet",
        "Acknowledge",
        "Silence unit",
        "Add a note",
    ]
    link = find(row, lambda n: isinstance(n, html.A))[0]
    assert link.href == "/area/commune/20194?lang=en"
    assert view.history_csv.href == ("/export/alerts_history.csv?lang=en&unit=20194&state=open")
    assert "truc-ban@example.gov.vn" in texts(view.duty)
    bad = render_alerts(site.ctx, Access.admin(site.ctx.hierarchy), "en", {"from": "yesterday"})
    assert texts(bad.history) == ["the first day must be a date as YYYY-MM-DD: 'yesterday'"]


def test_acknowledge_from_the_page(site: Site) -> None:
    hierarchy = site.ctx.hierarchy
    refused = acknowledge_alert(site.ctx, officer(hierarchy, CAM_LE), HAI_VAN_KEY, "x", "vi")
    assert refused.changed is False
    assert texts(refused.message) == ["không có cảnh báo này trong các đơn vị của bạn"]
    leader = acknowledge_alert(site.ctx, officer(hierarchy, HAI_VAN, "leader"), HAI_VAN_KEY, "")
    assert "chỉ được xem" in texts(leader.message)[0]
    garbled = acknowledge_alert(site.ctx, officer(hierarchy, HAI_VAN), "pm25-bad|20194", "", "en")
    assert texts(garbled.message) == ["Which alert is not clear"]
    source = AlertSource.from_context(site.ctx)
    assert source.actions.acks([AckKey("pm25-bad", HAI_VAN, 2)]) == {}

    done = acknowledge_alert(
        site.ctx, officer(hierarchy, HAI_VAN), HAI_VAN_KEY, "đã cử người", "vi"
    )
    assert done.changed is True
    assert texts(done.message) == [
        "Đã xác nhận: Bụi mịn PM2.5 ở mức Xấu – Phường Hải Vân, Thành phố Đà Nẵng"
    ]
    view = render_alerts(site.ctx, officer(hierarchy, HAI_VAN), "vi")
    assert "đã cử người" in texts(view.active)
    assert ids_of(view.active, f.ACK_BUTTON) == []
    assert ids_of(view.active, f.UNACK_BUTTON) == [{"type": f.UNACK_BUTTON, "key": HAI_VAN_KEY}]


def test_silence_and_cancel_from_the_page(site: Site) -> None:
    hierarchy = site.ctx.hierarchy
    hai_van = officer(hierarchy, HAI_VAN)
    hour = silence(site.ctx, hai_van, "unit", HAI_VAN, "60", "bảo trì trạm", lang_value="en")
    assert texts(hour.message) == ["Hai Van Ward, Da Nang City is silenced until 09:00 02/11/2026"]
    until = silence_end(site.ctx, "until", "2026-11-02", "17:30")
    assert until == datetime(2026, 11, 2, 10, 30, tzinfo=UTC)
    for day, at in (("2026-11-02", ""), (None, "17:30"), ("2026-11-02", "25:00")):
        incomplete = silence(
            site.ctx, hai_van, "unit", HAI_VAN, "until", "x", until_day=day, until_time=at
        )
        assert texts(incomplete.message) == ["Chọn ngày và giờ kết thúc (HH:MM) của lệnh tạm tắt"]
    no_reason = silence(site.ctx, hai_van, "unit", HAI_VAN, "30", " ", lang_value="en")
    assert texts(no_reason.message) == ["a reason is required"]
    other = silence(site.ctx, officer(hierarchy, CAM_LE), "unit", HAI_VAN, "60", "x")
    assert texts(other.message) == ["không có đơn vị này trong các đơn vị của bạn"]

    silences = AlertSource.from_context(site.ctx).actions.active_silences()
    assert [(s.target, s.ends_at) for s in silences] == [(HAI_VAN, NOW + timedelta(hours=1))]
    view = render_alerts(site.ctx, hai_van, "vi")
    assert ids_of(view.silences, f.CANCEL_BUTTON) == [
        {"type": f.CANCEL_BUTTON, "id": silences[0].id}
    ]
    assert "Tạm tắt đến 09:00 02/11" in texts(view.active)
    cam_le_view = render_alerts(site.ctx, officer(hierarchy, CAM_LE), "vi")
    assert texts(cam_le_view.silences) == ["Không có lệnh tạm tắt nào"]
    refused = cancel_silence(site.ctx, officer(hierarchy, CAM_LE), silences[0].id, "en")
    assert texts(refused.message) == [f"there is no silence {silences[0].id}"]
    done = cancel_silence(site.ctx, hai_van, silences[0].id, "vi")
    assert (done.changed, texts(done.message)) == (
        True,
        ["Đã hủy tạm tắt Phường Hải Vân, Thành phố Đà Nẵng"],
    )


def test_a_database_outage_is_a_message(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "not-a-file").mkdir()
    broken = make_engine(f"sqlite:///{tmp_path / 'not-a-file'}")
    ctx = replace(site.ctx, state_engine=broken)
    with caplog.at_level(logging.WARNING, "cityops.dashboard"):
        view = render_alerts(ctx, Access.admin(ctx.hierarchy), "vi")
        failed = acknowledge_alert(ctx, Access.admin(ctx.hierarchy), HAI_VAN_KEY, "", "vi")
    assert texts(view.active)[0].startswith("Không tải được dữ liệu")
    assert texts(failed.message) == ["Không lưu được, hãy thử lại sau ít phút"]
    assert "alert states could not be read" in caplog.text
    broken.dispose()


def dependency(client: FlaskClient, first_input: str) -> dict[str, Any]:
    """The callback of the alerts page whose first input is ``first_input``."""
    for callback in client.get("/alerts/_dash-dependencies").get_json():
        if callback["inputs"] and callback["inputs"][0]["id"] == first_input:
            return dict(callback)
    raise AssertionError(f"no callback on {first_input}")


def post_ack(client: FlaskClient, key: str) -> Any:
    """What Dash's renderer posts when "Acknowledge" of the form is pressed."""
    callback = dependency(client, f.ACK_SUBMIT)
    outputs = [
        {"id": part.split(".")[0], "property": part.split(".")[1].split("@")[0]}
        for part in callback["output"].strip(".").split("...")
    ]
    body = {
        "output": callback["output"],
        "outputs": outputs,
        "inputs": [{"id": f.ACK_SUBMIT, "property": "n_clicks", "value": 1}],
        "changedPropIds": [f"{f.ACK_SUBMIT}.n_clicks"],
        "state": [
            {"id": f.ACK_KEY, "property": "data", "value": key},
            {"id": f.ACK_COMMENT, "property": "value", "value": "đến ngay"},
            {"id": "lang-select", "property": "value", "value": "vi"},
            {"id": f.VERSION, "property": "data", "value": 0},
        ],
    }
    return client.post(
        "/alerts/_dash-update-component", data=json.dumps(body), headers=dash_headers(client)
    )


def test_over_http_a_commune_officer_cannot_reach_another_commune(site: Site) -> None:
    client = site.client
    assert client.get("/alerts/").status_code == 303  # to the sign-in page
    assert sign_in(client, "cam-le").status_code == 303
    page = client.get("/alerts/")
    assert "<title>Cảnh báo</title>" in page.get_data(as_text=True)

    refused = post_ack(client, HAI_VAN_KEY)
    assert refused.status_code == 200
    assert "không có cảnh báo này trong các đơn vị của bạn" in refused.get_data(as_text=True)
    source = AlertSource.from_context(site.ctx)
    assert source.actions.acks([AckKey("pm25-bad", HAI_VAN, 2)]) == {}

    active = client.get("/export/alerts_active.csv?lang=vi").get_data(as_text=True)
    assert CAM_LE in active
    assert HAI_VAN not in active
    history = client.get(f"/export/alerts_history.csv?unit={HAI_VAN}").get_data(as_text=True)
    assert history.splitlines()[1:] == []  # the header only: as for a unit without alerts
    assert client.get("/export/alerts_history.csv?state=closed").status_code == 400

    other = site.client.application.test_client()
    assert sign_in(other, "hai-van").status_code == 303
    done = post_ack(other, HAI_VAN_KEY)
    assert "Đã xác nhận" in done.get_data(as_text=True)
    ack = source.actions.acks([AckKey("pm25-bad", HAI_VAN, 2)])[AckKey("pm25-bad", HAI_VAN, 2)]
    assert (ack.acked_by, ack.comment) == ("hai-van", "đến ngay")


def test_only_a_recorded_press_of_its_own_kind_acts(site: Site) -> None:
    """Row presses reach the server through the PRESSED store (assets/press.js writes it
    at the click): the callback acts on a press of an unacknowledge (or cancel) button
    only — not on an empty store, nor on another row button's press."""
    client = site.client
    assert sign_in(client, "hai-van").status_code == 303
    candidates = [
        c
        for c in client.get("/alerts/_dash-dependencies").get_json()
        if c["inputs"] and c["inputs"][0]["id"] == f.PRESSED and f.MESSAGE in c["output"]
    ]
    assert len(candidates) == 1  # unacknowledge and cancel a silence, in one callback
    source = AlertSource.from_context(site.ctx)

    def post(callback: dict[str, Any], pressed: object) -> Any:
        body = {
            "output": callback["output"],
            "outputs": [
                {"id": part.split(".")[0], "property": part.split(".")[1].split("@")[0]}
                for part in callback["output"].strip(".").split("...")
            ],
            "inputs": [{"id": f.PRESSED, "property": "data", "value": pressed}],
            "changedPropIds": [f"{f.PRESSED}.data"],
            "state": [
                {"id": "lang-select", "property": "value", "value": "vi"},
                {"id": f.VERSION, "property": "data", "value": 0},
            ],
        }
        return client.post(
            "/alerts/_dash-update-component", data=json.dumps(body), headers=dash_headers(client)
        )

    source.actions.acknowledge("pm25-bad", HAI_VAN, 2, "hai-van")
    unack = {"id": {"type": f.UNACK_BUTTON, "key": HAI_VAN_KEY}, "at": 1}
    other = {"id": {"type": f.ACK_BUTTON, "key": HAI_VAN_KEY}, "at": 2}
    for callback in candidates:
        for nothing in (None, {"at": 3}, other):
            assert post(callback, nothing).get_json()["response"] == {}  # nothing updated
    assert source.actions.acks([AckKey("pm25-bad", HAI_VAN, 2)])  # still acknowledged
    answers = [post(callback, unack).get_data(as_text=True) for callback in candidates]

    assert sum("Đã bỏ xác nhận" in answer for answer in answers) == 1
    assert source.actions.acks([AckKey("pm25-bad", HAI_VAN, 2)]) == {}


def test_no_two_callbacks_of_the_page_share_their_outputs(site: Site) -> None:
    """Dash keys callbacks by their outputs: a second callback with the same outputs and
    inputs (allow_duplicate hashes those) silently replaces the first. It happened once:
    "Bỏ xác nhận" did nothing while "Hủy tạm tắt" worked."""
    assert sign_in(site.client, "hai-van").status_code == 303
    pages = {
        rule.rule.removesuffix("_dash-dependencies")
        for rule in site.client.application.url_map.iter_rules()
        if rule.rule.endswith("/_dash-dependencies")
    }
    assert {"/", "/alerts/"} <= pages
    for page in pages:
        outputs = [c["output"] for c in site.client.get(f"{page}_dash-dependencies").get_json()]
        assert len(outputs) == len(set(outputs)), page
