"""Frozen value types that cross package boundaries.

Every timestamp is a timezone-aware ``datetime`` in UTC; conversion to local time
(Asia/Ho_Chi_Minh) happens only at the edges that show time to a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

# The unit code, at every hierarchy level, of a device that cannot be placed (not
# registered and no position, or outside the map). Real unit codes are digits only
# (layers/levels.py refuses anything else), so this can never name a real unit.
UNASSIGNED = "unassigned"

Aggregation = Literal["mean", "max", "min", "sum", "last"]
AGGREGATIONS: tuple[Aggregation, ...] = ("mean", "max", "min", "sum", "last")


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded MQTT message: what a device said, before it is placed on the map."""

    kind: str  # data kind = measurement, e.g. "air", "water"
    device_id: str
    ts: datetime
    values: Mapping[str, float]
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class Point:
    """One row for the time-series store (InfluxDB's point model).

    ``tags`` holds ``device`` and the code of every hierarchy level of the device's
    unit, e.g. ``{"device": "aq-0001", "province": "48", "commune": "20194"}``.
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, float]
    ts: datetime


@dataclass(frozen=True, slots=True)
class MetricRef:
    """Where a catalogue metric lives in the store: measurement + field."""

    measurement: str
    field: str


@dataclass(frozen=True, slots=True)
class UnitRef:
    """An administrative unit, identified by its level name and official code."""

    level: str
    code: str


@dataclass(frozen=True, slots=True)
class UnitValue:
    """The latest value of a metric for one unit, rolled up from its devices."""

    code: str
    value: float
    ts: datetime  # the newest device timestamp that went into ``value``
    devices: int  # how many devices reported within the window


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One bucket of a time series; ``ts`` is the bucket start."""

    ts: datetime
    value: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be ingested, kept with the reason."""

    received_at: datetime
    topic: str
    payload: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to an e-mail, e.g. the weekly review's PDF."""

    filename: str
    content_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True, slots=True)
class Notification:
    """An e-mail ready to send. ``reason`` is first, repeat, escalation or resolved.
    ``images``: inline PNGs of the HTML part, by Content-ID without the angle brackets
    (the HTML shows one with ``src="cid:<content id>"``). ``attachments``: files after
    the body (the message becomes multipart/mixed)."""

    recipients: tuple[str, ...]
    subject: str
    body_text: str
    body_html: str | None = None
    reason: str = "first"
    headers: Mapping[str, str] = field(default_factory=dict)
    images: Mapping[str, bytes] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
