"""The pipeline page: snapshots written through a real SqliteStore, read back per worker,
rendered as a table (stale, disconnected, no data), its callbacks and its routes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dash import no_update

from core.db import make_engine
from core.errors import RetryableError
from core.settings import Settings
from core.store import SqliteStore
from core.types import DeadLetter, Point
from dashboard.access import Access
from dashboard.app import create_app
from dashboard.context import DashboardContext
from dashboard.data import DashboardData, pipeline_frame
from dashboard.i18n import format_bytes, format_duration, format_number
from dashboard.pipeline import kinds as kinds_of
from dashboard.pipeline import render_pipeline
from dashboard.views.pipeline import pipeline_table
from ingest.metrics import IngestMetrics, snapshot_point
from layers.geography import Geography
from tests.conftest import FakeClock
from tests.fixtures.signin import add_user, sign_in
from tests.unit.dashboard.test_panel_and_legend import texts

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
TZ = ZoneInfo("Asia/Ho_Chi_Minh")

ADMIN = Access.admin()


def snapshot(worker: str, at: datetime, *, connected: int = 1, writes: bool = True) -> Point:
    metrics = IngestMetrics()
    metrics.received = 12345
    metrics.spooled = 20
    metrics.pending = 17
    metrics.spool_bytes = 3 << 20
    metrics.spool_batches = 2
    metrics.mqtt_connected = connected
    metrics.dead_letter("not_json", 4)
    metrics.dead_letter("store_refused", 1)
    if writes:
        for latency in (0.01, 0.01, 0.2):
            metrics.batch_stored(4000, latency, [at - timedelta(seconds=2)], at)
    return snapshot_point(metrics.snapshot(at), None, worker=worker, interval_s=15)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "timeseries.sqlite")
    yield opened
    opened.close()


def test_frame_has_one_row_per_worker_with_the_last_snapshot(store: SqliteStore) -> None:
    old = snapshot("ingest-a", NOW - timedelta(seconds=30))
    store.write([old, snapshot("ingest-a", NOW - timedelta(seconds=15), writes=False)])
    store.write([snapshot("ingest-b", NOW - timedelta(minutes=5), connected=0)])
    store.write([Point("cityops_ingest", {}, {"received": 1.0}, NOW)])  # no worker tag
    frame = pipeline_frame(store, NOW - timedelta(days=1))
    assert list(frame.index) == ["ingest-a", "ingest-b"]
    a = frame.loc["ingest-a"]
    assert a["received"] == 12345
    assert a["dead_lettered_not_json"] == 4
    assert a["last_seen"] == NOW - timedelta(seconds=15)
    # The last snapshot had no writes: the older p99 must not show as current.
    assert frame["write_latency_p99_s"].isna()["ingest-a"]
    assert frame.loc["ingest-b", "write_latency_p99_s"] > 0.1
    assert pipeline_frame(store, NOW - timedelta(seconds=1)).empty


def test_table_shows_numbers_states_and_reasons(store: SqliteStore) -> None:
    store.write([snapshot("ingest-a", NOW - timedelta(seconds=10))])
    store.write([snapshot("ingest-b", NOW - timedelta(seconds=46))])  # > 3 × 15 s: stale
    store.write([snapshot("ingest-c", NOW - timedelta(seconds=5), connected=0)])
    frame = pipeline_frame(store, NOW - timedelta(days=1))
    table = pipeline_table(frame, lang="vi", now=NOW, tz=TZ, default_interval_s=15)
    rows = {
        row.to_plotly_json()["props"]["data-worker"]: row
        for row in table.children.children[1].children
    }
    states = {worker: row.to_plotly_json()["props"]["data-state"] for worker, row in rows.items()}
    assert states == {"ingest-a": "ok", "ingest-b": "stale", "ingest-c": "disconnected"}
    words = texts(rows["ingest-a"])
    assert "12.345" in words  # received, Vietnamese thousands separator
    assert "12.000" in words  # stored: 3 batches of 4000
    assert "không phải JSON: 4" in words
    assert "CSDL từ chối: 1" in words
    assert "3,0 MiB, 2 lô" in words
    assert "2,0 giây" in words  # lag
    assert "Hoạt động" in words
    assert "Mất tín hiệu" in texts(rows["ingest-b"])
    assert "Mất kết nối MQTT" in texts(rows["ingest-c"])
    # p50 / p99 of 10, 10, 200 ms, interpolated inside the buckets (0.005, 0.01], (0.1, 0.25]
    assert "8,8 ms / 245,5 ms" in words
    assert "07:59 02/11 (10,0 giây trước)" in words  # last seen, local time
    english = pipeline_table(frame, lang="en", now=NOW, tz=TZ, default_interval_s=15)
    assert "Stale" in texts(english)
    assert "12,345" in texts(english)


def test_no_workers_means_no_data_not_an_error(store: SqliteStore) -> None:
    frame = pipeline_frame(store, NOW - timedelta(days=1))
    assert texts(pipeline_table(frame, lang="vi", now=NOW, tz=TZ, default_interval_s=15)) == [
        "Chưa có dữ liệu: chưa có tiến trình thu nhận nào gửi số liệu"
    ]
    assert (
        "No data"
        in texts(pipeline_table(frame, lang="en", now=NOW, tz=TZ, default_interval_s=15))[0]
    )


def test_number_formats() -> None:
    assert format_number(1234567, "vi") == "1.234.567"
    assert format_number(1234.5, "en", 1) == "1,234.5"
    assert format_bytes(512, "vi") == "512 B"
    assert format_bytes(65536, "en") == "64 KiB"
    assert format_duration(0.0042, "vi") == "4,2 ms"
    assert format_duration(90, "en") == "2 min"
    assert format_duration(7200, "vi") == "2,0 giờ"


class _BrokenStore(SqliteStore):
    def latest_by_unit(self, *args: Any, **kwargs: Any) -> Any:
        raise RetryableError("InfluxDB is down")


class _Letters:
    """A dead-letter store holding a list (the real one is tested in integration)."""

    def __init__(self, letters: list[DeadLetter]) -> None:
        self.letters = letters

    def put(self, letter: DeadLetter) -> None:
        self.letters.insert(0, letter)

    def count(self) -> int:
        return len(self.letters)

    def recent(self, limit: int = 50) -> list[DeadLetter]:
        return self.letters[:limit]


def context(
    settings: Settings, store: SqliteStore, letters: _Letters | None = None
) -> DashboardContext:
    clock = FakeClock(NOW)
    data = DashboardData(store, settings.metrics, clock=clock, level="commune")
    return DashboardContext(
        settings=settings,
        data=data,
        hierarchy=None,  # type: ignore[arg-type]  # the pipeline page needs no units
        views=None,  # type: ignore[arg-type]  # ... nor the map
        clock=clock,
        tz=TZ,
        dead_letters=letters,
    )


def test_callbacks_render_in_the_chosen_language(
    settings: Settings, store: SqliteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.write([snapshot("ingest-a", NOW - timedelta(seconds=10))])
    air = {"device": "aq-1", "province": "48", "commune": "20194"}
    store.write([Point("air", air, {"pm25": 30.0}, NOW - timedelta(minutes=3))])
    store.write([Point("air", air | {"device": "aq-2"}, {"pm25": 31.0}, NOW - timedelta(days=2))])
    letters = _Letters(
        [DeadLetter(NOW - timedelta(minutes=1), "city/air/x", b"\xff{not json", "not_json")]
    )
    ctx = context(settings, store, letters)
    updated, table, kinds, recent = render_pipeline(ctx, ADMIN, "en")
    assert updated.startswith("Updated at")
    assert "ingest-a" in texts(table)
    # air: last write 3 min ago, one device within 24 h (aq-2 wrote 2 days ago); no water.
    assert texts(kinds)[3:6] == ["Air quality sensor", "07:57 02/11 (3 min ago)", "1"]
    assert "Nothing was written" not in " ".join(texts(kinds))
    assert texts(recent)[4:] == ["07:59 02/11", "city/air/x", "not_json", "\\xff{not json"]
    # Leaders and viewers: the deployment's pipeline is not theirs to watch.
    leader = Access(None, ["20194"], role="leader", username="lanh-dao")
    updated, refused, no_kinds, no_letters = render_pipeline(ctx, leader, "vi")
    assert updated == ""
    assert "ingest-a" not in texts(refused)
    assert texts(refused) == ["Trang này dành cho quản trị viên và cán bộ trực vận hành"]
    assert (no_kinds, no_letters) == (None, None)
    with pytest.raises(PermissionError):
        kinds_of(ctx, leader)  # the export of the same rows refuses too

    broken = _BrokenStore(tmp_path / "broken.sqlite")
    try:
        with caplog.at_level(logging.WARNING, "cityops.dashboard"):
            kept, error, kept_kinds, kept_letters = render_pipeline(
                context(settings, broken), ADMIN, "vi"
            )
    finally:
        broken.close()
    assert texts(error)[0].startswith("Không tải được dữ liệu")
    assert kept is kept_kinds is kept_letters is no_update  # the last tables stay
    assert "InfluxDB is down" in caplog.text


def test_routes(
    settings: Settings, geography: Geography, store: SqliteStore, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    add_user(engine, "admin")
    client = create_app(settings, store, geography, state_engine=engine).server.test_client()
    assert client.get("/pipeline/").status_code == 303  # to the sign-in page
    assert sign_in(client, "admin").status_code == 303
    page = client.get("/pipeline/")
    assert page.status_code == 200
    assert "<title>Tình trạng thu nhận dữ liệu</title>" in page.get_data(as_text=True)
    assert client.get("/pipeline/_dash-layout").status_code == 200
    redirect = client.get("/pipeline")
    assert (redirect.status_code, redirect.headers["Location"]) == (308, "/pipeline/")
    assert '"href": "/pipeline/"' in json.dumps(client.get("/_dash-layout").get_json())
    engine.dispose()
