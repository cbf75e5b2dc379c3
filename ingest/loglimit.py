"""A log line per event, but at most ``limit`` per window and then one summary: a flood of
bad messages must not turn into a flood of log lines that slows the valid stream."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class LimitedLog:
    """Logs ``limit`` events per ``window_s`` at INFO; the rest are counted and summed up
    in one line when the next window starts."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        limit: int = 10,
        window_s: float = 10.0,
        what: str = "events",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._limit = limit
        self._window_s = window_s
        self._what = what
        self._clock = clock
        self._window_start = clock()
        self._logged = 0
        self.hidden = 0  # in the current window

    def info(self, message: str, *args: object) -> None:
        now = self._clock()
        if now - self._window_start >= self._window_s:
            if self.hidden:
                self._logger.info(
                    "... and %d more %s in %.0f s", self.hidden, self._what, self._window_s
                )
            self._window_start, self._logged, self.hidden = now, 0, 0
        if self._logged < self._limit:
            self._logged += 1
            self._logger.info(message, *args)
        else:
            self.hidden += 1
