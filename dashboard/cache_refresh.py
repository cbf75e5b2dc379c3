"""Background refreshes for the query cache (:mod:`dashboard.cache`): stale answers are
replaced off the callback's thread, one refresh per key at a time, on a small pool."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from functools import partial

log = logging.getLogger("cityops.dashboard.cache")

MonotonicClock = Callable[[], float]

LOG_EVERY_S = 60.0
REFRESH_THREADS = 2  # the machine's cores serve the callbacks first
REFRESH_PENDING = 64  # keys being refreshed or waiting for a thread, at most


class EveryMinute:
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


class Refresher:
    """Background refreshes of stale answers: at most one per key at a time, on a pool of
    ``threads``; at most ``pending`` keys running or waiting (past that a refresh is not
    started: the stale answer is served and the next call asks again). A failed refresh is
    a warning at most once a minute, without traceback: the store being down is an outage,
    and the callbacks say so when the stale answers run out. ``executor``: tests."""

    def __init__(
        self,
        threads: int = REFRESH_THREADS,
        *,
        pending: int = REFRESH_PENDING,
        executor: Executor | None = None,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self.pending = pending
        # Threads start on the first refresh, not here.
        self._executor = executor or ThreadPoolExecutor(threads, "query-refresh")
        self._keys: set[Hashable] = set()
        self._futures: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._warn = EveryMinute(clock)

    def start(self, key: Hashable, job: Callable[[], None]) -> bool:
        """Runs ``job`` in the background unless ``key`` is being refreshed already (or
        too many are); whether it was started."""
        with self._lock:
            if key in self._keys or len(self._keys) >= self.pending:
                return False
            self._keys.add(key)
        try:
            future = self._executor.submit(self._run, key, job)
        except RuntimeError:  # shut down: the stale answer is served, as when too busy
            self._finished(key, None)
            return False
        with self._lock:
            self._futures.add(future)
        # Also when cancelled (close): the key is free again either way.
        future.add_done_callback(partial(self._finished, key))
        return True

    def _run(self, key: Hashable, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as exc:
            self._warn.warning(
                "refresh",
                "query cache: refreshing %.120r failed, serving the previous answer until "
                "its grace ends (further failures within a minute not logged): %s",
                key,
                exc,
            )

    def _finished(self, key: Hashable, future: Future[None] | None) -> None:
        with self._lock:
            self._keys.discard(key)
            if future is not None:
                self._futures.discard(future)

    def busy(self) -> bool:
        with self._lock:
            return bool(self._keys)

    def wait_idle(self, timeout_s: float) -> bool:
        """Waits until no refresh runs or waits (True), at most ``timeout_s`` (False)."""
        deadline = time.monotonic() + timeout_s
        while self.busy():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._lock:
                futures = list(self._futures)
            wait(futures, timeout=min(left, 0.05)) if futures else time.sleep(0.005)
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
