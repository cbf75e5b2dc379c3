"""Two ``cityops ingest`` workers in one MQTT shared subscription ($share/cityops/...), a
publisher streaming without pause, and worker a killed with SIGKILL mid-stream, then
started again with the same client id a few seconds later.

The Rig of tests/integration/test_ingest_faults.py does the rest: a private Mosquitto
with persistence and a debug log (who was sent what), a private influxd, a registry of 20
devices and sequence-numbered readings. A poller reads InfluxDB every 0.2 s and notes when
each (device, seq) first appears, so the test measures how long a's share went unstored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.influxd import InfluxServer
from tests.fixtures.mosquitto import RestartableMosquitto
from tests.fixtures.waiting import eventually
from tests.integration.test_ingest_faults import DEVICES, Rig

pytestmark = pytest.mark.integration

ROUNDS_PER_S = 10  # each round: one reading from each of the 20 devices (200 messages/s)
DOWN_S = 3.0  # a is gone this long before it is started again
AFTER_S = 4.0  # the stream goes on this long after a is back
POLL_S = 0.2


@dataclass
class Stream:
    """The publisher's thread: one round of 20 readings per 1/ROUNDS_PER_S s, each round
    acknowledged by the broker before the next; ``published[seq]`` is when it was."""

    rig: Rig
    published: dict[int, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    error: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        seq = 0
        began = time.monotonic()
        try:
            while not self.stop.is_set():
                self.rig.publish_raw([self.rig.message(index, seq) for index in range(20)])
                self.published[seq] = time.monotonic()
                seq += 1
                time.sleep(max(0.0, began + seq / ROUNDS_PER_S - time.monotonic()))
        except BaseException as exc:  # the test reports it
            self.error.append(exc)


@dataclass
class Poller:
    """When each (device, seq) was first seen in InfluxDB."""

    rig: Rig
    seen: dict[tuple[str, int], float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(POLL_S):
            now = time.monotonic()
            for device, _, seq, _ in self.rig.rows():
                self.seen.setdefault((device, int(seq)), now)


@pytest.fixture
def shared_rig(tmp_path: Path, influxd: InfluxServer) -> Iterator[Rig]:
    broker = RestartableMosquitto(tmp_path / "broker", debug_log=True)  # logs who got what
    broker.start()
    rig = Rig(tmp_path, broker, influxd)
    try:
        yield rig
    finally:
        rig.close()
        broker.stop()
        influxd.query(f'DROP DATABASE "{rig.database}"')


def sent_to(rig: Rig, name: str) -> int:
    """PUBLISH packets the broker sent to worker ``name`` so far (its share)."""
    return rig.broker_log().count(f"Sending PUBLISH to cityops-faults-{name} ")


def test_a_worker_killed_mid_stream_loses_and_doubles_nothing_and_gets_its_share_again(
    shared_rig: Rig,
) -> None:
    rig = shared_rig
    rig.start_worker("a", shared_group="cityops")
    rig.start_worker("b", shared_group="cityops")
    stream, poller = Stream(rig), Poller(rig)
    threads = [threading.Thread(target=part.run, daemon=True) for part in (stream, poller)]
    for thread in threads:
        thread.start()
    try:
        eventually(lambda: rig.count() >= 400, "some of the stream stored before the kill")
        before = {name: sent_to(rig, name) for name in "ab"}
        rig.workers[0].kill()  # SIGKILL: a's unacknowledged messages stay with the broker
        killed_at = time.monotonic()
        rig.workers[0].wait(timeout=5)
        time.sleep(DOWN_S)
        during = {name: sent_to(rig, name) for name in "ab"}
        rig.start_worker("a", shared_group="cityops")  # same client id, same session
        restarted_at = time.monotonic()
        # a's backlog drains; after that it must also get a share of the live stream.
        eventually(lambda: not late(stream, poller, restarted_at), "a's backlog stored", 30)
        drained_at = time.monotonic()
        drained = {name: sent_to(rig, name) for name in "ab"}
        time.sleep(AFTER_S)
    finally:
        stream.stop.set()
        threads[0].join(timeout=30)
    assert stream.error == [], stream.error
    total = 20 * len(stream.published)
    rig.wait_stored(total)
    poller.stop.set()
    threads[1].join(timeout=10)
    rig.assert_exactly(range(len(stream.published)))  # once each, no gap, as sent
    after = {name: sent_to(rig, name) for name in "ab"}

    assert before["a"] > 0, before  # both shared the stream before the kill
    assert before["b"] > 0, before
    assert during["b"] > before["b"], (before, during)  # b went on alone
    assert after["a"] > drained["a"], (drained, after)  # a takes live messages again ...
    assert after["b"] > drained["b"], (drained, after)  # ... alongside b
    delays = sorted(
        poller.seen[(device, seq)] - stream.published[seq]
        for seq in stream.published
        for device in DEVICES
        if (device, seq) in poller.seen
    )
    delayed = [
        seq
        for seq in stream.published
        for device in DEVICES
        if poller.seen.get((device, seq), 0) - stream.published[seq] > 1.0
    ]
    assert delayed, "nothing waited for a: the kill tested nothing"
    stored_late_by = max(poller.seen.values()) - killed_at
    first_late = min(stream.published[seq] for seq in delayed) - killed_at
    last_late = max(stream.published[seq] for seq in delayed) - killed_at
    print(
        f"\nshares sent by the broker: before kill {before}, while a was down {during}, "
        f"after a's backlog {drained}, at the end {after}; "
        f"{len(delayed)} of {total} messages stored > 1 s after publishing, published "
        f"{first_late:+.1f}..{last_late:+.1f} s from the kill; a restarted "
        f"{restarted_at - killed_at:.1f} s after the kill, backlog stored "
        f"{drained_at - killed_at:.1f} s after it; max delay {delays[-1]:.1f} s, "
        f"median {delays[len(delays) // 2]:.2f} s; last point stored "
        f"{stored_late_by:.1f} s after the kill"
    )
    assert delays[-1] < DOWN_S + 30  # a's share waited for a, then came in full


def late(stream: Stream, poller: Poller, since: float) -> bool:
    """Whether a message published before ``since`` is still not in InfluxDB."""
    return any(
        (device, seq) not in poller.seen
        for seq, at in list(stream.published.items())
        if at < since
        for device in DEVICES
    )
