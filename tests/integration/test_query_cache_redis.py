"""The named queries' cache shared through a real Redis (a private redis-server per test):
two DashboardData objects stand for two dashboard worker processes, each with its own
RedisCache and connection, on one SQLite store that counts the queries it answers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from core.settings import Label, MetricSettings
from core.store import SqliteStore
from core.types import Point, UnitRef
from dashboard.cache import RedisCache, seal, unseal
from dashboard.data import DashboardData
from tests.conftest import FakeClock
from tests.fixtures.redis import RedisServer, running_redis

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
DANANG = UnitRef("province", "48")
SECRET = b"s" * 32
PREFIX = "test:query:"
METRICS = {
    "pm25": MetricSettings(
        kind="air", field="pm25", label=Label(vi="Bụi PM2.5", en="PM2.5"), unit="µg/m³"
    )
}


class CountingStore:
    """The real store, counting ``latest_by_unit`` calls; optionally slow, or failing for
    the first ``fail_first`` calls."""

    def __init__(self, store: SqliteStore, delay_s: float = 0.0, fail_first: int = 0) -> None:
        self.store = store
        self.delay_s = delay_s
        self.fail_first = fail_first
        self.calls = 0
        self._lock = threading.Lock()

    def latest_by_unit(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
            failing = self.calls <= self.fail_first
        time.sleep(self.delay_s)
        if failing:
            raise RuntimeError("the store failed this query")
        return self.store.latest_by_unit(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    store.write(
        [
            Point(
                "air",
                {"device": f"aq-{n}", "province": "48", "commune": commune},
                {"pm25": value},
                NOW - timedelta(minutes=n),
            )
            for n, (commune, value) in enumerate([("20194", 90.0), ("20197", 20.0)], start=1)
        ]
    )
    yield store
    store.close()


@pytest.fixture
def caches(redis_server: RedisServer) -> Iterator[list[RedisCache]]:
    made: list[RedisCache] = []
    yield made
    for cache in made:
        cache.close()


def worker(
    store: CountingStore,
    server: RedisServer,
    caches: list[RedisCache],
    cache_s: float = 30.0,
    grace_s: float = 0.0,
    **options: Any,
) -> DashboardData:
    """One dashboard worker: its own RedisCache (own connection and local copy); without
    grace unless asked (stale-while-revalidate has tests of its own below)."""
    cache = RedisCache(server.url, PREFIX, SECRET, **options)
    caches.append(cache)
    return DashboardData(
        store,  # type: ignore[arg-type]
        METRICS,
        clock=FakeClock(NOW),
        level="commune",
        scope=DANANG,
        cache_s=cache_s,
        cache=cache,
        grace_s=grace_s,
    )


def map_key() -> tuple[str, str, str, str]:
    return ("map", "pm25", "commune", "48")  # DashboardData.map_values's key


def test_two_workers_share_one_store_query(
    sqlite: SqliteStore, redis_server: RedisServer, caches: list[RedisCache]
) -> None:
    store = CountingStore(sqlite)
    first = worker(store, redis_server, caches).map_values("pm25")
    second = worker(store, redis_server, caches).map_values("pm25")
    assert store.calls == 1
    pd.testing.assert_frame_equal(second, first)  # values, index and dtypes (UTC ts)
    assert list(second.index) == ["20194", "20197"]
    assert str(second["ts"].dtype) == "datetime64[us, UTC]"


def test_a_value_expires_after_its_time_to_live(
    sqlite: SqliteStore, redis_server: RedisServer, caches: list[RedisCache]
) -> None:
    store = CountingStore(sqlite)
    one = worker(store, redis_server, caches, cache_s=0.5)
    one.map_values("pm25")
    client = redis.Redis.from_url(redis_server.url)
    left_ms = client.pttl(caches[0].redis_key(map_key()))  # expiry set in Redis (PX)
    client.close()
    assert 0 < left_ms <= 500
    worker(store, redis_server, caches, cache_s=0.5).map_values("pm25")
    assert store.calls == 1
    time.sleep(0.6)  # gone from Redis and from both local copies
    worker(store, redis_server, caches, cache_s=0.5).map_values("pm25")
    one.map_values("pm25")
    assert store.calls == 2


def test_a_tampered_value_is_rejected_and_recomputed(
    sqlite: SqliteStore,
    redis_server: RedisServer,
    caches: list[RedisCache],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = CountingStore(sqlite)
    good = worker(store, redis_server, caches).map_values("pm25")
    key = caches[0].redis_key(map_key())
    client = redis.Redis.from_url(redis_server.url)
    blob = client.get(key)
    assert isinstance(blob, bytes)
    client.set(key, blob[:-1] + bytes([blob[-1] ^ 1]), px=30_000)  # one bit flipped
    with caplog.at_level(logging.WARNING, logger="cityops.dashboard.cache"):
        again = worker(store, redis_server, caches).map_values("pm25")
    assert store.calls == 2
    pd.testing.assert_frame_equal(again, good)
    assert "bad signature" in caplog.text
    # The recomputed value replaced the bad one; a value signed with another secret (another
    # site on the same Redis) is refused the same way.
    stored = client.get(key)
    assert isinstance(stored, bytes)
    assert unseal(caches[1]._secret, key, stored) is not None
    client.set(key, seal(b"another site", key, good.iloc[:0]), px=30_000)
    assert len(worker(store, redis_server, caches).map_values("pm25")) == 2
    assert store.calls == 3
    client.close()


def test_redis_killed_mid_run_still_answers_and_comes_back(
    sqlite: SqliteStore,
    redis_server: RedisServer,
    caches: list[RedisCache],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = CountingStore(sqlite)
    one = worker(store, redis_server, caches, cache_s=0.3, retry_s=0.5)
    one.map_values("pm25")
    redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="cityops.dashboard.cache"):
        began = time.monotonic()
        other = worker(store, redis_server, caches, cache_s=0.3, retry_s=0.5)
        assert list(other.map_values("pm25").index) == ["20194", "20197"]
        assert list(other.map_values("pm25").index) == ["20194", "20197"]  # local copy
        time.sleep(0.35)  # one's local copy has expired too
        assert list(one.map_values("pm25").index) == ["20194", "20197"]
        assert time.monotonic() - began < 2.0
    assert store.calls == 3
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 2  # once per worker, not once per query
    assert all(r.exc_info is None for r in unreachable)  # an outage, not a bug

    redis_server.start()  # same port, empty
    time.sleep(0.6)  # past retry_s and the local copies
    one.map_values("pm25")
    other.map_values("pm25")
    assert store.calls == 4  # shared again


def test_single_flight_two_workers_one_store_query(
    sqlite: SqliteStore, redis_server: RedisServer, caches: list[RedisCache]
) -> None:
    store = CountingStore(sqlite, delay_s=0.4)
    workers = [worker(store, redis_server, caches) for _ in range(2)]
    start = threading.Barrier(2)
    frames: list[pd.DataFrame] = []

    def screen(data: DashboardData) -> None:
        start.wait()
        frames.append(data.map_values("pm25"))

    threads = [threading.Thread(target=screen, args=(data,)) for data in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert store.calls == 1
    assert len(frames) == 2
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_a_failed_query_does_not_make_the_others_wait(
    sqlite: SqliteStore, redis_server: RedisServer, caches: list[RedisCache]
) -> None:
    store = CountingStore(sqlite, delay_s=0.2, fail_first=1)
    workers = [worker(store, redis_server, caches, wait_s=5.0) for _ in range(2)]
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def screen(data: DashboardData) -> None:
        start.wait()
        try:
            outcomes.append(f"rows {len(data.map_values('pm25'))}")
        except RuntimeError as exc:
            outcomes.append(str(exc))

    began = time.monotonic()
    threads = [threading.Thread(target=screen, args=(data,)) for data in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    # The lock's holder failed and let go: the waiter queried at once, not after wait_s.
    assert sorted(outcomes) == ["rows 2", "the store failed this query"]
    assert store.calls == 2
    assert time.monotonic() - began < 2.0


def test_a_stale_value_is_served_at_once_and_refreshed_once_for_all_workers(
    sqlite: SqliteStore, redis_server: RedisServer, caches: list[RedisCache]
) -> None:
    store = CountingStore(sqlite, delay_s=0.5)
    one, two = (worker(store, redis_server, caches, cache_s=0.3, grace_s=30.0) for _ in "12")
    first = one.map_values("pm25")
    client = redis.Redis.from_url(redis_server.url)
    key = caches[0].redis_key(map_key())
    assert 29_000 < client.pttl(key) <= 30_300  # kept for cache_s + grace_s
    time.sleep(0.35)  # stale everywhere
    began = time.monotonic()
    pd.testing.assert_frame_equal(one.map_values("pm25"), first)
    pd.testing.assert_frame_equal(two.map_values("pm25"), first)
    pd.testing.assert_frame_equal(two.map_values("pm25"), first)
    assert time.monotonic() - began < 0.3  # the store takes 0.5 s: nobody waited for it
    assert all(cache.wait_idle(5) for cache in caches)
    assert store.calls == 2  # one refresh, by the worker holding the lock
    assert 29_000 < client.pttl(key) <= 30_300  # the refreshed value
    client.close()
    # Both workers now serve the fresh value (two from Redis), without a store query.
    one.map_values("pm25")
    two.map_values("pm25")
    assert store.calls == 2


def test_a_failed_refresh_keeps_serving_the_stale_value(
    sqlite: SqliteStore,
    redis_server: RedisServer,
    caches: list[RedisCache],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = CountingStore(sqlite, fail_first=0)
    one = worker(store, redis_server, caches, cache_s=0.2, grace_s=1.0)
    first = one.map_values("pm25")
    store.fail_first = 3  # calls 2 and 3 fail
    time.sleep(0.25)
    with caplog.at_level(logging.WARNING, logger="cityops.dashboard.cache"):
        pd.testing.assert_frame_equal(one.map_values("pm25"), first)
        assert caches[0].wait_idle(5)
        other = worker(store, redis_server, caches, cache_s=0.2, grace_s=1.0)
        pd.testing.assert_frame_equal(other.map_values("pm25"), first)  # still in Redis
        assert caches[1].wait_idle(5)
    assert store.calls == 3
    failed = [r for r in caplog.records if "refreshing" in r.getMessage()]
    assert failed
    assert all(r.exc_info is None for r in failed)
    time.sleep(1.0)  # past cache_s + grace_s: gone from Redis and from the local copies
    assert len(other.map_values("pm25")) == 2  # computed inline: the store is back
    assert store.calls == 4


def test_stale_local_copy_is_served_while_redis_is_down(
    sqlite: SqliteStore, redis_server: RedisServer, caches: list[RedisCache]
) -> None:
    store = CountingStore(sqlite, delay_s=0.3)
    one = worker(store, redis_server, caches, cache_s=0.2, grace_s=30.0, retry_s=60.0)
    first = one.map_values("pm25")
    redis_server.kill()
    time.sleep(0.25)
    began = time.monotonic()
    pd.testing.assert_frame_equal(one.map_values("pm25"), first)
    assert time.monotonic() - began < 0.25  # a failed Redis read, not a store query
    assert caches[0].wait_idle(5)
    assert store.calls == 2  # refreshed in the background, into the local copy
    one.map_values("pm25")
    assert store.calls == 2
