"""The alert state machine: one state per (rule, unit), moved by each evaluation. Pure.

Modelled on Grafana's ngalert ``state.go``: one handler per result kind, time injected
(``now``), and whether to e-mail decided by a separate predicate
(:func:`notification_for`)::

    ok ──breach (for_s > 0)──► pending ──breach, for_s elapsed──► firing ──ok──► resolved ──ok──► ok
     └──breach (for_s == 0)─────────────────────────────────────────┘  ▲            │
                pending ──ok──► ok (no e-mail)                         └──breach────┘ (new episode)

    pending/firing ──unit absent from the store's answer──► no_data
    any ──store failed──► error (everything else kept, no e-mail)

No data does **not** resolve: a silent sensor says nothing about the air, so a firing
episode stays open through ``no_data`` (and ``error``). When values come back, a breach
continues the same episode without a new e-mail and an ok value resolves it with one.
A pending breach interrupted by no data or an error starts its ``for_s`` again: the
breach was not seen to last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from alerts.evaluate import Result

StateName = Literal["ok", "pending", "firing", "resolved", "no_data", "error"]
STATE_NAMES: tuple[StateName, ...] = ("ok", "pending", "firing", "resolved", "no_data", "error")
NotifyKind = Literal["firing", "resolved"]


class AlertKey(NamedTuple):
    rule_id: str
    unit_code: str


@dataclass(frozen=True, slots=True)
class AlertState:
    """Where one rule stands for one unit."""

    rule_id: str
    unit_code: str
    state: StateName
    since: datetime  # when ``state`` was entered
    value: float | None  # the latest value seen; kept through no_data and error
    last_eval: datetime
    fired_at: datetime | None = None  # set while a firing episode is open (not yet resolved)
    active_at: datetime | None = None  # when the current (or just resolved) breach was first seen
    resolved_at: datetime | None = None
    episode: int = 0  # firing episodes so far; with the key, names each e-mail once
    error: str | None = None

    @property
    def key(self) -> AlertKey:
        return AlertKey(self.rule_id, self.unit_code)

    @property
    def episode_open(self) -> bool:
        """A firing e-mail went out (or is due) and no resolved one yet."""
        return self.fired_at is not None


@dataclass(frozen=True, slots=True)
class Transition:
    previous: AlertState | None
    current: AlertState
    notify: NotifyKind | None

    @property
    def changed(self) -> bool:
        return self.previous is None or self.previous.state != self.current.state


def notification_for(previous: AlertState | None, current: AlertState) -> NotifyKind | None:
    """The e-mail a move from ``previous`` to ``current`` calls for: one "firing" when an
    episode opens, one "resolved" when it closes, nothing otherwise."""
    if current.state == "firing" and (previous is None or not previous.episode_open):
        return "firing"
    if current.state == "resolved" and previous is not None and previous.state != "resolved":
        return "resolved"
    return None


def transition(
    previous: AlertState | None,
    result: Result,
    now: datetime,
    for_s: float,
    *,
    key: AlertKey | None = None,
) -> Transition:
    """Apply one evaluation result. ``key`` names the alert when there is no previous state."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware: {now!r}")
    if for_s < 0:
        raise ValueError(f"for_s must be >= 0: {for_s}")
    start = previous if previous is not None else _initial(key, now)
    handler = _HANDLERS[result.kind]
    current = replace(handler(start, result, now, timedelta(seconds=for_s)), last_eval=now)
    return Transition(previous, current, notification_for(previous, current))


def _initial(key: AlertKey | None, now: datetime) -> AlertState:
    if key is None:
        raise ValueError("transition() needs key=AlertKey(rule_id, unit_code) without a previous")
    return AlertState(key.rule_id, key.unit_code, "ok", since=now, value=None, last_eval=now)


def _enter(state: AlertState, name: StateName, now: datetime) -> AlertState:
    """Move to ``name``; ``since`` restarts only when the state really changes."""
    since = state.since if state.state == name else now
    return replace(state, state=name, since=since, error=None)


def _on_breach(state: AlertState, result: Result, now: datetime, hold: timedelta) -> AlertState:
    if state.state == "firing" or state.episode_open:
        # Still breaching, or back from no_data/error inside an open episode: no new e-mail.
        return replace(_enter(state, "firing", now), value=result.value)
    if state.state == "pending":
        if now - state.since >= hold:
            return _fire(state, result, now)
        return replace(state, value=result.value)
    # ok, resolved, or no_data/error with no open episode: a new breach starts.
    started = replace(state, active_at=now, resolved_at=None)
    if hold <= timedelta(0):
        return _fire(started, result, now)
    return replace(_enter(started, "pending", now), value=result.value)


def _fire(state: AlertState, result: Result, now: datetime) -> AlertState:
    return replace(
        _enter(state, "firing", now),
        value=result.value,
        fired_at=now,
        active_at=state.active_at or now,
        episode=state.episode + 1,
    )


def _on_ok(state: AlertState, result: Result, now: datetime, hold: timedelta) -> AlertState:
    if state.episode_open:
        return replace(
            _enter(state, "resolved", now), value=result.value, fired_at=None, resolved_at=now
        )
    # pending (no e-mail), resolved (the next ok), no_data/error without an open episode.
    return replace(_enter(state, "ok", now), value=result.value, active_at=None)


def _on_no_data(state: AlertState, result: Result, now: datetime, hold: timedelta) -> AlertState:
    if state.episode_open or state.state in ("pending", "no_data"):
        return _enter(state, "no_data", now)
    # ok or resolved with nothing to report: nothing is wrong that we know of.
    return replace(_enter(state, "ok", now), active_at=None)


def _on_error(state: AlertState, result: Result, now: datetime, hold: timedelta) -> AlertState:
    # Everything but the state name is kept, so the episode survives a store outage.
    return replace(_enter(state, "error", now), error=result.error)


_Handler = Callable[[AlertState, Result, datetime, timedelta], AlertState]
_HANDLERS: dict[str, _Handler] = {
    "breach": _on_breach,
    "ok": _on_ok,
    "no_data": _on_no_data,
    "error": _on_error,
}
