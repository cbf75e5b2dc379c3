"""The named queries' short cache: one store query per refresh beat for every screen.

Every wall screen and desk refreshes on the same beat, so :class:`DashboardData` keeps each
answer ``ttl_s`` seconds, then serves it ``grace_s`` seconds more while ONE background
refresh fetches the next (stale-while-revalidate): a callback waits for the store only on
the first call of a key, or when nobody asked for it within ``ttl_s + grace_s``.
:class:`LocalCache` keeps answers in this process; :class:`RedisCache` shares them between
the dashboard's worker processes through Redis (``dashboard.cache_url``), so that a beat
costs one store query whatever the number of workers:

* values are sealed with an HMAC (:mod:`dashboard.cache_wire`): a Redis shared with others
  can make us recompute, never unpickle bytes we did not write;
* on a miss one worker takes a lock (``SET NX PX``) and queries; the others poll for its
  answer for up to ``wait_s``, then query themselves. A stale answer is refreshed by the
  worker that takes the same lock; the others keep serving the stale one;
* Redis unreachable: a warning at most once a minute, and queries go to the store (through
  the local copy) — a cache never fails a callback. Redis is tried again ``retry_s`` later.

Refreshes run on a small pool (:class:`Refresher`), one at a time per key. A failed one is
logged (a warning at most once a minute, no traceback) and the stale answer is kept until
its grace ends; after that the next call queries inline and gets the error.

Frames handed out are shared between callers and must not be modified.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

import pandas as pd
import redis

from dashboard.cache_refresh import EveryMinute, MonotonicClock, Refresher
from dashboard.cache_wire import key_digest, redis_client, safe_url, seal, unseal

__all__ = [
    "LocalCache",
    "QueryCache",
    "RedisCache",
    "Refresher",
    "key_digest",
    "make_query_cache",
    "seal",
    "unseal",
]

log = logging.getLogger("cityops.dashboard.cache")

Compute = Callable[[], pd.DataFrame]
Found = tuple[pd.DataFrame, float]  # a frame and the seconds it has left in Redis

LOCAL_ENTRIES = 256
DEFAULT_PREFIX = "cityops:query:"
# Deletes the lock only if it is still ours (it may have expired and been taken by another).
_RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class QueryCache(Protocol):
    """Called by :meth:`DashboardData._cached` for every named query."""

    def get_or_compute(
        self, key: Hashable, ttl_s: float, compute: Compute, grace_s: float = 0.0
    ) -> pd.DataFrame:
        """The frame cached under ``key`` if younger than ``ttl_s``; if younger than
        ``ttl_s + grace_s``, that frame too, with ``compute()`` started in the background
        (once per key) to replace it; else ``compute()``, kept for ``ttl_s + grace_s``
        seconds. An exception of an inline ``compute`` reaches the caller."""
        ...


@dataclass(frozen=True, slots=True)
class _Entry:
    fresh_until: float
    stale_until: float
    frame: pd.DataFrame


class LocalCache:
    """This process's cache: a dict under a lock, at most ``entries`` frames (those past
    their grace go first, else the oldest half). The query runs outside the lock: a slow
    store must not serialise the other queries."""

    def __init__(
        self,
        entries: int = LOCAL_ENTRIES,
        *,
        clock: MonotonicClock = time.monotonic,
        refresher: Refresher | None = None,
    ) -> None:
        if entries < 1:
            raise ValueError(f"a cache needs room for one entry at least: {entries}")
        self.entries = entries
        self.clock = clock
        self.refresher = refresher or Refresher(clock=clock)
        self._frames: dict[Hashable, _Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._frames)

    def lookup(self, key: Hashable) -> tuple[pd.DataFrame, bool] | None:
        """(frame, whether it is fresh) until its grace ends; None after, or never put."""
        now = self.clock()
        with self._lock:
            hit = self._frames.get(key)
        if hit is None or hit.stale_until <= now:
            return None
        return hit.frame, hit.fresh_until > now

    def get(self, key: Hashable) -> pd.DataFrame | None:
        """The frame while it is fresh."""
        found = self.lookup(key)
        return found[0] if found is not None and found[1] else None

    def put(self, key: Hashable, ttl_s: float, frame: pd.DataFrame, grace_s: float = 0.0) -> None:
        now = self.clock()
        with self._lock:
            if key not in self._frames and len(self._frames) >= self.entries:
                over = [k for k, entry in self._frames.items() if entry.stale_until <= now]
                for old in over or list(self._frames)[: max(1, self.entries // 2)]:
                    del self._frames[old]
            self._frames[key] = _Entry(now + ttl_s, now + ttl_s + max(0.0, grace_s), frame)

    def get_or_compute(
        self, key: Hashable, ttl_s: float, compute: Compute, grace_s: float = 0.0
    ) -> pd.DataFrame:
        if ttl_s <= 0:
            return compute()
        found = self.lookup(key)
        if found is not None:
            frame, fresh = found
            if not fresh:
                self.refresher.start(key, lambda: self.put(key, ttl_s, compute(), grace_s))
            return frame
        frame = compute()
        self.put(key, ttl_s, frame, grace_s)
        return frame

    def wait_idle(self, timeout_s: float) -> bool:
        """Waits for the background refreshes (tests, benchmarks)."""
        return self.refresher.wait_idle(timeout_s)

    def close(self) -> None:
        self.refresher.close()


class RedisCache:
    """The cache shared by every worker through Redis, with a local copy in front of it
    for the rest of each value's time (see the module's docstring). A value lives
    ``ttl_s + grace_s`` in Redis; it is stale when fewer than ``grace_s`` are left (Redis's
    clock decides, so the workers' clocks need not agree)."""

    def __init__(
        self,
        url: str,
        prefix: str,
        secret: bytes,
        *,
        connect: Callable[[str], redis.Redis] = redis_client,
        wait_s: float = 5.0,
        retry_s: float = 5.0,
        clock: MonotonicClock = time.monotonic,
        local: LocalCache | None = None,
    ) -> None:
        if not secret:
            raise ValueError("the query cache needs a secret to sign what it stores")
        self.url = safe_url(url)
        self.prefix = prefix
        self.wait_s = wait_s
        self.retry_s = retry_s
        self.clock = clock
        # A key of its own: the cache never signs with the session key it is given.
        self._secret = hmac.new(secret, b"cityops query cache v1", hashlib.sha256).digest()
        self._client = connect(url)
        self._local = local or LocalCache(clock=clock)
        self._warn = EveryMinute(clock)
        self._down_until = float("-inf")
        self._state_lock = threading.Lock()

    def redis_key(self, key: Hashable) -> str:
        return self.prefix + key_digest(key)

    def get_or_compute(
        self, key: Hashable, ttl_s: float, compute: Compute, grace_s: float = 0.0
    ) -> pd.DataFrame:
        if ttl_s <= 0:
            return compute()
        grace_s = max(0.0, grace_s)
        found = self._local.lookup(key)
        if found is not None and found[1]:
            return found[0]
        try:
            redis_key = self.redis_key(key)
        except TypeError as exc:  # a programming error: say so, keep answering
            self._warn.warning(f"key:{type(key).__name__}", "query not shared: %s", exc)
            return self._local.get_or_compute(key, ttl_s, compute, grace_s)
        if self._is_down():
            return self._local.get_or_compute(key, ttl_s, compute, grace_s)
        stale = found[0] if found is not None else None
        try:
            return self._shared(key, redis_key, ttl_s, grace_s, compute, stale)
        except redis.RedisError as exc:
            self._went_down(exc)
            return self._local.get_or_compute(key, ttl_s, compute, grace_s)

    def _shared(
        self,
        key: Hashable,
        redis_key: str,
        ttl_s: float,
        grace_s: float,
        compute: Compute,
        stale: pd.DataFrame | None,
    ) -> pd.DataFrame:
        """Raises RedisError when Redis fails before or while waiting; after ``compute``
        ran, a failure to store is only logged."""
        lock_key = redis_key + ":lock"
        found, locked = self._read(redis_key, lock_key)
        if found is not None:
            frame, left_s = found
            self._keep(key, frame, left_s, grace_s)
            if left_s <= grace_s and not locked:  # stale, and nobody is refreshing it
                self._refresh_later(key, redis_key, ttl_s, grace_s, compute)
            return frame
        if stale is not None:  # gone from Redis (restarted, evicted); ours is in its grace
            self._refresh_later(key, redis_key, ttl_s, grace_s, compute)
            return stale
        token = secrets.token_hex(16)
        if self._client.set(lock_key, token, nx=True, px=self._lock_ms()):
            try:
                frame = compute()
            except BaseException:
                self._release(lock_key, token)
                raise
            self._local.put(key, ttl_s, frame, grace_s)
            self._store(redis_key, ttl_s + grace_s, frame, lock_key, token)
            return frame
        # Another worker is querying: wait for its answer, then query ourselves.
        deadline = time.monotonic() + self.wait_s  # real time: Redis's lock expires in it
        pause = 0.005
        while time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            found, locked = self._read(redis_key, lock_key)
            if found is not None:
                self._keep(key, found[0], found[1], grace_s)
                return found[0]
            if not locked:  # it gave up (its query failed): no answer is coming
                break
        frame = compute()
        self._local.put(key, ttl_s, frame, grace_s)
        self._store(redis_key, ttl_s + grace_s, frame)
        return frame

    def _keep(self, key: Hashable, frame: pd.DataFrame, left_s: float, grace_s: float) -> None:
        """The local copy of a value read from Redis, for the time it has left there."""
        fresh_s = max(0.0, left_s - grace_s)
        self._local.put(key, fresh_s, frame, left_s - fresh_s)

    def _refresh_later(
        self, key: Hashable, redis_key: str, ttl_s: float, grace_s: float, compute: Compute
    ) -> None:
        """One background refresh of a stale value, by the worker that gets the lock (the
        others serve the stale value until the new one is in Redis)."""
        lock_key = redis_key + ":lock"

        def refresh() -> None:
            token = secrets.token_hex(16)
            locked = False
            if not self._is_down():
                try:
                    if not self._client.set(lock_key, token, nx=True, px=self._lock_ms()):
                        return  # another worker is refreshing it
                    locked = True
                except redis.RedisError as exc:
                    self._went_down(exc)
            try:
                frame = compute()
            except BaseException:
                if locked:
                    self._release(lock_key, token)
                raise
            self._local.put(key, ttl_s, frame, grace_s)
            if locked:
                self._store(redis_key, ttl_s + grace_s, frame, lock_key, token)

        self._local.refresher.start(key, refresh)

    def _lock_ms(self) -> int:
        return max(1, int(self.wait_s * 1000))

    def _read(self, redis_key: str, lock_key: str) -> tuple[Found | None, bool]:
        """((frame, seconds left) or None, whether the lock is held): one round trip."""
        pipe = self._client.pipeline(transaction=False)
        pipe.mget(redis_key, lock_key)
        pipe.pttl(redis_key)
        (blob, lock), pttl = pipe.execute()
        self._came_back()
        if blob is None:
            return None, lock is not None
        frame = unseal(self._secret, redis_key, bytes(blob))
        if frame is None:
            self._warn.warning(
                "tampered",
                "query cache %s: value under %s is not ours (bad signature), recomputing",
                self.url,
                redis_key,
            )
            return None, lock is not None
        left_s = int(pttl) / 1000 if int(pttl) > 0 else 0.0
        return (frame, left_s), lock is not None

    def _store(
        self,
        redis_key: str,
        keep_s: float,
        frame: pd.DataFrame,
        lock_key: str | None = None,
        token: str | None = None,
    ) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.set(redis_key, seal(self._secret, redis_key, frame), px=max(1, int(keep_s * 1000)))
            if lock_key is not None and token is not None:
                pipe.eval(_RELEASE_LUA, 1, lock_key, token)
            pipe.execute()
        except redis.RedisError as exc:
            self._went_down(exc)

    def _release(self, lock_key: str, token: str) -> None:
        try:
            self._client.eval(_RELEASE_LUA, 1, lock_key, token)
        except redis.RedisError as exc:
            self._went_down(exc)

    def _is_down(self) -> bool:
        with self._state_lock:
            return self.clock() < self._down_until

    def _went_down(self, exc: Exception) -> None:
        with self._state_lock:
            self._down_until = self.clock() + self.retry_s
        self._warn.warning(
            "down",
            "query cache %s unreachable, querying the store directly (next try in %g s): %s",
            self.url,
            self.retry_s,
            exc,
        )

    def _came_back(self) -> None:
        with self._state_lock:
            was_down = self._down_until != float("-inf")
            self._down_until = float("-inf")
        if was_down:
            log.info("query cache %s reachable again", self.url)

    def wait_idle(self, timeout_s: float) -> bool:
        """Waits for this worker's background refreshes (tests, benchmarks)."""
        return self._local.wait_idle(timeout_s)

    def close(self) -> None:
        self._local.close()
        self._client.close()


def make_query_cache(url: str | None, secret: bytes, *, prefix: str = DEFAULT_PREFIX) -> QueryCache:
    """``dashboard.cache_url``: None keeps one cache per process; ``redis://…`` shares it.
    Nothing connects here. The prefix gets a tag of the secret: dashboards of other sites
    on the same Redis (another secret) never meet our keys."""
    if url is None:
        return LocalCache()
    site = hmac.new(secret, b"cityops query cache prefix", hashlib.sha256).hexdigest()[:12]
    return RedisCache(url, f"{prefix}{site}:", secret)
