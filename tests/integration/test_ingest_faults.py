"""Faults, black-box: the real ``cityops ingest`` process between a private Mosquitto and a
private influxd, with a disk spool in tmp_path.

A publisher sends sequence-numbered readings (QoS 1) from 20 registered devices in Đà Nẵng:
``{"ts": base + seq ms, "seq": seq, "pm25": value}``, every ts distinct per device. After
each fault the test reads InfluxDB and requires every (device, seq) exactly once, no gap,
no extra point, and the values as sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.db import make_engine
from core.settings import IngestSettings
from ingest.deadletter import SqlDeadLetterStore
from tests.conftest import REPO
from tests.fixtures.influxd import InfluxServer, RestartableInfluxd
from tests.fixtures.mosquitto import RestartableMosquitto
from tests.fixtures.process import log_tail, stop_process
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration

DATA = REPO / "layers" / "data"
CITYOPS = Path(sys.executable).parent / "cityops"  # the console script of this venv
DEVICES = [f"aq-f{index:02d}" for index in range(20)]
# Around Hải Châu (commune 20242), a few metres apart.
POSITIONS = [(108.2208 + index * 0.0001, 16.0678) for index in range(20)]
STORE_WAIT_S = 40.0


def value_of(device_index: int, seq: int) -> float:
    """Not a round number, so a lossy round trip would show."""
    return round(device_index * 1.5 + seq * 0.37 + 0.123, 3)


class Rig:
    """Config, registry, publisher and worker processes of one test."""

    def __init__(self, tmp_path: Path, broker: RestartableMosquitto, influx: InfluxServer) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.influx = influx
        self.database = f"faults_{uuid.uuid4().hex[:10]}"
        self.base_ms = int(datetime.now(UTC).timestamp() * 1000) - 3_600_000
        registry = tmp_path / "devices.csv"
        registry.write_text(
            "device_id,kind,name,lon,lat\n"
            + "".join(
                f"{d},air,{d},{lon},{lat}\n"
                for d, (lon, lat) in zip(DEVICES, POSITIONS, strict=True)
            )
        )
        self.workers: list[subprocess.Popen[bytes]] = []
        self.publisher = self._publisher()

    # -- worker processes -----------------------------------------------------------------

    def config(self, name: str, shared_group: str | None = None) -> Path:
        ingest: dict[str, Any] = {
            "client_id": f"cityops-faults-{name}",
            "shared_group": shared_group,
            "qos": 1,
            "batch_size": 100,
            "flush_interval_s": 0.1,
            "session_expiry_s": 600,
            "spool_dir": f"spool-{name}",
            "spool_max_mb": 64,
        }
        if "metrics_port" in IngestSettings.model_fields:
            ingest["metrics_port"] = None  # two workers on one host; not under test here
        settings = {
            "broker": {"host": "127.0.0.1", "port": self.broker.port, "keepalive_s": 5},
            "store": {
                "backend": "influxdb",
                "influxdb": {"url": self.influx.url, "database": self.database, "timeout_s": 5},
            },
            "database": {"url": "sqlite:///state.sqlite"},
            "hierarchy": {"units_file": str(DATA / "admin_codes_2025.csv")},
            "layers": {
                "boundaries": {
                    "province": str(DATA / "vn_provinces_2025.geojson"),
                    "commune": str(DATA / "danang_2025_communes.geojson"),
                }
            },
            "devices": {"registry": "devices.csv"},
            "ingest": ingest,
        }
        path = self.tmp_path / f"config-{name}.yaml"
        path.write_text(yaml.safe_dump(settings, allow_unicode=True))
        return path

    def start_worker(
        self, name: str = "a", shared_group: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``cityops ingest`` and wait until the broker has its subscription."""
        config = self.config(name, shared_group)
        client_id = f"cityops-faults-{name}"
        subscribed_before = self.broker_log().count(f"{client_id} 1 ")
        log = (self.tmp_path / f"worker-{name}.log").open("ab")
        env = {key: value for key, value in os.environ.items() if not key.startswith("CITYOPS_")}
        process = subprocess.Popen(
            [str(CITYOPS), "ingest", "--config", str(config)],
            cwd=self.tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        log.close()
        self.workers.append(process)
        eventually(
            lambda: (
                process.poll() is not None
                or self.broker_log().count(f"{client_id} 1 ") > subscribed_before
            ),
            f"worker {name} subscribed",
        )
        assert process.poll() is None, f"worker {name} exited:\n{self.worker_log(name)}"
        return process

    def worker_log(self, name: str = "a") -> str:
        return log_tail(self.tmp_path / f"worker-{name}.log", 40)

    def broker_log(self) -> str:
        return self.broker.log_path.read_text(errors="replace")

    def close(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                stop_process(process)
        self.publisher.loop_stop()
        self.publisher.disconnect()

    # -- publishing -----------------------------------------------------------------------

    def _publisher(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"faults-publisher-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        client.max_inflight_messages_set(1000)
        client.connect("127.0.0.1", self.broker.port, keepalive=5)
        client.loop_start()
        return client

    def reconnect_publisher(self) -> None:
        self.publisher.loop_stop()
        self.publisher.disconnect()
        self.publisher = self._publisher()

    def publish_raw(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish at QoS 1 and wait until the broker acknowledged every message."""
        infos = [self.publisher.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=20)
            assert info.is_published(), "the broker did not acknowledge a message"

    def publish(self, seqs: range) -> None:
        """Every device sends the readings ``seqs`` (interleaved, as a fleet would)."""
        self.publish_raw([self.message(index, seq) for seq in seqs for index in range(20)])

    def message(self, device_index: int, seq: int) -> tuple[str, bytes]:
        body = {"ts": self.base_ms + seq, "seq": seq, "pm25": value_of(device_index, seq)}
        return f"city/air/{DEVICES[device_index]}", json.dumps(body).encode()

    # -- what InfluxDB holds --------------------------------------------------------------

    def rows(self) -> list[tuple[str, int, float, float]]:
        """(device, ts_ms, seq, pm25) of every stored point."""
        answer = self.influx.query(
            'SELECT "seq", "pm25" FROM "air" GROUP BY "device"', self.database
        )
        result = answer["results"][0]
        rows = []
        for series in result.get("series", []):
            device = series["tags"]["device"]
            rows += [(device, ts, seq, pm25) for ts, seq, pm25 in series["values"]]
        return rows

    def count(self) -> int:
        answer = self.influx.query('SELECT count("seq") FROM "air"', self.database)
        series = answer["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else 0

    def wait_stored(self, expected: int) -> None:
        eventually(
            lambda: self.count() >= expected,
            f"{expected} points in InfluxDB; worker log:\n{self.worker_log()}",
            timeout_s=STORE_WAIT_S,
        )

    def assert_exactly(self, seqs: range) -> None:
        """Every (device, seq) once with its values, nothing else."""
        expected = {
            (DEVICES[index], self.base_ms + seq, float(seq), value_of(index, seq))
            for seq in seqs
            for index in range(20)
        }
        rows = self.rows()
        duplicates = [key for key, n in Counter((d, s) for d, _, s, _ in rows).items() if n > 1]
        assert duplicates == [], f"stored more than once: {duplicates[:10]}"
        stored = set(rows)
        assert sorted(expected - stored)[:10] == [], f"{len(expected - stored)} missing"
        assert sorted(stored - expected)[:10] == [], f"{len(stored - expected)} unexpected"
        assert len(rows) == len(expected)


@pytest.fixture
def rig(
    tmp_path: Path, mosquitto_restartable: RestartableMosquitto, influxd: InfluxServer
) -> Iterator[Rig]:
    rig = Rig(tmp_path, mosquitto_restartable, influxd)
    yield rig
    rig.close()
    influxd.query(f'DROP DATABASE "{rig.database}"')


def test_kill_9_mid_batch_then_restart_loses_and_duplicates_nothing(rig: Rig) -> None:
    worker = rig.start_worker()
    publishing = threading.Thread(target=rig.publish, args=(range(100),))
    publishing.start()
    eventually(lambda: rig.count() >= 200, "some points stored before the kill")
    worker.kill()  # SIGKILL: no drain, no acknowledgement of what it holds
    worker.wait(timeout=5)
    killed_at = rig.count()
    publishing.join(timeout=30)
    assert killed_at < 2000, "the worker stored everything before the kill: no fault tested"
    rig.start_worker()  # same client id: the broker redelivers the unacknowledged
    rig.wait_stored(2000)
    rig.assert_exactly(range(100))


def test_broker_restart_keeps_the_session_and_its_queued_messages(rig: Rig) -> None:
    worker = rig.start_worker()
    rig.publish(range(25))
    rig.wait_stored(500)
    worker.terminate()  # a clean stop: the broker keeps the session and queues for it
    assert worker.wait(timeout=30) == 0, rig.worker_log()
    rig.publish(range(25, 85))  # 1200 queued: more than Mosquitto's default limit of 1000
    rig.broker.restart()  # only persistence can bring them back
    assert rig.count() == 500
    rig.reconnect_publisher()
    worker = rig.start_worker()
    rig.publish(range(85, 95))
    rig.broker.restart()  # now with the worker connected: it reconnects, nothing is lost
    rig.reconnect_publisher()
    rig.publish(range(95, 100))
    rig.wait_stored(2000)
    rig.assert_exactly(range(100))
    assert worker.poll() is None, rig.worker_log()


@pytest.fixture
def outage_rig(
    tmp_path: Path,
    mosquitto_restartable: RestartableMosquitto,
    influxd_restartable: RestartableInfluxd,
) -> Iterator[Rig]:
    rig = Rig(tmp_path, mosquitto_restartable, influxd_restartable.server)
    yield rig
    rig.close()


def test_influxdb_down_for_10_s_spools_then_stores_everything_once(
    outage_rig: Rig, influxd_restartable: RestartableInfluxd
) -> None:
    rig = outage_rig
    worker = rig.start_worker()
    rig.publish(range(30))
    rig.wait_stored(600)
    influxd_restartable.stop()
    down_at = time.monotonic()
    rig.publish(range(30, 70))  # into the disk spool, acknowledged
    segments = (rig.tmp_path / "spool-a").glob
    eventually(lambda: any(p.stat().st_size for p in segments("*.seg")), "batches spooled")
    time.sleep(max(0.0, 10.0 - (time.monotonic() - down_at)))
    influxd_restartable.start()
    rig.publish(range(70, 100))
    rig.wait_stored(2000)
    rig.assert_exactly(range(100))
    eventually(lambda: not list(segments("*.seg")), "the spool drained")
    assert worker.poll() is None, rig.worker_log()


def malformed(rig: Rig, n: int) -> tuple[str, bytes]:
    """Five kinds of bad message, each unique so the dead letters can be matched."""
    device = DEVICES[n % 20]
    ts = rig.base_ms + 10_000 + n
    future = int(datetime.now(UTC).timestamp() * 1000) + 86_400_000 + n  # > max_clock_skew_s
    kinds: list[tuple[str, bytes]] = [
        (f"city/air/{device}", f'{{"ts": {ts}, "seq": {n}, "pm25": '.encode()),  # cut JSON
        (f"city/air/{device}", json.dumps({"ts": ts, "seq": n, "pm25": "cao"}).encode()),
        (f"city/air/{device}", json.dumps({"ts": ts, "seq": n, "màu": 1}).encode()),
        (f"city/air/{device}", json.dumps({"ts": future, "seq": n, "pm25": 1.5}).encode()),
        (f"city/air/{device}", b"\xff\xfe" + str(n).encode()),  # not UTF-8
    ]
    return kinds[n % len(kinds)]


def test_malformed_messages_go_to_dead_letter_and_every_valid_one_is_stored(rig: Rig) -> None:
    rig.start_worker()
    messages: list[tuple[str, bytes]] = []
    bad: list[tuple[str, bytes]] = []
    for seq in range(100):
        for index in range(20):
            messages.append(rig.message(index, seq))
            if len(messages) % 10 == 9:  # 10 % of the stream
                bad.append(malformed(rig, len(bad)))
                messages.append(bad[-1])
    rig.publish_raw(messages)
    rig.wait_stored(2000)
    letters = SqlDeadLetterStore(make_engine("sqlite:///state.sqlite", rig.tmp_path))
    eventually(lambda: letters.count() >= len(bad), f"{len(bad)} dead letters")
    stored = letters.oldest(10 * len(bad))
    assert sorted((s.letter.topic, s.letter.payload) for s in stored) == sorted(bad)
    assert all(s.letter.reason.strip() for s in stored)
    rig.assert_exactly(range(100))
    assert letters.count() == len(bad) == 2000 // 9


def test_two_workers_in_a_shared_group_share_the_stream_and_store_it_once(
    tmp_path: Path, influxd: InfluxServer
) -> None:
    broker = RestartableMosquitto(tmp_path / "broker", debug_log=True)  # logs who got what
    broker.start()
    rig = Rig(tmp_path, broker, influxd)
    try:
        first = rig.start_worker("a", shared_group="cityops")
        second = rig.start_worker("b", shared_group="cityops")
        rig.publish(range(100))
        rig.wait_stored(2000)
        rig.assert_exactly(range(100))
        log = rig.broker_log()
        shares = {name: log.count(f"Sending PUBLISH to cityops-faults-{name} ") for name in "ab"}
        assert shares["a"] > 0, shares
        assert shares["b"] > 0, shares
        assert shares["a"] + shares["b"] == 2000, shares  # each message to one member only
        assert log.count("cityops-faults-a 1 $share/cityops/city/+/+") == 1
        assert first.poll() is None, rig.worker_log("a")
        assert second.poll() is None, rig.worker_log("b")
    finally:
        rig.close()
        broker.stop()
        influxd.query(f'DROP DATABASE "{rig.database}"')
