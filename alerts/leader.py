"""The evaluator lease: one active alert engine when several run (``alert_leases``).

Running two evaluators for safety must never double the e-mails, so only the holder of
the lease evaluates and dispatches. :meth:`Lease.acquire` takes the row when it is free
or expired, renews it when it is ours, and is atomic on SQLite and PostgreSQL with two
statements in one transaction: an INSERT … ON CONFLICT DO NOTHING (the first holder ever)
and an UPDATE whose WHERE names the only cases we may take it (ours, or expired). When two
race, the database serialises the writes and the second one's WHERE no longer matches.

Times come from the injected clock: hosts that share a lease need their clocks in step
(NTP), and ``ttl_s`` well above one round.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta

from sqlalchemy import Engine, case, delete, literal, select, update

from alerts.delivery_tables import alert_leases
from alerts.repository import insert_for, transaction
from core.clock import SystemClock
from core.db import UtcDateTime
from core.ports import Clock

EVALUATOR = "alerts.evaluator"


def default_holder() -> str:
    """``host:pid:random``: names this process in the lease row and in claimed e-mails."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """One named lease row. Database errors become RetryableError or PermanentError; a
    caller that cannot tell whether it holds the lease must act as if it does not."""

    def __init__(self, engine: Engine, name: str, holder: str, clock: Clock | None = None) -> None:
        if not name or not holder:
            raise ValueError("a lease needs a name and a holder")
        self._engine = engine
        self._name = name
        self._holder = holder
        self._clock: Clock = clock or SystemClock()
        self._insert = insert_for(engine)

    @property
    def holder(self) -> str:
        return self._holder

    def acquire(self, ttl_s: float) -> bool:
        """Hold the lease for ``ttl_s`` from now: True when it was free, expired or ours
        (renewed), False when someone else holds it."""
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0: {ttl_s}")
        now = self._clock.now()
        expires = now + timedelta(seconds=ttl_s)
        c = alert_leases.c
        with transaction(self._engine, f"take the lease {self._name}") as connection:
            created = connection.execute(
                self._insert(alert_leases)
                .values(name=self._name, holder=self._holder, acquired_at=now, expires_at=expires)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            if created.rowcount == 1:
                return True
            taken = connection.execute(
                update(alert_leases)
                .where(c.name == self._name, (c.holder == self._holder) | (c.expires_at <= now))
                .values(
                    acquired_at=case(
                        (c.holder == self._holder, c.acquired_at),
                        else_=literal(now, UtcDateTime()),
                    ),
                    holder=self._holder,
                    expires_at=expires,
                )
            )
            return taken.rowcount == 1

    def release(self) -> None:
        """Give the lease up now, if ours, so another evaluator need not wait for expiry."""
        c = alert_leases.c
        with transaction(self._engine, f"release the lease {self._name}") as connection:
            connection.execute(
                delete(alert_leases).where(c.name == self._name, c.holder == self._holder)
            )

    def current(self) -> tuple[str, datetime] | None:
        """(holder, expires_at) while someone holds the lease, else None."""
        c = alert_leases.c
        with transaction(self._engine, f"read the lease {self._name}") as connection:
            row = connection.execute(
                select(c.holder, c.expires_at).where(
                    c.name == self._name, c.expires_at > self._clock.now()
                )
            ).one_or_none()
        return None if row is None else (row.holder, row.expires_at)
