"""The named queries' short cache: one store query per refresh beat for every screen.

Every wall screen and desk refreshes on the same beat, so :class:`DashboardData` keeps each
answer for a few seconds. :class:`LocalCache` keeps it in this process; :class:`RedisCache`
shares it between the dashboard's worker processes through Redis (``dashboard.cache_url``),
so that a beat costs one store query whatever the number of workers:

* values are pickled DataFrames sealed with an HMAC-SHA256 over the Redis key and the bytes
  (a key derived from the dashboard's secret): a Redis shared with others can make us
  recompute, never unpickle bytes we did not write, nor serve one key's answer for another;
* on a miss one worker takes a lock (``SET NX PX``) and queries; the others poll for its
  answer for up to ``wait_s``, then query themselves;
* Redis unreachable: a warning at most once a minute, and queries go to the store (through
  the local copy) — a cache never fails a callback. Redis is tried again ``retry_s`` later.

Frames handed out are shared between callers and must not be modified.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import pickle
import secrets
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from datetime import date, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

import pandas as pd
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("cityops.dashboard.cache")

Compute = Callable[[], pd.DataFrame]
MonotonicClock = Callable[[], float]
Found = tuple[pd.DataFrame, float]  # a frame and the seconds it has left in the cache

LOCAL_ENTRIES = 256
DEFAULT_PREFIX = "cityops:query:"
LOG_EVERY_S = 60.0
_SEAL_VERSION = b"cq1"
_MAC_BYTES = 32
# Deletes the lock only if it is still ours (it may have expired and been taken by another).
_RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class QueryCache(Protocol):
    """Called by :meth:`DashboardData._cached` for every named query."""

    def get_or_compute(self, key: Hashable, ttl_s: float, compute: Compute) -> pd.DataFrame:
        """The frame cached under ``key`` if younger than ``ttl_s``; else ``compute()``,
        kept for ``ttl_s`` seconds. An exception of ``compute`` reaches the caller."""
        ...


class LocalCache:
    """This process's cache: a dict under a lock, at most ``entries`` frames (expired ones
    go first, else the oldest half). The query runs outside the lock: a slow store must not
    serialise the other queries."""

    def __init__(
        self, entries: int = LOCAL_ENTRIES, *, clock: MonotonicClock = time.monotonic
    ) -> None:
        if entries < 1:
            raise ValueError(f"a cache needs room for one entry at least: {entries}")
        self.entries = entries
        self.clock = clock
        self._frames: dict[Hashable, tuple[float, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, key: Hashable) -> pd.DataFrame | None:
        now = self.clock()
        with self._lock:
            hit = self._frames.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        return None

    def put(self, key: Hashable, ttl_s: float, frame: pd.DataFrame) -> None:
        now = self.clock()
        with self._lock:
            if key not in self._frames and len(self._frames) >= self.entries:
                expired = [k for k, (until, _) in self._frames.items() if until <= now]
                for old in expired or list(self._frames)[: max(1, self.entries // 2)]:
                    del self._frames[old]
            self._frames[key] = (now + ttl_s, frame)

    def get_or_compute(self, key: Hashable, ttl_s: float, compute: Compute) -> pd.DataFrame:
        if ttl_s <= 0:
            return compute()
        frame = self.get(key)
        if frame is None:
            frame = compute()
            self.put(key, ttl_s, frame)
        return frame


def key_digest(key: Hashable) -> str:
    """A digest of ``key`` that is the same in every process and Python version (``hash``
    and the ``repr`` of sets are not): strings, numbers, None, dates and times (as UTC),
    durations, tuples, lists, sets, mappings and dataclasses of these. TypeError otherwise."""
    return hashlib.sha256(_canonical(key).encode()).hexdigest()


def _canonical(part: object) -> str:
    if part is None or isinstance(part, bool | int | str):
        return f"{type(part).__name__}:{part!r}"
    if isinstance(part, float):
        return f"float:{part.hex()}"
    if isinstance(part, datetime):
        if part.tzinfo is None:
            return f"naive:{part.isoformat()}"
        return f"utc:{pd.Timestamp(part).tz_convert('UTC').isoformat()}"
    if isinstance(part, date):
        return f"date:{part.isoformat()}"
    if isinstance(part, timedelta):
        return f"delta:{part.days},{part.seconds},{part.microseconds}"
    if isinstance(part, tuple | list):
        return f"{type(part).__name__}(" + ",".join(_canonical(p) for p in part) + ")"
    if isinstance(part, set | frozenset):
        return "set(" + ",".join(sorted(_canonical(p) for p in part)) + ")"
    if isinstance(part, Mapping):
        items = sorted(_canonical(k) + "=" + _canonical(v) for k, v in part.items())
        return "map(" + ",".join(items) + ")"
    if dataclasses.is_dataclass(part) and not isinstance(part, type):
        fields = (_canonical(getattr(part, f.name)) for f in dataclasses.fields(part))
        return f"{type(part).__qualname__}(" + ",".join(fields) + ")"
    raise TypeError(f"a query cache key cannot hold a {type(part).__name__}: {part!r}")


def seal(secret: bytes, redis_key: str, frame: pd.DataFrame) -> bytes:
    """The bytes stored in Redis: version, HMAC-SHA256(key ‖ payload), pickled frame."""
    payload = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    return _SEAL_VERSION + _mac(secret, redis_key, payload) + payload


def unseal(secret: bytes, redis_key: str, blob: bytes) -> pd.DataFrame | None:
    """The frame :func:`seal` stored under ``redis_key``; None for anything else (other
    bytes, another key's value, a foreign writer): checked before unpickling."""
    head = len(_SEAL_VERSION)
    if len(blob) < head + _MAC_BYTES or not blob.startswith(_SEAL_VERSION):
        return None
    mac, payload = blob[head : head + _MAC_BYTES], blob[head + _MAC_BYTES :]
    if not hmac.compare_digest(mac, _mac(secret, redis_key, payload)):
        return None
    frame = pickle.loads(payload)  # authenticated above: we wrote these bytes
    return frame if isinstance(frame, pd.DataFrame) else None


def _mac(secret: bytes, redis_key: str, payload: bytes) -> bytes:
    signer = hmac.new(secret, redis_key.encode() + b"\0", hashlib.sha256)
    signer.update(payload)
    return signer.digest()


class _EveryMinute:
    """Logs a warning about ``topic`` at most once per ``every_s``."""

    def __init__(self, clock: MonotonicClock, every_s: float = LOG_EVERY_S) -> None:
        self.clock = clock
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def warning(self, topic: str, message: str, *args: object) -> None:
        now = self.clock()
        with self._lock:
            last = self._last.get(topic)
            if last is not None and now - last < self.every_s:
                return
            self._last[topic] = now
        log.warning(message, *args)


def redis_client(url: str, timeout_s: float = 0.5) -> redis.Redis:
    """A client that fails fast: short timeouts and no retries (a slow or absent cache
    must cost a callback little; the store is the fallback). Connects on first use."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


def safe_url(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisCache:
    """The cache shared by every worker through Redis, with a local copy in front of it
    for the rest of each value's time to live (see the module's docstring)."""

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
        self._warn = _EveryMinute(clock)
        self._down_until = float("-inf")
        self._state_lock = threading.Lock()

    def redis_key(self, key: Hashable) -> str:
        return self.prefix + key_digest(key)

    def get_or_compute(self, key: Hashable, ttl_s: float, compute: Compute) -> pd.DataFrame:
        if ttl_s <= 0:
            return compute()
        frame = self._local.get(key)
        if frame is not None:
            return frame
        try:
            redis_key = self.redis_key(key)
        except TypeError as exc:  # a programming error: say so, keep answering
            self._warn.warning(f"key:{type(key).__name__}", "query not shared: %s", exc)
            return self._local.get_or_compute(key, ttl_s, compute)
        if self._is_down():
            return self._local.get_or_compute(key, ttl_s, compute)
        try:
            found = self._shared(redis_key, ttl_s, compute)
        except redis.RedisError as exc:
            self._went_down(exc)
            return self._local.get_or_compute(key, ttl_s, compute)
        frame, left_s = found
        self._local.put(key, left_s, frame)
        return frame

    def _shared(self, redis_key: str, ttl_s: float, compute: Compute) -> Found:
        """(frame, seconds it has left). Raises RedisError when Redis fails before or
        while waiting; after ``compute`` ran, a failure to store is only logged."""
        lock_key = redis_key + ":lock"
        found, _ = self._read(redis_key, lock_key)
        if found is not None:
            return found
        token = secrets.token_hex(16)
        lock_ms = max(1, int(self.wait_s * 1000))
        if self._client.set(lock_key, token, nx=True, px=lock_ms):
            try:
                frame = compute()
            except BaseException:
                self._release(lock_key, token)
                raise
            self._store(redis_key, ttl_s, frame, lock_key, token)
            return frame, ttl_s
        # Another worker is querying: wait for its answer, then query ourselves.
        deadline = time.monotonic() + self.wait_s  # real time: Redis's lock expires in it
        pause = 0.005
        while time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            found, locked = self._read(redis_key, lock_key)
            if found is not None:
                return found
            if not locked:  # it gave up (its query failed): no answer is coming
                break
        frame = compute()
        self._store(redis_key, ttl_s, frame)
        return frame, ttl_s

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
        ttl_s: float,
        frame: pd.DataFrame,
        lock_key: str | None = None,
        token: str | None = None,
    ) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.set(redis_key, seal(self._secret, redis_key, frame), px=max(1, int(ttl_s * 1000)))
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

    def close(self) -> None:
        self._client.close()


def make_query_cache(url: str | None, secret: bytes, *, prefix: str = DEFAULT_PREFIX) -> QueryCache:
    """``dashboard.cache_url``: None keeps one cache per process; ``redis://…`` shares it.
    Nothing connects here. The prefix gets a tag of the secret: dashboards of other sites
    on the same Redis (another secret) never meet our keys."""
    if url is None:
        return LocalCache()
    site = hmac.new(secret, b"cityops query cache prefix", hashlib.sha256).hexdigest()[:12]
    return RedisCache(url, f"{prefix}{site}:", secret)
