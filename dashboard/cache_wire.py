"""What the query cache puts in Redis: stable key digests and sealed values, and the
client that talks to it (:class:`dashboard.cache.RedisCache` uses them).

A value is a pickled DataFrame behind an HMAC-SHA256 over the Redis key and the bytes (a
key derived from the dashboard's secret): a Redis shared with others can make us
recompute, never unpickle bytes we did not write, nor serve one key's answer for another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import pickle
from collections.abc import Hashable, Mapping
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

import pandas as pd
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_SEAL_VERSION = b"cq1"
_MAC_BYTES = 32


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
