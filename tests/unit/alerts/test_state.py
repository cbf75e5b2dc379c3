"""The alert state machine as a table: (previous, result, elapsed, for_s) → (state, e-mail)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from alerts.evaluate import Result
from alerts.state import (
    AlertKey,
    AlertState,
    StateName,
    Transition,
    notification_for,
    transition,
)

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
KEY = AlertKey("pm25-bad", "20194")


def previous_state(name: StateName, *, episode_open: bool = False) -> AlertState:
    """A state entered at T0; ``episode_open``: a firing e-mail went out, no resolved yet."""
    return AlertState(
        KEY.rule_id,
        KEY.unit_code,
        name,
        since=T0,
        value=85.0,
        last_eval=T0,
        fired_at=T0 - timedelta(minutes=5) if episode_open else None,
        active_at=T0 - timedelta(minutes=6) if name != "ok" else None,
        episode=1 if episode_open or name == "resolved" else 0,
    )


BREACH = Result("breach", 92.4, T0)
OK = Result("ok", 41.0, T0)
NO_DATA = Result.no_data()
ERROR = Result.failed("store unreachable")

# (case, previous, result, elapsed since previous.since (s), for_s, expected state, e-mail)
TABLE: list[tuple[str, AlertState | None, Result, float, int, StateName, str | None]] = [
    ("new unit breaching waits for for_s", None, BREACH, 0, 60, "pending", None),
    ("new unit breaching, for_s 0 fires", None, BREACH, 0, 0, "firing", "firing"),
    ("new unit ok", None, OK, 0, 60, "ok", None),
    ("ok → pending", previous_state("ok"), BREACH, 10, 60, "pending", None),
    ("ok → firing when for_s is 0", previous_state("ok"), BREACH, 10, 0, "firing", "firing"),
    ("ok stays ok", previous_state("ok"), OK, 10, 60, "ok", None),
    ("pending before for_s", previous_state("pending"), BREACH, 59, 60, "pending", None),
    ("pending at for_s fires", previous_state("pending"), BREACH, 60, 60, "firing", "firing"),
    ("pending after for_s fires", previous_state("pending"), BREACH, 90, 60, "firing", "firing"),
    ("pending → ok, no e-mail", previous_state("pending"), OK, 30, 60, "ok", None),
    ("pending unit goes silent", previous_state("pending"), NO_DATA, 30, 60, "no_data", None),
    ("pending, store fails", previous_state("pending"), ERROR, 30, 60, "error", None),
    (
        "firing stays firing, no second e-mail",
        previous_state("firing", episode_open=True),
        BREACH,
        600,
        60,
        "firing",
        None,
    ),
    (
        "firing → resolved",
        previous_state("firing", episode_open=True),
        OK,
        600,
        60,
        "resolved",
        "resolved",
    ),
    (
        "firing unit goes silent: no resolved e-mail",
        previous_state("firing", episode_open=True),
        NO_DATA,
        10,
        60,
        "no_data",
        None,
    ),
    (
        "firing, store fails: no e-mail",
        previous_state("firing", episode_open=True),
        ERROR,
        10,
        60,
        "error",
        None,
    ),
    ("resolved → ok", previous_state("resolved"), OK, 10, 60, "ok", None),
    ("resolved → pending again", previous_state("resolved"), BREACH, 10, 60, "pending", None),
    (
        "resolved → firing again (for_s 0)",
        previous_state("resolved"),
        BREACH,
        10,
        0,
        "firing",
        "firing",
    ),
    ("resolved unit goes silent", previous_state("resolved"), NO_DATA, 10, 60, "ok", None),
    (
        "silent while firing, breaching again: same episode",
        previous_state("no_data", episode_open=True),
        BREACH,
        10,
        60,
        "firing",
        None,
    ),
    (
        "silent while firing, back under: resolved",
        previous_state("no_data", episode_open=True),
        OK,
        10,
        60,
        "resolved",
        "resolved",
    ),
    (
        "still silent",
        previous_state("no_data", episode_open=True),
        NO_DATA,
        10,
        60,
        "no_data",
        None,
    ),
    (
        "silent while pending, breaching again: for_s starts again",
        previous_state("no_data"),
        BREACH,
        120,
        60,
        "pending",
        None,
    ),
    ("silent while pending, back under", previous_state("no_data"), OK, 10, 60, "ok", None),
    (
        "store back while firing, breaching: same episode",
        previous_state("error", episode_open=True),
        BREACH,
        10,
        60,
        "firing",
        None,
    ),
    (
        "store back while firing, back under: resolved",
        previous_state("error", episode_open=True),
        OK,
        10,
        60,
        "resolved",
        "resolved",
    ),
    ("store back, ok", previous_state("error"), OK, 10, 60, "ok", None),
    ("store back, breach, for_s 0", previous_state("error"), BREACH, 10, 0, "firing", "firing"),
    ("ok, store fails", previous_state("ok"), ERROR, 10, 60, "error", None),
    ("ok unit goes silent", previous_state("ok"), NO_DATA, 10, 60, "ok", None),
]


@pytest.mark.parametrize(
    ("previous", "result", "elapsed", "for_s", "expected", "notify"),
    [pytest.param(*row[1:], id=row[0]) for row in TABLE],
)
def test_transition_table(
    previous: AlertState | None,
    result: Result,
    elapsed: float,
    for_s: int,
    expected: StateName,
    notify: str | None,
) -> None:
    now = T0 + timedelta(seconds=elapsed)
    moved = transition(previous, result, now, for_s, key=KEY)
    assert (moved.current.state, moved.notify) == (expected, notify)
    assert moved.previous is previous
    assert moved.current.last_eval == now
    assert moved.current.key == KEY


def run(results: list[tuple[float, Result]], for_s: int) -> list[Transition]:
    """Feed results at the given seconds after T0; return every transition."""
    state: AlertState | None = None
    moves = []
    for seconds, result in results:
        moved = transition(state, result, T0 + timedelta(seconds=seconds), for_s, key=KEY)
        moves.append(moved)
        state = moved.current
    return moves


def test_an_episode_sends_one_firing_and_one_resolved() -> None:
    moves = run(
        [(0, BREACH), (30, BREACH), (60, BREACH), (90, BREACH), (120, OK), (150, OK)], for_s=60
    )
    assert [m.current.state for m in moves] == [
        "pending",
        "pending",
        "firing",
        "firing",
        "resolved",
        "ok",
    ]
    assert [m.notify for m in moves] == [None, None, "firing", None, "resolved", None]
    firing, resolved = moves[2].current, moves[4].current
    # The breach is dated from when it was first seen, not from when for_s ran out.
    assert firing.active_at == T0
    assert firing.fired_at == T0 + timedelta(seconds=60)
    assert firing.since == T0 + timedelta(seconds=60)
    assert firing.episode == 1
    assert resolved.fired_at is None
    assert resolved.resolved_at == T0 + timedelta(seconds=120)
    assert resolved.episode == 1  # the resolved e-mail belongs to the same episode
    assert moves[5].current.active_at is None


def test_pending_keeps_its_start_while_breaching() -> None:
    moves = run([(0, BREACH), (20, BREACH), (40, replace(BREACH, value=99.0))], for_s=60)
    assert {m.current.since for m in moves} == {T0}
    assert moves[-1].current.value == 99.0


def test_each_new_episode_gets_the_next_number() -> None:
    moves = run([(0, BREACH), (10, OK), (20, OK), (30, BREACH), (40, OK), (50, BREACH)], for_s=0)
    fired = [m.current.episode for m in moves if m.notify == "firing"]
    assert fired == [1, 2, 3]
    assert [m.current.episode for m in moves if m.notify == "resolved"] == [1, 2]


def test_no_data_and_error_keep_the_episode_and_the_value() -> None:
    moves = run([(0, BREACH), (10, NO_DATA), (20, ERROR), (30, BREACH), (40, OK)], for_s=0)
    assert [m.current.state for m in moves] == ["firing", "no_data", "error", "firing", "resolved"]
    assert [m.notify for m in moves] == ["firing", None, None, None, "resolved"]
    silent, failed = moves[1].current, moves[2].current
    assert silent.fired_at == failed.fired_at == T0
    assert silent.value == failed.value == BREACH.value
    assert failed.error == "store unreachable"
    assert moves[3].current.error is None
    assert {m.current.episode for m in moves} == {1}


def test_notify_predicate_alone() -> None:
    firing = previous_state("firing", episode_open=True)
    assert notification_for(None, firing) == "firing"
    assert notification_for(previous_state("pending"), firing) == "firing"
    assert notification_for(firing, firing) is None
    resolved = previous_state("resolved")
    assert notification_for(firing, resolved) == "resolved"
    assert notification_for(resolved, resolved) is None
    assert notification_for(firing, previous_state("no_data", episode_open=True)) is None


def test_bad_calls_are_refused() -> None:
    with pytest.raises(ValueError, match="key"):
        transition(None, BREACH, T0, 60)
    with pytest.raises(ValueError, match="timezone-aware"):
        transition(None, BREACH, datetime(2026, 11, 2), 60, key=KEY)
    with pytest.raises(ValueError, match="for_s"):
        transition(None, BREACH, T0, -1, key=KEY)
