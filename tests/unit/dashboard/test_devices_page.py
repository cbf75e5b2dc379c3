"""The devices page as plain functions: what each crafted user is shown, the filters in
the URL, the "could not load" and bad-filter states, the CSV exports, and the page mounted
on the real app behind the real sign-in."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import dash
import pytest
from sqlalchemy import Engine

import dashboard.app as app_module
from core.db import make_engine
from core.errors import RetryableError
from core.settings import Settings
from dashboard import ids
from dashboard.access import Access
from dashboard.app import build_context
from dashboard.context import DashboardContext
from dashboard.devices_filters import (
    filter_options,
    filters_search,
    parse_filters,
    render_labels,
    sync_filters,
    unit_options,
)
from dashboard.devices_page import (
    mount_devices_page,
    register_exports,
    registered_devices,
    render_devices,
)
from dashboard.geo import GeoCache
from dashboard.mapview import MapViews
from dashboard.views import devices_page as views
from ingest.unassigned import SqlUnassignedDevices
from layers.geography import Geography
from tests.conftest import FakeClock
from tests.fixtures.signin import add_user, dash_headers, sign_in
from tests.unit.dashboard.devices_seed import (
    CAM_LE,
    DA_NANG,
    HAI_VAN,
    NOW,
    FakeStore,
    admin,
    device,
    officer,
    reading,
)
from tests.unit.dashboard.test_panel_and_legend import find, texts


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    SqlUnassignedDevices(engine).seen("bus-7", "air", "no_position", NOW)
    return engine


@pytest.fixture
def store(geography: Geography) -> FakeStore:
    """aq-hv online, wl-hv late (Hải Vân); aq-cl offline (Cẩm Lệ); aq-new unregistered in
    Cẩm Lệ; bus-7 unregistered without a position."""
    hierarchy = geography.hierarchy
    hai_van, cam_le = hierarchy.level_tags(HAI_VAN), hierarchy.level_tags(CAM_LE)
    unassigned = {"province": "unassigned", "commune": "unassigned"}
    fake = FakeStore()
    fake.write(
        [
            reading("aq-hv", "air", hai_van, 30, pm25=35.24, pm10=60.0),
            reading("wl-hv", "water", hai_van, 1000, level=1.256),
            reading("aq-cl", "air", cam_le, 4000, pm25=5.0),
            reading("aq-new", "air", cam_le, 20, pm25=7.0),
            reading("bus-7", "air", unassigned, 0, pm25=9.0),
        ]
    )
    return fake


@pytest.fixture
def ctx(
    settings: Settings, geography: Geography, store: FakeStore, engine: Engine
) -> DashboardContext:
    hierarchy = geography.hierarchy
    devices = [
        device("aq-hv", "air", HAI_VAN, hierarchy),
        device("wl-hv", "water", HAI_VAN, hierarchy),
        device("aq-cl", "air", CAM_LE, hierarchy),
    ]
    built = build_context(
        settings,
        store,  # type: ignore[arg-type]
        MapViews(geography, GeoCache(geography)),
        clock=FakeClock(NOW),
        devices=lambda: devices,
        state_engine=engine,
    )
    register_exports(built)
    return built


def rows(component: Any) -> list[str]:
    """data-device of every table row, in order."""
    return [
        str(getattr(c, "data-device"))
        for c in find(component, lambda c: getattr(c, "data-device", None) is not None)
    ]


def counts(summary: Any) -> list[str]:
    return [" ".join(texts(line)) for line in summary.children]


def test_an_admin_sees_everything_worst_first(ctx: DashboardContext, geography: Geography) -> None:
    view = render_devices(ctx, admin(geography.hierarchy), "vi", "")
    assert view.updated == "Cập nhật lúc 08:00:00"
    assert view.message is None
    assert rows(view.table) == ["aq-cl", "wl-hv", "aq-hv"]
    assert counts(view.summary)[0] == "Tổng 3 thiết bị Trực tuyến 1 Trễ 1 Mất kết nối 1"
    assert counts(view.summary)[1] == "Cảm biến không khí (2) Trực tuyến 1 Trễ 0 Mất kết nối 1"
    words = texts(view.table)
    assert "Bụi mịn PM2.5: 35,2 µg/m³" in words  # the catalogue's decimals and unit
    assert "Mực nước: 1,26 m" in words
    assert "07:59 02/11 (30,0 giây trước)" in words  # local time and age
    assert "Phường Hải Vân, Thành phố Đà Nẵng" in words
    badges = find(view.table, lambda c: "state" in str(getattr(c, "className", "")).split())
    assert [b.children for b in badges] == ["Mất kết nối", "Trễ", "Trực tuyến"]  # words, too
    assert rows(view.unregistered) == ["bus-7", "aq-new"]
    assert "Chưa rõ" in texts(view.unregistered)  # bus-7's unit: not placed
    assert any("devices.csv" in word for word in texts(view.unregistered))  # where to register
    assert view.table_csv.href == "/export/devices.csv?lang=vi"


def test_a_commune_officer_sees_only_their_commune(
    ctx: DashboardContext, geography: Geography
) -> None:
    hai_van = officer(geography.hierarchy, HAI_VAN)
    view = render_devices(ctx, hai_van, "en", "")
    assert rows(view.table) == ["wl-hv", "aq-hv"]
    assert counts(view.summary)[0] == "2 devices in all Online 1 Late 1 Offline 0"
    assert texts(view.unregistered) == ["No unregistered device is sending data"]
    # Asking for another commune gives what a commune without devices gives: nothing.
    other = render_devices(ctx, hai_van, "en", f"?unit={CAM_LE}")
    assert texts(other.table) == ["No device matches the filters"]
    assert rows(other.unregistered) == []
    assert counts(other.summary)[0] == "0 devices in all Online 0 Late 0 Offline 0"
    cam_le = render_devices(ctx, officer(geography.hierarchy, CAM_LE), "en", "")
    assert rows(cam_le.unregistered) == ["aq-new"]  # placed in Cẩm Lệ by its position
    assert any("Ask an administrator" in word for word in texts(cam_le.unregistered))
    assert not any("devices.csv" in word for word in texts(cam_le.unregistered))


def test_nobody_sees_nothing(ctx: DashboardContext, geography: Geography) -> None:
    view = render_devices(ctx, Access.nobody(geography.hierarchy), "vi", "")
    assert texts(view.table) == ["Không có thiết bị nào trong các đơn vị bạn được xem"]
    assert rows(view.unregistered) == []


def test_filters_from_the_url(ctx: DashboardContext, geography: Geography) -> None:
    everyone = admin(geography.hierarchy)
    view = render_devices(ctx, everyone, "vi", f"?unit={DA_NANG}&kind=air&status=offline")
    assert rows(view.table) == ["aq-cl"]
    # The counts are of the unit and kind, whatever status is picked.
    assert counts(view.summary)[0] == "Tổng 2 thiết bị Trực tuyến 1 Trễ 0 Mất kết nối 1"
    links = find(view.summary, lambda c: getattr(c, "href", None) is not None)
    assert links[2].href == f"/devices/?unit={DA_NANG}&status=late"
    assert view.table_csv.href == (
        f"/export/devices.csv?unit={DA_NANG}&kind=air&status=offline&lang=vi"
    )
    assert (
        view.unregistered_csv.href
        == f"/export/devices_unregistered.csv?unit={DA_NANG}&kind=air&lang=vi"
    )


def test_a_bad_status_is_said_in_words(ctx: DashboardContext, geography: Geography) -> None:
    view = render_devices(ctx, admin(geography.hierarchy), "en", "?status=broken")
    assert texts(view.message) == ["status must be one of offline, late, online: broken"]
    assert view.table is None


def test_store_down_keeps_the_tables_and_says_when_it_retries(
    ctx: DashboardContext,
    geography: Geography,
    store: FakeStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store.fail = RetryableError("InfluxDB is down")
    with caplog.at_level(logging.WARNING, "cityops.dashboard"):
        view = render_devices(ctx, admin(geography.hierarchy), "vi", "")
    seconds = round(ctx.settings.dashboard.refresh_s)
    assert texts(view.message) == [f"Không tải được dữ liệu, sẽ thử lại sau {seconds} giây"]
    assert view.table is dash.no_update
    assert view.unregistered is dash.no_update
    assert "InfluxDB is down" in caplog.text


def test_no_devices_registered(
    settings: Settings, geography: Geography, store: FakeStore, engine: Engine
) -> None:
    empty = build_context(
        settings,
        store,  # type: ignore[arg-type]
        MapViews(geography, GeoCache(geography)),
        clock=FakeClock(NOW),
        devices=list,
        state_engine=engine,
    )
    view = render_devices(empty, admin(geography.hierarchy), "vi", "")
    assert texts(view.table) == ["Chưa có thiết bị nào được đăng ký"]
    assert "aq-hv" in rows(view.unregistered)  # everything sending is unregistered now


def test_url_and_dropdowns_follow_each_other(ctx: DashboardContext, geography: Geography) -> None:
    assert parse_filters("?unit=48&kind=&lang=en") == {"unit": "48", "kind": None, "status": None}
    assert filters_search("?lang=en&unit=1", unit="20194", kind=None, status="late") == (
        "?lang=en&unit=20194&status=late"
    )
    assert filters_search("?unit=1", unit=None) == ""
    everyone = admin(geography.hierarchy)
    keep = dash.no_update

    def sync(
        trigger: str | None, search: str, *chosen: object, has: bool = True
    ) -> tuple[Any, ...]:
        return sync_filters(ctx, everyone, trigger, "vi", search, chosen, has)  # type: ignore[arg-type]

    # A dropdown changed: the URL follows, the dropdowns stay.
    changed = sync(views.DEV_STATUS, "?lang=en", "48", None, "offline")
    assert changed == ("?lang=en&unit=48&status=offline", *([keep] * 6))
    assert sync(views.DEV_UNIT, "?unit=48", "48", None, None)[0] is keep
    # The first call, a link or back/forward: the dropdowns follow the URL, with options.
    first = sync("url", "?kind=water", "48", None, None, has=False)
    search, unit, kind, status, units, kinds, statuses = first
    assert (search, unit, kind, status) == (keep, None, "water", None)
    assert units[0]["value"] == DA_NANG
    assert [o["value"] for o in kinds] == ["air", "water"]
    assert [o["label"] for o in statuses] == ["Mất kết nối", "Trễ", "Trực tuyến"]
    # A new language: the options are relabelled, the values stay.
    # A link within the page: the values follow; the options are sent only when needed.
    linked = sync("url", "?status=late", None, None, None)
    assert linked == (keep, None, None, "late", keep, keep, keep)
    asked = sync("url", "?unit=99999", None, None, None)
    assert asked[1] == "99999"
    assert asked[4][-1] == {"label": "99999", "value": "99999"}
    relabelled = sync_filters(ctx, everyone, ids.LANG, "en", "", ("48", None, None))
    assert relabelled[:4] == (keep,) * 4
    assert [o["label"] for o in relabelled[6]] == ["Offline", "Late", "Online"]


def test_unit_choices_are_the_visible_units(ctx: DashboardContext, geography: Geography) -> None:
    hierarchy = geography.hierarchy
    mine = unit_options(ctx, officer(hierarchy, HAI_VAN), "vi")
    assert [o["value"] for o in mine] == [HAI_VAN]
    assert mine[0]["label"] == "Phường Hải Vân, Thành phố Đà Nẵng (20194)"
    assert "hai van" in mine[0]["search"]  # found without accents
    everything = [o["value"] for o in unit_options(ctx, admin(hierarchy), "vi")]
    assert everything[0] == DA_NANG  # the deployment's scope, then its communes
    assert len(everything) == 1 + len(hierarchy.children(DA_NANG))
    province = [o["value"] for o in unit_options(ctx, officer(hierarchy, DA_NANG), "en")]
    assert province == everything


def test_exports_are_the_rows_of_the_tables(ctx: DashboardContext, geography: Geography) -> None:
    hai_van = officer(geography.hierarchy, HAI_VAN)
    frame = ctx.exports.frame("devices", ctx, hai_van, {"lang": "en"})
    assert list(frame["device_id"]) == ["wl-hv", "aq-hv"]
    assert frame.set_index("device_id").loc["aq-hv", "pm25 (µg/m³)"] == 35.2
    assert frame.set_index("device_id").loc["wl-hv", "unit_name"] == "Hai Van Ward, Da Nang City"
    assert ctx.exports.frame("devices", ctx, hai_van, {"unit": CAM_LE}).empty
    with pytest.raises(ValueError, match="status must be one of"):
        ctx.exports.frame("devices", ctx, hai_van, {"status": "x"})
    everyone = admin(geography.hierarchy)
    strangers = ctx.exports.frame("devices_unregistered", ctx, everyone, {})
    assert list(strangers["device_id"]) == ["bus-7", "aq-new"]
    assert ctx.exports.frame("devices_unregistered", ctx, hai_van, {}).empty


def app_with_page(
    settings: Settings, geography: Geography, store: FakeStore, engine: Engine, devices: Any
) -> dash.Dash:
    """The real app (sign-in, exports) with this page mounted on its context, until
    dashboard/app.py mounts it itself."""
    seen: list[DashboardContext] = []
    real = app_module.mount_exports
    patch = pytest.MonkeyPatch()
    patch.setattr(
        app_module, "mount_exports", lambda ctx, *args: (seen.append(ctx), real(ctx, *args))
    )
    try:
        app = app_module.create_app(
            settings,
            store,  # type: ignore[arg-type]
            geography,
            devices=lambda: devices,
            state_engine=engine,
            clock=FakeClock(NOW),
        )
    finally:
        patch.undo()
    if not any(rule.rule == "/devices/" for rule in app.server.url_map.iter_rules()):
        mount_devices_page(app, seen[0])
    return app


def test_the_page_behind_the_sign_in(
    settings: Settings, geography: Geography, store: FakeStore, engine: Engine
) -> None:
    add_user(engine, "can-bo-hai-van", role="operator", units=[HAI_VAN])
    hierarchy = geography.hierarchy
    devices = [
        device("aq-hv", "air", HAI_VAN, hierarchy),
        device("aq-cl", "air", CAM_LE, hierarchy),
    ]
    client = app_with_page(settings, geography, store, engine, devices).server.test_client()
    assert client.get("/devices/").status_code == 303  # to the sign-in page
    assert client.get("/export/devices.csv").status_code in (302, 303, 401)
    assert sign_in(client, "can-bo-hai-van").status_code == 303
    page = client.get("/devices/")
    assert "<title>Tình trạng thiết bị</title>" in page.get_data(as_text=True)
    assert client.get("/devices/_dash-layout").status_code == 200
    assert client.get("/devices").headers["Location"] == "/devices/"
    outputs = [
        views.DEV_UPDATED, views.DEV_MESSAGE, views.DEV_SUMMARY, views.DEV_TABLE, views.DEV_CSV,
        views.DEV_UNREG, views.DEV_UNREG_CSV,
    ]  # fmt: skip
    body = {
        "output": ".." + "...".join(f"{o}.children" for o in outputs) + "..",
        "outputs": [{"id": o, "property": "children"} for o in outputs],
        "inputs": [
            {"id": "url", "property": "search", "value": f"?unit={DA_NANG}"},
            {"id": "lang-select", "property": "value", "value": "vi"},
            {"id": "refresh-interval", "property": "n_intervals", "value": 1},
        ],
        "changedPropIds": ["refresh-interval.n_intervals"],
        "state": [],
    }
    answer = client.post(
        "/devices/_dash-update-component", data=json.dumps(body), headers=dash_headers(client)
    )
    assert answer.status_code == 200
    shown = json.dumps(answer.get_json())
    assert '"data-device": "aq-hv"' in shown
    assert "aq-cl" not in shown  # the signed-in officer's access, not an admin's
    download = client.get(f"/export/devices.csv?unit={DA_NANG}&lang=vi")
    assert download.status_code == 200
    lines = download.get_data().decode("utf-8-sig").splitlines()
    assert lines[0].startswith("device_id,name,kind,unit_code,unit_name,status,last_seen")
    assert [line.split(",")[0] for line in lines[1:]] == ["aq-hv"]
    assert client.get("/export/devices.csv?status=up").status_code == 400


def test_filter_choices_keep_what_the_url_asks(ctx: DashboardContext, geography: Geography) -> None:
    hai_van = officer(geography.hierarchy, HAI_VAN)
    standard, (units, kinds, statuses) = filter_options(
        ctx, hai_van, "en", f"?unit={CAM_LE}&status=up"
    )
    assert [o["value"] for o in standard[0]] == [HAI_VAN]
    assert [o["value"] for o in units] == [HAI_VAN, CAM_LE]  # as asked, not named
    assert units[-1]["label"] == CAM_LE
    assert [o["value"] for o in kinds] == ["air", "water"]
    assert [o["label"] for o in statuses] == ["Offline", "Late", "Online", "up"]
    standard, wanted = filter_options(ctx, hai_van, "vi", f"?unit={HAI_VAN}")
    assert wanted == standard
    assert render_labels(ctx, "en")[0] == "Administrative unit"


def test_the_table_draws_the_worst_first_and_says_how_many_it_left_out(
    ctx: DashboardContext, geography: Geography
) -> None:
    frame = registered_devices(ctx, admin(geography.hierarchy), {})
    table = views.devices_table(
        frame, ctx.metrics, lang="vi", now=NOW, tz=ctx.tz, empty="dev_none_match", limit=1
    )
    assert rows(table) == ["aq-cl"]
    assert texts(table)[0] == "Hiển thị 1 trên 3 thiết bị, xấu nhất trước; tải CSV để xem tất cả"
    badge = views.status_badge("late", "en", 300.0)
    assert badge.children == "Late"
    assert badge.title.startswith("Reports every 5 min: online when the last message is within 2")
    assert views.last_seen_text(None, NOW, ctx.tz, "en") == "No message in the last 7 days"


def test_empty_export_arguments_are_no_filter(ctx: DashboardContext, geography: Geography) -> None:
    hai_van = officer(geography.hierarchy, HAI_VAN)
    blank = {"unit": "", "kind": "", "status": ""}
    assert list(ctx.exports.frame("devices", ctx, hai_van, blank)["device_id"]) == [
        "wl-hv",
        "aq-hv",
    ]
    strangers = ctx.exports.frame("devices_unregistered", ctx, admin(geography.hierarchy), blank)
    assert len(strangers) == 2
