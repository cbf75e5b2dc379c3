"""The ingest worker end to end: real Mosquitto → IngestWorker → real influxd / SQLite.

Each test uses its own MQTT client id (its own persistent session) and its own InfluxDB
database, so tests do not see each other's messages."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import Engine

from core.db import make_engine
from core.errors import RetryableError
from core.ports import Store
from core.settings import InfluxSettings, Settings, parse_settings
from core.store import InfluxStore
from core.types import Point
from ingest.deadletter import SqlDeadLetterStore
from ingest.worker import IngestWorker
from layers.geography import Geography
from layers.registry import Device, read_registry
from tests.conftest import REPO
from tests.fixtures.influxd import InfluxServer, free_port
from tests.fixtures.mosquitto import MosquittoServer
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration

WAIT_S = 15.0
# Devices at known places in Đà Nẵng (2025 units): Hải Châu ward and Hải Vân ward.
REGISTRY = """\
device_id,kind,name,lon,lat
aq-hc1,air,Trạm quan trắc không khí Phường Hải Châu 1,108.2208,16.0678
aq-hc2,air,Trạm quan trắc không khí Phường Hải Châu 2,108.2210,16.0680
wl-camle,water,Trạm thủy văn Cẩm Lệ,108.2075,16.0186
"""


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def influx_rows(influxd: InfluxServer, database: str, query: str) -> list[dict[str, Any]]:
    answer = influxd.query(query, database)
    series = answer["results"][0].get("series", [])
    return [dict(zip(s["columns"], values, strict=True)) for s in series for values in s["values"]]


def settings_for(
    tmp_path: Path, mosquitto: MosquittoServer, influxd: InfluxServer, database: str
) -> Settings:
    registry = tmp_path / "devices.csv"
    registry.write_text(REGISTRY, encoding="utf-8")
    data = REPO / "layers" / "data"
    return parse_settings(
        {
            "broker": {"host": mosquitto.host, "port": mosquitto.port, "keepalive_s": 10},
            "store": {
                "backend": "influxdb",
                "influxdb": {"url": influxd.url, "database": database, "timeout_s": 5},
            },
            "database": {"url": "sqlite:///state/cityops-state.sqlite"},
            "hierarchy": {"units_file": str(data / "admin_codes_2025.csv")},
            "layers": {
                "boundaries": {
                    "province": str(data / "vn_provinces_2025.geojson"),
                    "commune": str(data / "danang_2025_communes.geojson"),
                }
            },
            "devices": {"registry": str(registry)},
            "ingest": {
                "client_id": f"cityops-ingest-test-{uuid.uuid4().hex[:8]}",
                "batch_size": 20,
                "flush_interval_s": 0.1,
                "session_expiry_s": 300,
            },
        },
        environ={},
        base_dir=tmp_path,
    )


@pytest.fixture(scope="module")
def geography() -> Geography:
    data = REPO / "layers" / "data"
    settings = parse_settings(
        {
            "hierarchy": {"units_file": str(data / "admin_codes_2025.csv")},
            "layers": {
                "boundaries": {
                    "province": str(data / "vn_provinces_2025.geojson"),
                    "commune": str(data / "danang_2025_communes.geojson"),
                }
            },
        },
        environ={},
    )
    return Geography.from_settings(settings)


class Rig:
    """Settings, devices, stores and a publisher for one test; builds workers on demand."""

    def __init__(
        self,
        settings: Settings,
        geography: Geography,
        engine: Engine,
        influxd: InfluxServer,
        database: str,
    ) -> None:
        self.settings = settings
        self.geography = geography
        self.devices: dict[str, Device] = read_registry(
            settings.path(settings.devices.registry), geography
        )
        self.store = InfluxStore(settings.store.influxdb)
        self.dead_letters = SqlDeadLetterStore(engine)
        self.influxd = influxd
        self.database = database
        self.workers: list[IngestWorker] = []
        self.publisher = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-publisher-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.publisher.connect(settings.broker.host, settings.broker.port, keepalive=10)
        self.publisher.loop_start()

    def worker(self, store: Store | None = None) -> IngestWorker:
        worker = IngestWorker(
            self.settings,
            store or self.store,
            self.devices,
            self.geography,
            self.dead_letters,
            retry_first_s=0.1,
            retry_max_s=0.5,
        )
        self.workers.append(worker)
        worker.start()
        assert worker.wait_ready(WAIT_S), "worker did not connect and subscribe"
        return worker

    def publish(self, topic: str, payload: bytes | dict[str, Any]) -> None:
        body = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        info = self.publisher.publish(topic, body, qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published(), f"publish to {topic} not acknowledged by the broker"

    def rows(self, query: str) -> list[dict[str, Any]]:
        return influx_rows(self.influxd, self.database, query)

    def count(self, measurement: str = "air", field: str = "pm25") -> int:
        rows = self.rows(f'SELECT count("{field}") FROM "{measurement}"')
        return int(rows[0]["count"]) if rows else 0

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.publisher.disconnect()
        self.publisher.loop_stop()
        self.store.close()


@pytest.fixture
def rig(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxd: InfluxServer,
    influx_db: str,
    geography: Geography,
) -> Iterator[Rig]:
    settings = settings_for(tmp_path, mosquitto, influxd, influx_db)
    engine = make_engine(settings.database.url, settings.base_dir)
    rig = Rig(settings, geography, engine, influxd, influx_db)
    try:
        yield rig
    finally:
        rig.close()
        engine.dispose()


def test_reading_is_stored_with_unit_tags_and_exact_timestamp(rig: Rig) -> None:
    worker = rig.worker()
    ts = now_ms() - 1234
    rig.publish("city/air/aq-hc1", {"ts": ts, "pm25": 35.2, "pm10": 61.0})
    eventually(lambda: rig.count() == 1, "the reading in InfluxDB")
    (row,) = rig.rows('SELECT * FROM "air"')
    assert row["time"] == ts
    assert (row["device"], row["province"], row["commune"]) == ("aq-hc1", "48", "20242")
    assert (row["pm25"], row["pm10"]) == (35.2, 61.0)
    eventually(lambda: worker.stats.pending == 0, "the message acknowledged")
    stats = worker.stats
    assert (stats.received, stats.stored, stats.dead_lettered) == (1, 1, 0)
    assert stats.connects == 1


def test_unregistered_device_with_position_is_placed_in_its_commune(rig: Rig) -> None:
    rig.worker()
    ts = now_ms()
    rig.publish("city/air/bus-17", {"ts": ts, "pm25": 12.5, "lat": 16.0678, "lon": 108.2208})
    eventually(lambda: rig.count() == 1, "the reading of the unregistered device")
    (row,) = rig.rows('SELECT * FROM "air"')
    assert (row["device"], row["commune"], row["time"]) == ("bus-17", "20242", ts)


def test_malformed_payload_is_dead_lettered_and_the_next_one_stored(rig: Rig) -> None:
    worker = rig.worker()
    ts = now_ms()
    rig.publish("city/air/aq-hc1", b'{"ts": 1764300000000, "pm25": ')
    rig.publish("city/air/aq-hc2", {"ts": ts, "pm25": "cao"})
    rig.publish("city/air/aq-hc1", {"ts": ts, "pm25": 20.0})
    eventually(lambda: rig.count() == 1, "the valid reading after the bad ones")
    eventually(lambda: worker.stats.pending == 0, "all three acknowledged")
    assert worker.stats.dead_lettered == 2
    assert rig.dead_letters.count() == 2
    newest, oldest = rig.dead_letters.recent()
    assert oldest.topic == "city/air/aq-hc1"
    assert oldest.payload == b'{"ts": 1764300000000, "pm25": '
    assert oldest.reason.startswith("payload is not JSON: Expecting value at line 1 column 31")
    assert newest.reason == "metric 'pm25' must be a number, not a string"
    assert newest.received_at.tzinfo is UTC
    assert abs(newest.received_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_messages_published_while_the_worker_is_down_arrive_when_it_returns(rig: Rig) -> None:
    first = rig.worker()
    first.stop()
    base = now_ms() - 60_000
    for index in range(50):
        rig.publish("city/air/aq-hc1", {"ts": base + index, "pm25": float(index)})
    second = rig.worker()  # same client id: the broker kept the session and the 50 messages
    eventually(lambda: rig.count() == 50, "all 50 messages stored")
    eventually(lambda: second.stats.pending == 0, "all 50 acknowledged")
    assert second.stats.received == 50
    second.stop()
    # Everything was acknowledged: a third start gets nothing again.
    third = rig.worker()
    time.sleep(0.5)
    assert third.stats.received == 0


class SwitchableStore:
    """Delegates to ``current``; tests point it at a dead InfluxDB, then at the real one."""

    def __init__(self, current: Store) -> None:
        self.current = current
        self.attempts = 0

    def write(self, points: Sequence[Point]) -> None:
        self.attempts += 1
        self.current.write(points)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)


def test_unacknowledged_messages_survive_a_store_outage_and_a_restart(rig: Rig) -> None:
    dead = InfluxStore(
        InfluxSettings(url=f"http://127.0.0.1:{free_port()}", database=rig.database, timeout_s=1)
    )
    with pytest.raises(RetryableError):
        dead.write([Point("air", {"device": "x"}, {"pm25": 1.0}, datetime.now(UTC))])
    store = SwitchableStore(dead)
    worker = rig.worker(store)
    base = now_ms() - 10_000
    for index in range(5):
        rig.publish("city/air/aq-hc2", {"ts": base + index, "pm25": 40.0 + index})
    eventually(lambda: worker.stats.write_errors >= 2, "writes failing while InfluxDB is down")
    assert worker.stats.received == 5
    assert worker.stats.pending == 5
    # Stopping with the store down acknowledges nothing ...
    worker.stop()
    assert rig.count() == 0
    # ... so a new worker with the same session gets all five again once the store is back.
    store.current = rig.store
    again = rig.worker(store)
    eventually(lambda: rig.count() == 5, "all five stored after the outage")
    eventually(lambda: again.stats.pending == 0, "all five acknowledged")
    values = sorted(row["pm25"] for row in rig.rows('SELECT "pm25" FROM "air"'))
    assert values == [40.0, 41.0, 42.0, 43.0, 44.0]
    dead.close()


def test_store_recovering_while_the_worker_runs_loses_nothing(rig: Rig) -> None:
    dead = InfluxStore(
        InfluxSettings(url=f"http://127.0.0.1:{free_port()}", database=rig.database, timeout_s=1)
    )
    store = SwitchableStore(dead)
    worker = rig.worker(store)
    base = now_ms() - 10_000
    for index in range(3):
        rig.publish("city/water/wl-camle", {"ts": base + index, "level": 1.0 + index / 10})
    eventually(lambda: worker.stats.write_errors >= 1, "a failed write")
    assert worker.stats.pending == 3
    store.current = rig.store
    eventually(lambda: rig.count("water", "level") == 3, "the kept batch written on retry")
    eventually(lambda: worker.stats.pending == 0, "acknowledged after the write")
    dead.close()


def test_a_dead_letter_replayed_after_its_cause_is_fixed_is_stored(rig: Rig) -> None:
    from ingest.replay import replay

    # Registered with the wrong kind: its air readings are refused (kind_mismatch).
    registry = rig.settings.path(rig.settings.devices.registry)
    registry.write_text(REGISTRY + "aq-new,water,Trạm mới,108.2208,16.0678\n", encoding="utf-8")
    rig.devices = read_registry(registry, rig.geography)
    worker = rig.worker()
    ts = now_ms()
    rig.publish("city/air/aq-new", {"ts": ts, "pm25": 42.0})
    eventually(lambda: rig.dead_letters.count() == 1, "the mismatched device is dead-lettered")
    assert "aq-new" in rig.dead_letters.recent(1)[0].reason
    worker.stop()

    # The operator corrects the registry, restarts ingest and replays the dead letters.
    registry.write_text(REGISTRY + "aq-new,air,Trạm mới,108.2208,16.0678\n", encoding="utf-8")
    rig.devices = read_registry(registry, rig.geography)
    rig.worker()
    assert replay(rig.settings, rig.dead_letters, rig.dead_letters.oldest()) == 1
    assert rig.dead_letters.count() == 0

    query = "SELECT pm25, commune FROM air WHERE device = 'aq-new'"
    eventually(lambda: bool(rig.rows(query)), "the replayed reading is stored")
    (row,) = rig.rows(query)
    assert (row["pm25"], row["commune"]) == (42.0, "20242")
    assert rig.dead_letters.count() == 0  # it did not come back
