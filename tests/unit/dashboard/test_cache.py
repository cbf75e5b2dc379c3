"""The named queries' cache without Redis: LocalCache's time to live and eviction, stable
key digests, sealed values (tests/integration/test_query_cache_redis.py has the rest)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from dashboard.cache import LocalCache, key_digest, make_query_cache, seal, unseal

SECRET = b"k" * 32
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
