"""The wall screen as plain functions: settings validation naming the key, the rotation,
the ticker (critical first, only the wall's units), the device counts with access, and
the beat's outputs when everything works and when a part fails (the stamp is kept)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dash import no_update
from sqlalchemy import Engine

from core.db import make_engine
from core.errors import ConfigError, RetryableError
from core.settings import Settings, load_settings, parse_settings
from dashboard.access import Access
from dashboard.alerts_data import AlertSource
from dashboard.app import build_context
from dashboard.context import DashboardContext
from dashboard.geo import GeoCache
from dashboard.mapview import MapViews
from dashboard.views import wall as views
from dashboard.wall_data import (
    Wall,
    alert_counts,
    alert_ticker,
    device_counts,
    resolve_walls,
    scene_at,
    wall_access,
)
from dashboard.wall_page import render_wall
from layers.geography import Geography
from tests.conftest import FakeClock
from tests.fixtures.signin import TEST_SECRET_ENV
from tests.unit.dashboard.alerts_seed import add_state, with_roster
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
from tests.unit.dashboard.test_panel_and_legend import texts

REPO = Path(__file__).resolve().parents[3]
WALL = "phong-dieu-hanh"


def with_walls(walls: dict[str, Any]) -> dict[str, Any]:
    import yaml

    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["dashboard"]["walls"] = walls
    return dict(raw)


@pytest.mark.parametrize(
    ("wall", "key", "words"),
    [
        (
            {"scenes": [{"page": "map"}, {"page": "chart"}]},
            "dashboard.walls.w.scenes.1.page",
            "must be",
        ),
        (
            {"scenes": [{"page": "map", "seconds": 2}]},
            "dashboard.walls.w.scenes.0.seconds",
            "at least 5",
        ),
        (
            {"scenes": [{"page": "map", "seconds": 4000}]},
            "dashboard.walls.w.scenes.0.seconds",
            "at most 3600",
        ),
        ({"scenes": []}, "dashboard.walls.w.scenes", "at least 1"),
        ({"scenes": [{"page": "map"}], "fixed": 1}, "dashboard.walls.w", "fixed must be the index"),
        ({"scenes": [{"page": "map"}], "lang": "fr"}, "dashboard.walls.w.lang", "must be"),
        (
            {"scenes": [{"page": "map", "colour": "red"}]},
            "dashboard.walls.w.scenes.0.colour",
            "not a known",
        ),
    ],
)
def test_bad_wall_settings_name_the_key(wall: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(with_walls({"w": wall}), environ=TEST_SECRET_ENV, base_dir=REPO)
    assert caught.value.key == key
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("wall", "key", "value"),
    [
        (
            {"scenes": [{"page": "map", "metric": "co2"}]},
            "dashboard.walls.w.scenes.0.metric",
            "co2",
        ),
        (
            {"scenes": [{"page": "map", "unit": "99999"}]},
            "dashboard.walls.w.scenes.0.unit",
            "99999",
        ),
        (
            {"scenes": [{"page": "map", "unit": "00004"}]},
            "dashboard.walls.w.scenes.0.unit",
            "00004",
        ),
        ({"scenes": [{"page": "map"}], "units": ["48", "x"]}, "dashboard.walls.w.units.1", "x"),
        ({"scenes": [{"page": "map"}]}, None, None),
    ],
)
def test_walls_are_checked_against_units_and_metrics(
    geography: Geography, wall: dict[str, Any], key: str | None, value: str | None
) -> None:
    settings = parse_settings(with_walls({"w": wall}), environ=TEST_SECRET_ENV, base_dir=REPO)
    if key is None:
        resolved = resolve_walls(settings, geography.hierarchy)["w"]
        assert resolved.units == ("48",)  # layers.scope
        assert resolved.scenes[0].metric == "pm25"
        assert resolved.scenes[0].unit == "48"
        assert resolved.scenes[0].seconds == 30
        return
    with pytest.raises(ConfigError) as caught:
        resolve_walls(settings, geography.hierarchy)
    assert (caught.value.key, caught.value.value) == (key, value)


def test_a_bad_wall_name(geography: Geography) -> None:
    raw = with_walls({"Phòng 1": {"scenes": [{"page": "map"}]}})
    settings = parse_settings(raw, environ=TEST_SECRET_ENV, base_dir=REPO)
    with pytest.raises(ConfigError, match=r"dashboard\.walls\.Phòng 1"):
        resolve_walls(settings, geography.hierarchy)


def shipped_wall(settings: Settings, geography: Geography, **changes: Any) -> Wall:
    wall = resolve_walls(settings, geography.hierarchy)[WALL]
    if not changes:
        return wall
    import dataclasses

    return dataclasses.replace(wall, **changes)


def test_scenes_rotate_by_their_seconds_or_hold(settings: Settings, geography: Geography) -> None:
    wall = shipped_wall(settings, geography)  # 30 + 20 + 15 + 30 = 95 s
    assert [scene.seconds for scene in wall.scenes] == [30, 20, 15, 30]
    cycle_start = datetime.fromtimestamp(95 * 20_000_000, UTC)
    seen = [
        scene_at(wall, cycle_start + timedelta(seconds=s)).scene.index
        for s in (0, 29, 30, 49, 50, 64, 65, 94, 95)
    ]
    assert seen == [0, 0, 1, 1, 2, 2, 3, 3, 0]
    at = scene_at(wall, cycle_start + timedelta(seconds=31))
    assert (at.ends_ms - at.starts_ms) == 20_000  # type: ignore[operator]
    held = shipped_wall(settings, geography, fixed=2)
    assert {
        scene_at(held, cycle_start + timedelta(seconds=s)).scene.index for s in range(0, 95, 5)
    } == {2}
    assert scene_at(held, cycle_start).ends_ms is None


def test_clock_in_local_time_with_vietnamese_weekday() -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    sunday_night = datetime(2026, 11, 29, 16, 30, tzinfo=UTC)  # 23:30 Sunday in Vietnam
    assert views.clock_texts(sunday_night, tz, "vi") == ("23:30", "Chủ Nhật, 29/11/2026")
    assert views.clock_texts(sunday_night + timedelta(hours=1), tz, "en") == (
        "00:30",
        "Monday, 30/11/2026",
    )


# ---------------------------------------------------------------------------- data


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")


@pytest.fixture
def ctx(settings: Settings, geography: Geography, engine: Engine) -> DashboardContext:
    hierarchy = geography.hierarchy
    hai_van, cam_le = hierarchy.level_tags(HAI_VAN), hierarchy.level_tags(CAM_LE)
    store = FakeStore()
    store.write(
        [
            reading("aq-hv", "air", hai_van, 30, pm25=95.0, pm10=60.0),
            reading("wl-hv", "water", hai_van, 1000, level=1.256),
            reading("aq-cl", "air", cam_le, 4000, pm25=5.0),
        ]
    )
    devices = [
        device("aq-hv", "air", HAI_VAN, hierarchy),
        device("wl-hv", "water", HAI_VAN, hierarchy),
        device("aq-cl", "air", CAM_LE, hierarchy),
    ]
    built = build_context(
        with_roster(settings, []),
        store,  # type: ignore[arg-type]
        MapViews(geography, GeoCache(geography)),
        clock=FakeClock(NOW),
        devices=lambda: devices,
        state_engine=engine,
    )
    source = AlertSource.from_context(built)
    source.prepare()
    fired = NOW - timedelta(minutes=30)
    add_state(engine, "pm25-poor", HAI_VAN, "firing", since=NOW, fired_at=NOW, episode=1)
    add_state(engine, "pm25-bad", HAI_VAN, "firing", since=fired, fired_at=fired, episode=2)
    add_state(engine, "pm25-bad", CAM_LE, "pending", since=NOW)
    add_state(engine, "pm25-bad", "01001", "firing", fired_at=NOW, episode=1)  # Hà Nội
    return built


def test_ticker_is_critical_first_and_only_the_walls_units(
    ctx: DashboardContext, geography: Geography, settings: Settings
) -> None:
    wall = shipped_wall(settings, geography)
    hierarchy = geography.hierarchy
    mine = wall_access(hierarchy, admin(hierarchy), wall)
    assert mine is not None
    assert not mine.everything
    assert mine.units == frozenset({DA_NANG})
    source = AlertSource.from_context(ctx)
    frame = alert_ticker(source, mine, "vi")
    assert list(frame["severity"]) == ["critical", "critical", "warning"]
    assert list(frame["state"]) == ["firing", "pending", "firing"]
    assert "Phường Hải Vân, Thành phố Đà Nẵng" in set(frame["unit_name"])
    assert alert_counts(source, mine) == {"critical": 2, "warning": 1, "info": 0}
    # A commune officer may not open the province's wall (they do not see all of it) ...
    assert wall_access(hierarchy, officer(hierarchy, CAM_LE, role="viewer"), wall) is None
    # ... but a wall of their commune shows their commune's alerts only.
    commune = wall_access(hierarchy, officer(hierarchy, CAM_LE), replace(wall, units=(CAM_LE,)))
    assert commune is not None
    assert list(alert_ticker(source, commune, "vi")["state"]) == ["pending"]
    # Someone of Hà Nội sees nothing of this wall.
    assert wall_access(hierarchy, officer(hierarchy, "01"), wall) is None


def test_device_counts_follow_access(ctx: DashboardContext, geography: Geography) -> None:
    hierarchy = geography.hierarchy
    assert device_counts(ctx, Access(hierarchy, [DA_NANG])) == {
        "offline": 1,
        "late": 1,
        "online": 1,
    }
    assert device_counts(ctx, Access(hierarchy, [HAI_VAN])) == {
        "offline": 0,
        "late": 1,
        "online": 1,
    }
    assert device_counts(ctx, Access(hierarchy, [DA_NANG]), CAM_LE) == {
        "offline": 1,
        "late": 0,
        "online": 0,
    }
    bar = views.device_counts_bar({"online": 1, "late": 1, "offline": 1}, "vi")
    assert " ".join(texts(bar)) == "Thiết bị 1  Trực tuyến 1  Trễ 1  Mất kết nối"


def beat(ctx: DashboardContext, wall: Wall, access: Access) -> dict[str, Any]:
    names = (
        "scene",
        "devices",
        "ticker",
        "map_style",
        "figure",
        "legend",
        "panel",
        "panel_style",
        "stamp",
    )
    return dict(zip(names, render_wall(ctx, wall, access, 24.0, "v1"), strict=True))


def test_the_beat_draws_each_scene(
    ctx: DashboardContext, settings: Settings, geography: Geography
) -> None:
    hierarchy = geography.hierarchy
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    wall = shipped_wall(settings, geography)
    for index, expected in enumerate(
        ("Bụi mịn PM2.5", "Cảnh báo đang diễn ra", "Tình trạng thiết bị", "Bản đồ Bụi PM10")
    ):
        held = shipped_wall(settings, geography, fixed=index)
        out = beat(ctx, held, admin(hierarchy))
        assert out["scene"] == expected
        assert out["stamp"].split("|")[1] == "v1"
        assert out["stamp"].split("|")[-1] == str(index)
        ticker = texts(out["ticker"])
        assert ticker[:2] == ["Cảnh báo", "Nghiêm trọng"]  # critical first
        if wall.scenes[index].page == "map":
            assert out["map_style"] == {"display": "flex"}
            assert out["panel"] is no_update
            trace = out["figure"].data[0]
            assert HAI_VAN in list(trace.locations)
            assert "Bụi" in " ".join(texts(out["legend"]))
        else:
            assert out["map_style"] == {"display": "none"}
            assert out["figure"] is no_update
    alerts_scene = beat(ctx, shipped_wall(settings, geography, fixed=1), admin(hierarchy))
    assert "Phường Hải Vân, Thành phố Đà Nẵng" in texts(alerts_scene["panel"])
    devices_scene = beat(ctx, shipped_wall(settings, geography, fixed=2), admin(hierarchy))
    assert texts(devices_scene["panel"]) == ["1", "Trực tuyến", "1", "Trễ", "1", "Mất kết nối"]


def test_a_failing_part_keeps_the_last_picture_and_the_stamp(
    ctx: DashboardContext, settings: Settings, geography: Geography, monkeypatch: pytest.MonkeyPatch
) -> None:
    hierarchy = geography.hierarchy

    def down(*_args: object, **_kwargs: object) -> pd.DataFrame:
        raise RetryableError("InfluxDB is unreachable")

    monkeypatch.setattr(ctx.data, "map_values", down)
    out = beat(ctx, shipped_wall(settings, geography, fixed=0), admin(hierarchy))
    assert out["figure"] is no_update  # the last map stays
    assert out["stamp"] is no_update  # wall.js turns stale after two beats
    assert out["ticker"] is not no_update  # what still works is fresh


def test_no_access_says_so(ctx: DashboardContext, settings: Settings, geography: Geography) -> None:
    out = beat(ctx, shipped_wall(settings, geography), Access(geography.hierarchy, ["01"]))
    assert texts(out["panel"]) == ["Bạn không có quyền xem các đơn vị của màn hình này"]
    assert out["ticker"] is None
    assert out["devices"] is None


def test_the_shipped_config_has_a_wall() -> None:
    settings = load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)
    assert [scene.page for scene in settings.dashboard.walls[WALL].scenes] == [
        "map",
        "alerts",
        "devices",
        "map",
    ]


def test_the_unit_scene_shows_the_units_figures(
    ctx: DashboardContext, settings: Settings, geography: Geography
) -> None:
    raw = with_walls({"w": {"scenes": [{"page": "unit", "unit": HAI_VAN, "seconds": 10}]}})
    walls = resolve_walls(
        parse_settings(raw, environ=TEST_SECRET_ENV, base_dir=REPO), geography.hierarchy
    )
    out = beat(ctx, walls["w"], admin(geography.hierarchy))
    assert out["scene"] == "Chỉ số của đơn vị"
    words = texts(out["panel"])
    assert words[0] == "Phường Hải Vân, Thành phố Đà Nẵng"
    assert "Bụi mịn PM2.5" in words
    assert out["stamp"] is not no_update
