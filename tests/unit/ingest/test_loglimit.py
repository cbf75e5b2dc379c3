"""LimitedLog: a flood of events becomes a few lines and one summary per window."""

from __future__ import annotations

import logging

import pytest

from ingest.loglimit import LimitedLog


def test_at_most_limit_lines_per_window_then_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = LimitedLog(
        logging.getLogger("test.loglimit"), limit=2, window_s=10, what="dead letters",
        clock=lambda: now[0],
    )  # fmt: skip
    with caplog.at_level(logging.INFO, "test.loglimit"):
        for n in range(5):
            limited.info("bad message %d", n)
        assert limited.hidden == 3
        now[0] = 10.0
        limited.info("bad message %d", 5)
    assert [r.getMessage() for r in caplog.records] == [
        "bad message 0",
        "bad message 1",
        "... and 3 more dead letters in 10 s",
        "bad message 5",
    ]
