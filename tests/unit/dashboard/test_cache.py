"""The named queries' cache without Redis: LocalCache's time to live, eviction and
stale-while-revalidate (on an injected clock and a pool run by hand), stable key digests,
sealed values (tests/integration/test_query_cache_redis.py has the rest)."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from core.settings import Label, MetricSettings
from dashboard.cache import LocalCache, Refresher, key_digest, make_query_cache, seal, unseal
from dashboard.data import DashboardData
from tests.conftest import FakeClock

SECRET = b"k" * 32
P = ParamSpec("P")
T = TypeVar("T")
REPO = Path(__file__).resolve().parents[3]


class Ticks:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> pd.DataFrame:
        self.calls += 1
        return pd.DataFrame({"call": [self.calls]})


def test_local_cache_keeps_a_frame_for_its_time_to_live() -> None:
    ticks = Ticks()
    cache = LocalCache(clock=ticks)
    compute = Counter()
    first = cache.get_or_compute(("map", "pm25"), 2.0, compute)
    ticks.now += 1.9
    assert cache.get_or_compute(("map", "pm25"), 2.0, compute) is first
    assert compute.calls == 1
    ticks.now += 0.1  # exactly at the end: expired
    assert cache.get_or_compute(("map", "pm25"), 2.0, compute)["call"].iloc[0] == 2
    assert compute.calls == 2


def test_local_cache_with_no_time_to_live_always_computes() -> None:
    cache = LocalCache(clock=Ticks())
    compute = Counter()
    cache.get_or_compute("k", 0.0, compute)
    cache.get_or_compute("k", 0.0, compute)
    assert compute.calls == 2
    assert len(cache) == 0


def test_local_cache_evicts_expired_entries_first() -> None:
    ticks = Ticks()
    cache = LocalCache(4, clock=ticks)
    cache.put("short", 1.0, pd.DataFrame())
    for key in ("a", "b", "c"):
        cache.put(key, 60.0, pd.DataFrame())
    ticks.now += 2  # "short" has expired
    cache.put("d", 60.0, pd.DataFrame())
    assert len(cache) == 4
    assert all(cache.get(key) is not None for key in ("a", "b", "c", "d"))


def test_local_cache_full_of_live_entries_drops_the_oldest_half() -> None:
    cache = LocalCache(4, clock=Ticks())
    for key in ("a", "b", "c", "d"):
        cache.put(key, 60.0, pd.DataFrame())
    cache.put("e", 60.0, pd.DataFrame())
    assert [key for key in "abcde" if cache.get(key) is not None] == ["c", "d", "e"]
    cache.put("c", 60.0, pd.DataFrame())  # replacing a key evicts nothing
    assert len(cache) == 3


def test_local_cache_lets_the_query_error_through_and_caches_nothing() -> None:
    cache = LocalCache(clock=Ticks())

    def failing() -> pd.DataFrame:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError, match="store down"):
        cache.get_or_compute("k", 5.0, failing)
    assert cache.get("k") is None


class ByHand(Executor):
    """A pool whose jobs run when the test says so."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Future[Any], Callable[[], Any]]] = []

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        self.jobs.append((future, lambda: fn(*args, **kwargs)))
        return future

    def run(self) -> int:
        """Runs the waiting jobs; how many ran."""
        jobs, self.jobs = self.jobs, []
        for future, job in jobs:
            future.set_running_or_notify_cancel()
            future.set_result(job())
        return len(jobs)


class Answers:
    """A query answering 1, 2, 3...; the calls listed in ``failing`` raise."""

    def __init__(self, failing: tuple[int, ...] = ()) -> None:
        self.calls = 0
        self.failing = failing

    def __call__(self) -> pd.DataFrame:
        self.calls += 1
        if self.calls in self.failing:
            raise RuntimeError(f"store down (call {self.calls})")
        return pd.DataFrame({"call": [self.calls]})


def answer(frame: pd.DataFrame) -> int:
    return int(frame["call"].iloc[0])


def swr_cache(ticks: Ticks, pool: ByHand, **options: int) -> LocalCache:
    return LocalCache(clock=ticks, refresher=Refresher(executor=pool, clock=ticks, **options))


def test_a_stale_answer_is_served_at_once_and_refreshed_once_in_the_background() -> None:
    ticks, pool, query = Ticks(), ByHand(), Answers()
    cache = swr_cache(ticks, pool)
    first = cache.get_or_compute("map", 5.0, query, grace_s=20.0)
    ticks.now += 10  # the next refresh beat: past the time to live, inside the grace
    assert cache.get_or_compute("map", 5.0, query, grace_s=20.0) is first
    assert cache.get_or_compute("map", 5.0, query, grace_s=20.0) is first  # another screen
    assert query.calls == 1  # nobody waited for the store
    assert pool.run() == 1  # one refresh for both screens
    assert query.calls == 2
    assert answer(cache.get_or_compute("map", 5.0, query, grace_s=20.0)) == 2
    assert pool.run() == 0  # fresh again: nothing to refresh
    ticks.now += 4.9
    assert answer(cache.get_or_compute("map", 5.0, query, grace_s=20.0)) == 2
    assert pool.run() == 0


def test_a_failed_refresh_keeps_the_stale_answer_until_its_grace_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks, pool, query = Ticks(), ByHand(), Answers(failing=(2, 3, 4))
    cache = swr_cache(ticks, pool)
    first = cache.get_or_compute("map", 5.0, query, grace_s=20.0)
    with caplog.at_level(logging.WARNING, logger="cityops.dashboard.cache"):
        ticks.now += 10
        assert cache.get_or_compute("map", 5.0, query, grace_s=20.0) is first
        assert pool.run() == 1  # call 2 fails
        ticks.now += 10
        assert cache.get_or_compute("map", 5.0, query, grace_s=20.0) is first
        assert pool.run() == 1  # call 3 fails: tried again, once per stale read at most
    failures = [r for r in caplog.records if "refreshing" in r.getMessage()]
    assert len(failures) == 1  # once a minute, not once per beat
    assert failures[0].levelno == logging.WARNING
    assert failures[0].exc_info is None
    assert "store down (call 2)" in failures[0].getMessage()
    ticks.now += 5  # 25 s old: its grace (5 + 20) is over, the next call waits and fails
    with pytest.raises(RuntimeError, match=r"call 4"):
        cache.get_or_compute("map", 5.0, query, grace_s=20.0)
    assert pool.run() == 0
    assert answer(cache.get_or_compute("map", 5.0, query, grace_s=20.0)) == 5  # inline
    assert query.calls == 5


def test_after_its_grace_an_answer_is_recomputed_inline() -> None:
    ticks, pool, query = Ticks(), ByHand(), Answers()
    cache = swr_cache(ticks, pool)
    cache.get_or_compute("map", 5.0, query, grace_s=20.0)
    ticks.now += 24.9
    assert answer(cache.get_or_compute("map", 5.0, query, grace_s=20.0)) == 1
    pool.jobs.clear()  # the refresh never ran (pool busy)
    ticks.now += 0.1
    assert answer(cache.get_or_compute("map", 5.0, query, grace_s=20.0)) == 2
    assert query.calls == 2
    assert pool.jobs == []


def test_without_grace_an_expired_answer_is_recomputed_inline() -> None:
    ticks, pool, query = Ticks(), ByHand(), Answers()
    cache = swr_cache(ticks, pool)
    cache.get_or_compute("map", 5.0, query)
    ticks.now += 5
    assert answer(cache.get_or_compute("map", 5.0, query)) == 2
    assert pool.jobs == []


def test_refreshes_waiting_are_bounded() -> None:
    ticks, pool = Ticks(), ByHand()
    cache = swr_cache(ticks, pool, pending=2)
    queries = {key: Answers() for key in "abc"}
    for key, query in queries.items():
        cache.get_or_compute(key, 5.0, query, grace_s=20.0)
    ticks.now += 10
    for key, query in queries.items():
        assert answer(cache.get_or_compute(key, 5.0, query, grace_s=20.0)) == 1
    assert pool.run() == 2  # "c" was served stale, its refresh not queued
    assert [q.calls for q in queries.values()] == [2, 2, 1]
    cache.get_or_compute("c", 5.0, queries["c"], grace_s=20.0)  # asks again
    assert pool.run() == 1


def test_one_refresh_per_key_across_threads_on_the_real_pool() -> None:
    ticks = Ticks()
    cache = LocalCache(clock=ticks)
    release = threading.Event()
    calls: list[int] = []

    def slow() -> pd.DataFrame:
        calls.append(1)
        if len(calls) > 1:
            release.wait(5)
        return pd.DataFrame({"call": [len(calls)]})

    first = cache.get_or_compute("map", 5.0, slow, grace_s=20.0)
    ticks.now += 10
    served: list[pd.DataFrame] = []
    start = threading.Barrier(8)

    def screen() -> None:
        start.wait()
        served.append(cache.get_or_compute("map", 5.0, slow, grace_s=20.0))

    threads = [threading.Thread(target=screen) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(served) == 8
    assert all(frame is first for frame in served)
    release.set()
    assert cache.wait_idle(5)
    assert len(calls) == 2
    assert answer(cache.get_or_compute("map", 5.0, slow, grace_s=20.0)) == 2
    cache.close()


class Recording:
    """A QueryCache that records the times it is given."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []

    def get_or_compute(
        self, key: Hashable, ttl_s: float, compute: Callable[[], pd.DataFrame], grace_s: float = 0
    ) -> pd.DataFrame:
        self.times.append((ttl_s, grace_s))
        return compute()


class NoStore:
    def latest_by_unit(self, *args: object, **kwargs: object) -> list[object]:
        return []


@pytest.mark.parametrize(("grace_s", "expected"), [(None, 20.0), (0.0, 0.0), (30.0, 30.0)])
def test_dashboard_data_gives_a_grace_that_outlasts_the_refresh_beat(
    grace_s: float | None, expected: float
) -> None:
    """build_context: refresh_s 10 → cache_s 5; a screen calls every 10 s, so by default an
    answer stays servable 20 s past its time to live (two beats)."""
    cache = Recording()
    metrics = {
        "pm25": MetricSettings(
            kind="air", field="pm25", label=Label(vi="PM", en="PM"), unit="µg/m³"
        )
    }
    data = DashboardData(
        NoStore(),  # type: ignore[arg-type]
        metrics,
        clock=FakeClock(),
        level="commune",
        cache_s=5.0,
        cache=cache,
        grace_s=grace_s,
    )
    data.map_values("pm25")
    assert cache.times == [(5.0, expected)]


@dataclass(frozen=True)
class Unit:
    level: str
    code: str


def test_key_digest_is_stable_and_tells_keys_apart() -> None:
    at = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    key = ("map_at", "pm25", "commune", "48", at)
    assert key_digest(key) == key_digest(("map_at", "pm25", "commune", "48", at))
    # The same instant in another zone is the same key; another instant is not.
    local = at.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    assert key_digest(("map_at", "pm25", "commune", "48", local)) == key_digest(key)
    assert key_digest(("map_at", "pm25", "commune", "48", at + timedelta(seconds=1))) != (
        key_digest(key)
    )
    # None, "None" and a missing part are three keys; 1 and True and "1" too.
    digests = {
        key_digest(("devices", None)),
        key_digest(("devices", "None")),
        key_digest(("devices",)),
        key_digest(("x", 1)),
        key_digest(("x", True)),
        key_digest(("x", "1")),
        key_digest(("x", 1.0)),
    }
    assert len(digests) == 7
    assert key_digest(("u", Unit("commune", "20194"))) != key_digest(("u", Unit("ward", "20194")))


def test_key_digest_of_a_set_is_the_same_in_another_process() -> None:
    """``repr`` of a set follows the per-process string hash: the digest must not."""
    key = ("visible", frozenset({"20194", "20260", "48", "20209"}), {"b": 1, "a": 2})
    code = (
        "from dashboard.cache import key_digest;"
        "print(key_digest(('visible', frozenset({'20209', '48', '20260', '20194'}),"
        " {'a': 2, 'b': 1})))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert other.stdout.strip() == key_digest(key)


def test_key_digest_refuses_what_has_no_stable_form() -> None:
    with pytest.raises(TypeError, match="object"):
        key_digest(("devices", object()))


def frame_with_every_kind_of_column() -> pd.DataFrame:
    index = pd.DatetimeIndex(
        ["2026-11-02T01:00:00Z", "2026-11-02T01:15:00Z"], dtype="datetime64[us, UTC]", name="ts"
    )
    return pd.DataFrame(
        {
            "value": [1.5, float("nan")],
            "devices": pd.array([3, 0], dtype="int64"),
            "seen": pd.DatetimeIndex(["2026-11-02T00:59:00Z", None], dtype="datetime64[us, UTC]"),
            "name": pd.Series(["Hải Châu", None], dtype="object"),
        },
        index=index,
    )


def test_sealed_frame_round_trips_with_its_dtypes() -> None:
    frame = frame_with_every_kind_of_column()
    back = unseal(SECRET, "p:key", seal(SECRET, "p:key", frame))
    assert back is not None
    pd.testing.assert_frame_equal(back, frame)
    assert str(back.index.dtype) == "datetime64[us, UTC]"
    assert back["name"].dtype == object


def test_unseal_refuses_what_we_did_not_write_without_unpickling_it() -> None:
    frame = frame_with_every_kind_of_column()
    blob = seal(SECRET, "p:key", frame)
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    assert unseal(SECRET, "p:key", flipped) is None
    assert unseal(b"another secret", "p:key", blob) is None
    # A valid value of another key (another unit's answer) is not this key's.
    assert unseal(SECRET, "p:other", blob) is None

    class Bomb:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (pytest.fail, ("a foreign pickle was loaded",))

    foreign = pickle.dumps(Bomb())
    assert unseal(SECRET, "p:key", foreign) is None
    assert unseal(SECRET, "p:key", b"cq1" + b"\0" * 32 + foreign) is None
    assert unseal(SECRET, "p:key", b"") is None


def test_make_query_cache_without_url_is_local() -> None:
    assert isinstance(make_query_cache(None, SECRET), LocalCache)


def test_make_query_cache_with_url_connects_to_nothing_yet() -> None:
    cache = make_query_cache("redis://127.0.0.1:1/0", SECRET)  # nothing listens on port 1
    other_site = make_query_cache("redis://127.0.0.1:1/0", b"another secret")
    assert cache.redis_key("k") != other_site.redis_key("k")  # type: ignore[attr-defined]
    assert cache.redis_key("k").startswith("cityops:query:")  # type: ignore[attr-defined]
