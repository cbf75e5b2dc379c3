"""The ingest worker on the demo's embedded amqtt broker (MQTT 3.1.1 only): it falls back
from MQTT 5 to a 3.1.1 persistent session and stores what is published."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.db import make_engine
from core.settings import parse_settings
from core.store import SqliteStore
from core.types import MetricRef, UnitRef
from ingest.broker import EmbeddedBroker
from ingest.deadletter import SqlDeadLetterStore
from ingest.worker import IngestWorker
from layers.geography import Geography
from layers.registry import Device
from tests.conftest import REPO
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration

WAIT_S = 15.0
HAI_CHAU = Device(
    "aq-hc1",
    "air",
    "Trạm Hải Châu 1",
    108.2208,
    16.0678,
    "20242",
    {"province": "48", "commune": "20242"},
)


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker("127.0.0.1", 0) as running:
        yield running


def test_worker_falls_back_to_mqtt311_and_keeps_its_session(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    data = REPO / "layers" / "data"
    settings = parse_settings(
        {
            "broker": {"host": "127.0.0.1", "port": broker.port},
            "hierarchy": {"units_file": str(data / "admin_codes_2025.csv")},
            "layers": {
                "boundaries": {
                    "province": str(data / "vn_provinces_2025.geojson"),
                    "commune": str(data / "danang_2025_communes.geojson"),
                }
            },
            "ingest": {"client_id": f"demo-ingest-{uuid.uuid4().hex[:6]}", "flush_interval_s": 0.1},
        },
        environ={},
        base_dir=tmp_path,
    )
    geography = Geography.from_settings(settings)
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    engine = make_engine("sqlite:///state.sqlite", tmp_path)
    dead_letters = SqlDeadLetterStore(engine)
    publisher = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id="demo-publisher",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    publisher.connect("127.0.0.1", broker.port, keepalive=10)
    publisher.loop_start()

    def publish(ts_ms: int, pm25: float) -> None:
        body = json.dumps({"ts": ts_ms, "pm25": pm25}).encode()
        info = publisher.publish("city/air/aq-hc1", body, qos=1)
        info.wait_for_publish(timeout=5)

    def stored() -> int:
        since = datetime(2025, 1, 1, tzinfo=UTC)
        values = store.latest_by_unit(
            MetricRef("air", "pm25"), "commune", since=since, parent=UnitRef("province", "48")
        )
        return values[0].devices if values else 0

    def new_worker() -> IngestWorker:
        worker = IngestWorker(settings, store, {"aq-hc1": HAI_CHAU}, geography, dead_letters)
        worker.start()
        assert worker.wait_ready(WAIT_S), "worker did not connect to amqtt"
        return worker

    try:
        now_ms = int(time.time() * 1000)
        first = new_worker()
        publish(now_ms - 2000, 10.0)
        eventually(lambda: first.stats.stored == 1, "first reading stored")
        first.stop()
        publish(now_ms - 1000, 20.0)  # while the worker is down
        second = new_worker()
        eventually(lambda: second.stats.stored == 1, "reading queued during the restart")
        second.stop()
        (value,) = store.latest_by_unit(
            MetricRef("air", "pm25"), "commune", since=datetime(2025, 1, 1, tzinfo=UTC)
        )
        assert (value.code, value.value) == ("20242", 20.0)
        assert stored() == 1
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        store.close()
        engine.dispose()
