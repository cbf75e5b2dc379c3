"""Batcher (size / age), AckSequencer (in-order release) and Backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.types import Point
from ingest.batch import AckSequencer, Backoff, Batcher

T0 = datetime(2025, 11, 28, 3, 0, tzinfo=UTC)


def points(count: int, device: str = "aq-1") -> list[Point]:
    return [
        Point("air", {"device": device}, {"pm25": float(i)}, T0 + timedelta(seconds=i))
        for i in range(count)
    ]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_empty_batcher_is_never_due() -> None:
    batcher: Batcher[str] = Batcher(max_points=2, max_age_s=0.5)
    assert not batcher.due(at(1000))
    assert batcher.take() == ([], [])
    assert batcher.oldest_at() is None


def test_due_by_size() -> None:
    batcher: Batcher[str] = Batcher(max_points=3, max_age_s=60)
    batcher.add(points(1), "m1", at(0))
    batcher.add(points(1), "m2", at(0))
    assert not batcher.due(at(0))
    batcher.add(points(1), "m3", at(0))
    assert batcher.due(at(0))


def test_due_by_age_of_the_oldest() -> None:
    batcher: Batcher[str] = Batcher(max_points=100, max_age_s=0.5)
    batcher.add(points(1), "m1", at(0))
    batcher.add(points(1), "m2", at(0.4))
    assert not batcher.due(at(0.49))
    assert batcher.due(at(0.5))
    assert batcher.oldest_at() == at(0)


def test_take_returns_points_and_tokens_in_order_and_empties() -> None:
    batcher: Batcher[str] = Batcher(max_points=10, max_age_s=0.5)
    first, second = points(2, "a"), points(1, "b")
    batcher.add(first, "m1", at(0))
    batcher.add(second, "m2", at(0.1))
    assert batcher.take() == ([*first, *second], ["m1", "m2"])
    assert batcher.pending_points == 0
    assert batcher.pending_messages == 0
    assert not batcher.due(at(10))


def test_take_stops_at_max_points_and_keeps_whole_messages() -> None:
    batcher: Batcher[str] = Batcher(max_points=3, max_age_s=0.5)
    for index in range(4):
        batcher.add(points(1), f"m{index}", at(index))
    taken, tokens = batcher.take()
    assert tokens == ["m0", "m1", "m2"]
    assert len(taken) == 3
    assert batcher.pending_points == 1
    # The rest keeps its own age.
    assert batcher.oldest_at() == at(3)


def test_take_hands_out_a_message_larger_than_a_batch() -> None:
    batcher: Batcher[str] = Batcher(max_points=2, max_age_s=0.5)
    batcher.add(points(5), "big", at(0))
    batcher.add(points(1), "small", at(0))
    assert batcher.take()[1] == ["big"]
    assert batcher.take()[1] == ["small"]


def test_batcher_refuses_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="max_points"):
        Batcher[str](max_points=0, max_age_s=1)
    with pytest.raises(ValueError, match="max_age_s"):
        Batcher[str](max_points=1, max_age_s=0)


def test_sequencer_releases_in_arrival_order() -> None:
    sequencer: AckSequencer[int] = AckSequencer()
    for key in (1, 2, 3, 4):
        sequencer.received(key)
    assert len(sequencer) == 4
    # 2 and 3 (e.g. dead-lettered at once) wait for 1 (still in a batch).
    assert sequencer.done(3) == []
    assert sequencer.done(2) == []
    assert sequencer.done(1) == [1, 2, 3]
    assert len(sequencer) == 1
    assert sequencer.done(4) == [4]
    assert len(sequencer) == 0


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(first_s=0.25, cap_s=1.0)
    assert backoff.ready(at(0))
    delays = [backoff.failed(at(0)) for _ in range(5)]
    assert delays == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert backoff.failures == 5
    assert not backoff.ready(at(0.99))
    assert backoff.ready(at(1.0))
    backoff.succeeded()
    assert backoff.ready(at(0))
    assert backoff.failures == 0
    assert backoff.failed(at(0)) == 0.25


def test_backoff_survives_many_failures() -> None:
    backoff = Backoff(first_s=0.25, cap_s=30)
    for _ in range(200):
        delay = backoff.failed(at(0))
    assert delay == 30


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="first_s"):
        Backoff(first_s=2, cap_s=1)
