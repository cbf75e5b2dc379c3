"""The disk spool end to end: real Mosquitto → IngestWorker → real SQLite store.

The store is wrapped so a test can take it down (RetryableError, as InfluxDB unreachable
gives); every message carries a sequence number (pm25 = n, ts = base + n ms) so the
checks see gaps, duplicates and order."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.db import make_engine
from core.errors import RetryableError
from core.settings import Settings, parse_settings
from core.store import SqliteStore
from core.types import Point
from ingest.deadletter import SqlDeadLetterStore
from ingest.metrics import MEASUREMENT as METRICS_MEASUREMENT
from ingest.spool import DiskSpool, open_spool
from ingest.worker import IngestWorker
from layers.geography import Geography
from layers.registry import Device
from tests.conftest import REPO
from tests.fixtures.mosquitto import MosquittoServer
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration

WAIT_S = 15.0
DATA = REPO / "layers" / "data"
GEOGRAPHY_SETTINGS: dict[str, Any] = {
    "hierarchy": {"units_file": str(DATA / "admin_codes_2025.csv")},
    "layers": {
        "boundaries": {
            "province": str(DATA / "vn_provinces_2025.geojson"),
            "commune": str(DATA / "danang_2025_communes.geojson"),
        }
    },
}
HAI_CHAU = Device(
    "aq-hc1",
    "air",
    "Trạm Hải Châu 1",
    108.2208,
    16.0678,
    "20242",
    {"province": "48", "commune": "20242"},
)


class OutageStore:
    """The real store behind a switch; records the sequence numbers in the order written."""

    def __init__(self, real: SqliteStore) -> None:
        self.real = real
        self.down = False
        self.failed_writes = 0
        self.written: list[int] = []

    def write(self, points: Sequence[Point]) -> None:
        if all(p.measurement == METRICS_MEASUREMENT for p in points):
            return  # the worker's self-metrics snapshots: not what this test counts
        if self.down:
            self.failed_writes += 1
            raise RetryableError("store unreachable (test outage)")
        self.real.write(points)
        self.written.extend(int(p.fields["pm25"]) for p in points)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture(scope="module")
def geography() -> Geography:
    return Geography.from_settings(parse_settings(GEOGRAPHY_SETTINGS, environ={}))


class Rig:
    def __init__(self, tmp_path: Path, mosquitto: MosquittoServer, geography: Geography) -> None:
        self.settings: Settings = parse_settings(
            {
                **GEOGRAPHY_SETTINGS,
                "broker": {"host": mosquitto.host, "port": mosquitto.port, "keepalive_s": 10},
                "ingest": {
                    "client_id": f"cityops-spool-test-{uuid.uuid4().hex[:8]}",
                    "batch_size": 5,
                    "flush_interval_s": 0.1,
                    "session_expiry_s": 300,
                    "spool_dir": "spool",
                    "spool_max_mb": 1,
                },
            },
            environ={},
            base_dir=tmp_path,
        )
        self.geography = geography
        self.db_path = tmp_path / "timeseries.sqlite"
        self.real_store = SqliteStore(self.db_path)
        self.store = OutageStore(self.real_store)
        self.engine = make_engine("sqlite:///state.sqlite", tmp_path)
        self.dead_letters = SqlDeadLetterStore(self.engine)
        self.workers: list[IngestWorker] = []
        self.base_ms = int(datetime.now(UTC).timestamp() * 1000) - 60_000
        self.publisher = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"spool-publisher-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.publisher.connect(mosquitto.host, mosquitto.port, keepalive=10)
        self.publisher.loop_start()

    def spool(self) -> DiskSpool:
        spool = open_spool(self.settings)
        assert spool is not None
        return spool

    def worker(self, spool: DiskSpool | None) -> IngestWorker:
        worker = IngestWorker(
            self.settings,
            self.store,
            {"aq-hc1": HAI_CHAU},
            self.geography,
            self.dead_letters,
            retry_first_s=0.1,
            retry_max_s=0.3,
            spool=spool,
        )
        self.workers.append(worker)
        worker.start()
        assert worker.wait_ready(WAIT_S), "worker did not connect and subscribe"
        return worker

    def publish(self, numbers: range) -> None:
        for n in numbers:
            body = json.dumps({"ts": self.base_ms + n, "pm25": float(n)}).encode()
            info = self.publisher.publish("city/air/aq-hc1", body, qos=1)
            info.wait_for_publish(timeout=5)
            assert info.is_published(), f"message {n} not acknowledged by the broker"

    def stored(self) -> list[int]:
        """Sequence numbers in the store, by timestamp (= by sequence number)."""
        with closing(sqlite3.connect(self.db_path)) as connection:
            rows = connection.execute(
                "SELECT ts_ms, value FROM points WHERE field = 'pm25' ORDER BY ts_ms"
            ).fetchall()
        assert all(ts - self.base_ms == value for ts, value in rows), "pm25 and ts disagree"
        return [int(value) for _, value in rows]

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.publisher.disconnect()
        self.publisher.loop_stop()
        self.real_store.close()
        self.engine.dispose()


@pytest.fixture
def rig(tmp_path: Path, mosquitto: MosquittoServer, geography: Geography) -> Iterator[Rig]:
    rig = Rig(tmp_path, mosquitto, geography)
    try:
        yield rig
    finally:
        rig.close()


def test_store_outage_spools_and_acks_then_drains_in_order(rig: Rig) -> None:
    spool = rig.spool()
    rig.store.down = True
    worker = rig.worker(spool)
    rig.publish(range(30))
    eventually(lambda: worker.stats.spooled == 30, "all 30 messages spooled")
    eventually(lambda: worker.stats.pending == 0, "all 30 acknowledged")
    stats = worker.stats
    assert stats.spool_batches == spool.batches > 0
    assert stats.spool_bytes == spool.bytes_used > 0
    assert rig.stored() == []
    eventually(lambda: rig.store.failed_writes >= 3, "the drain retrying while the store is down")

    # The store returns while more messages arrive: they queue behind the spooled ones.
    rig.store.down = False
    rig.publish(range(30, 60))
    eventually(lambda: len(rig.stored()) == 60, "all 60 readings stored")
    eventually(lambda: spool.batches == 0, "the spool drained")
    assert rig.stored() == list(range(60))  # no gap, no duplicate
    assert rig.store.written == list(range(60))  # and written in arrival order
    eventually(lambda: worker.stats.spool_bytes == 0, "the spool's bytes released")
    # the drained segment is deleted by the worker thread right after its last commit
    eventually(lambda: not list(rig.settings.path("spool").glob("*.seg")), "segments deleted")
    eventually(lambda: worker.stats.pending == 0, "all acknowledged")
    worker.stop()

    # Everything was acknowledged: the broker holds nothing for this session.
    again = rig.worker(rig.spool())
    time.sleep(0.5)
    assert again.stats.received == 0


def test_spooled_batches_are_drained_by_the_next_worker(rig: Rig) -> None:
    rig.store.down = True
    first = rig.worker(rig.spool())
    rig.publish(range(25))
    eventually(lambda: first.stats.spooled == 25, "all 25 messages spooled")
    eventually(lambda: first.stats.pending == 0, "all 25 acknowledged")
    first.stop()
    left = rig.spool()
    assert left.batches > 0
    assert rig.stored() == []

    # Restart with the store back: the spool drains, the broker delivers nothing again.
    rig.store.down = False
    second = rig.worker(left)
    rig.publish(range(25, 35))
    eventually(lambda: len(rig.stored()) == 35, "the spooled and the new readings stored")
    eventually(lambda: left.batches == 0, "the spool drained after the restart")
    assert rig.stored() == list(range(35))
    assert rig.store.written == list(range(35))
    assert second.stats.received == 10  # only the new ones: the spooled were acknowledged


def test_full_spool_leaves_the_backlog_unacknowledged_in_the_broker(rig: Rig) -> None:
    rig.store.down = True
    folder = rig.settings.path("small-spool")
    first = rig.worker(DiskSpool(folder, max_bytes=1500))  # room for a few batches only
    rig.publish(range(20))
    eventually(lambda: first.stats.received == 20, "all 20 received")
    eventually(lambda: first.stats.spooled > 0, "the first batches spooled")
    time.sleep(0.3)  # more rounds: the spool stays full, nothing else is acknowledged
    spooled = first.stats.spooled
    assert 0 < spooled < 20
    assert first.stats.pending == 20 - spooled
    first.stop()

    # The broker kept what was not acknowledged; the spool has the rest, older first.
    rig.store.down = False
    second = rig.worker(DiskSpool(folder, max_bytes=1500))
    eventually(lambda: len(rig.stored()) == 20, "all 20 stored after the restart")
    assert rig.stored() == list(range(20))
    assert rig.store.written == list(range(20))
    assert second.stats.received == 20 - spooled
    eventually(lambda: second.stats.pending == 0, "the redelivered ones acknowledged")
