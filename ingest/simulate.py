"""Readings of the demo's devices (ingest/demo_devices.py) and a simulator that publishes
them over MQTT like real devices would.

Readings are a pure function of (device, time, random generator, scenario), so the demo's
history, the live simulator and the tests all draw from the same model. When a ``format: gov``
contract is configured, the simulator also publishes the communes' public-service counters
(ingest/gov_simulate.py) in office hours.
Nothing connects at import: the paho client comes from a factory.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from core.clock import LOCAL_TZ, SystemClock
from core.errors import RetryableError
from core.ports import Clock
from core.settings import LevelSettings, Settings
from ingest.demo_devices import (
    ALARM_LEVELS_M,
    FIELDS_BY_KIND,
    STATIONS_BY_ID,
    URBAN_UNIT_TYPES,
    WaterStation,
)
from ingest.fastmqtt import use_broker_settings
from ingest.gov_simulate import GovSchedule
from layers.registry import Device

log = logging.getLogger("cityops.simulate")

EPISODE_EVERY = timedelta(hours=1)
EPISODE_LASTS = timedelta(minutes=10)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CONNECT_TIMEOUT_S = 10.0
FLUSH_TIMEOUT_S = 10.0
MAX_QUEUED_MESSAGES = 10_000  # while the broker is away; beyond this readings are dropped


# ----------------------------------------------------------------------------- readings

URBAN_PM25 = 30.0  # µg/m³, daily mean level of an urban ward
RURAL_PM25 = 15.0
PM25_FLOOR = 1.0  # clean sea air still carries some fine dust; never zero or negative
EPISODE_PM25 = 140.0  # "Xấu"/"Rất xấu" on VN_AQI: well above the 80 µg/m³ alert rule
EPISODE_MIN_PM25 = 105.0
TIDE_PERIOD_H = 12.42  # the principal lunar semi-diurnal tide (M2)
SIMULATED_KINDS = tuple(FIELDS_BY_KIND)


@functools.lru_cache(maxsize=4)
def _urban_units(units_file: Path, levels: tuple[LevelSettings, ...]) -> frozenset[str]:
    from layers.levels import Hierarchy

    hierarchy = Hierarchy.from_csv(levels, units_file)
    lowest = hierarchy.levels[-1]
    return frozenset(
        unit.code for unit in hierarchy.units_at(lowest) if unit.unit_type in URBAN_UNIT_TYPES
    )


@dataclass(frozen=True, slots=True)
class Scenario:
    """What the reading model needs besides the device: which units are urban, and where and
    from when the pollution episode runs (10 minutes from ``episode_anchor``, then again
    every hour; with no anchor, the first 10 minutes of every hour)."""

    urban_units: frozenset[str] = frozenset()
    episode_unit: str | None = None
    episode_anchor: datetime | None = None
    timezone: ZoneInfo = LOCAL_TZ

    @classmethod
    def from_settings(
        cls, settings: Settings, *, episode_anchor: datetime | None = None
    ) -> Scenario:
        units_file = settings.path(settings.hierarchy.units_file)
        return cls(
            urban_units=_urban_units(units_file, tuple(settings.hierarchy.levels)),
            episode_unit=settings.simulator.episode_commune,
            episode_anchor=episode_anchor,
            timezone=ZoneInfo(settings.site.timezone),
        )

    def is_urban(self, device: Device) -> bool:
        return device.unit_code in self.urban_units

    def episode_active(self, device: Device, at: datetime) -> bool:
        if self.episode_unit is None or self.episode_unit not in device.tags.values():
            return False
        elapsed = at - (self.episode_anchor or EPOCH)
        return elapsed >= timedelta(0) and elapsed % EPISODE_EVERY < EPISODE_LASTS


def epoch_ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


def _stable_fraction(device: Device, purpose: str) -> float:
    """A per-device number in [0, 1) that stays the same across runs and processes."""
    return zlib.crc32(f"{purpose}:{device.device_id}".encode()) / 2**32


def _bump(hour: float, center: float, width: float) -> float:
    distance = abs(hour - center) % 24
    distance = min(distance, 24 - distance)
    return math.exp(-0.5 * (distance / width) ** 2)


def traffic_factor(local_hour: float) -> float:
    """Daily rhythm of street dust: rush hours ~7-9 h and ~17-19 h, cleanest ~3-5 h."""
    return (
        0.85
        + 0.75 * _bump(local_hour, 8.0, 1.3)
        + 0.65 * _bump(local_hour, 18.0, 1.5)
        - 0.40 * _bump(local_hour, 4.0, 1.6)
    )


def _air(device: Device, at: datetime, rng: random.Random, scenario: Scenario) -> dict[str, float]:
    if scenario.episode_active(device, at):
        level = EPISODE_PM25 * (0.9 + 0.25 * _stable_fraction(device, "episode"))
        pm25 = max(EPISODE_MIN_PM25, level + rng.gauss(0, 8.0))
    else:
        local = at.astimezone(scenario.timezone)
        hour = local.hour + local.minute / 60 + local.second / 3600
        base = URBAN_PM25 if scenario.is_urban(device) else RURAL_PM25
        scale = 0.8 + 0.4 * _stable_fraction(device, "scale")
        offset = 6.0 * _stable_fraction(device, "offset") - 3.0
        mean = base * traffic_factor(hour) * scale + offset
        pm25 = max(PM25_FLOOR, mean + rng.gauss(0, 0.08 * abs(mean)))
    # Coarse dust comes with fine dust; PM10 includes PM2.5, so it is never the smaller one.
    pm10 = max(pm25, pm25 * rng.uniform(1.5, 2.0) + rng.gauss(0, 2.0))
    return {"pm25": round(pm25, 1), "pm10": round(pm10, 1)}


def _water(device: Device, at: datetime, rng: random.Random) -> dict[str, float]:
    base = 1.0 + 2.0 * _stable_fraction(device, "base")  # a gauge the table does not know
    station = STATIONS_BY_ID.get(device.device_id) or WaterStation(
        device.device_id, device.name, "", device.lon, device.lat, base, 0.2, 0.05
    )
    hours = (at - EPOCH) / timedelta(hours=1)
    phase = (
        2 * math.pi * _stable_fraction(device, "phase")
    )  # the tide reaches gauges at different times
    tide = station.tide_m * math.sin(2 * math.pi * hours / TIDE_PERIOD_H + phase)
    daily = station.daily_m * math.sin(2 * math.pi * hours / 24 + phase)
    level = round(station.base_level_m + tide + daily + rng.gauss(0, 0.01), 3)
    levels = ALARM_LEVELS_M.get(device.device_id, (None, None, None))
    return {"level": level, "alarm": float(alarm_level(level, levels))}


def alarm_level(level_m: float, alarm_levels_m: tuple[float | None, ...]) -> int:
    """0 below alarm I, else the highest alarm level (1-3) whose stage is reached.

    The gauge's controller knows its station's levels (each station has its own datum, so
    stages of different stations cannot share one colour scale); unknown levels are skipped."""
    reached = [
        index
        for index, limit in enumerate(alarm_levels_m, start=1)
        if limit is not None and level_m >= limit
    ]
    return max(reached, default=0)


def reading_for(
    device: Device,
    at: datetime,
    rng: random.Random,
    *,
    scenario: Scenario | None = None,
    settings: Settings | None = None,
) -> dict[str, float | int]:
    """The JSON payload ``device`` publishes at ``at`` (aware): ``ts`` in epoch milliseconds,
    then the catalogue's fields for its kind. ``scenario`` defaults to the one ``settings``
    describe (urban units from the hierarchy file, episodes on the hour)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"reading_for needs an aware datetime, got {at!r}")
    if scenario is None:
        scenario = Scenario.from_settings(settings) if settings is not None else Scenario()
    payload: dict[str, float | int] = {"ts": epoch_ms(at)}
    if device.kind == "air":
        payload.update(_air(device, at, rng, scenario))
    elif device.kind == "water":
        payload.update(_water(device, at, rng))
    else:
        raise ValueError(f"no reading model for kind {device.kind!r} (device {device.device_id})")
    return payload


def topic_for(device: Device) -> str:
    return f"city/{device.kind}/{device.device_id}"


# ----------------------------------------------------------------------------- publishing

PublisherFactory = Callable[[Settings], mqtt.Client]


def make_publisher(settings: Settings, client_id: str | None = None) -> mqtt.Client:
    """The production client. MQTT 3.1.1: Mosquitto, EMQX and the embedded amqtt (no MQTT 5)
    all speak it, and publishing needs nothing MQTT 5 adds. A clean session is enough: paho
    itself re-sends unacknowledged QoS 1 messages after a reconnect."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or settings.simulator.client_id,
        protocol=MQTTProtocolVersion.MQTTv311,
        clean_session=True,
    )
    use_broker_settings(client, settings)
    client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
    client.reconnect_delay_set(1, 30)
    return client


@dataclass(frozen=True, slots=True)
class SimulatorStats:
    rounds: int  # complete rounds (every device published once)
    published: int  # handed to the client: sent, or queued while the broker is away
    acknowledged: int  # PUBACK received
    dropped: int  # refused because the client's queue was full


class Simulator:
    """Publishes a reading of every device every ``settings.simulator.interval_s`` (QoS 1,
    topic ``city/<kind>/<device_id>``), devices spread evenly over the interval; with a
    ``format: gov`` contract, at the end of the first round a minute (GovSchedule) after
    the last, the counters of every commune since then (topic of the contract, e.g.
    ``gov/dossiers/<code>``; none outside office hours, none all zero).
    ``clock`` stamps the readings; pacing uses the monotonic clock."""

    def __init__(
        self,
        settings: Settings,
        devices: Sequence[Device],
        *,
        client_factory: PublisherFactory = make_publisher,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self.devices = [device for device in devices if device.kind in SIMULATED_KINDS]
        skipped = sorted({d.kind for d in devices if d.kind not in SIMULATED_KINDS})
        if skipped:
            log.warning("no reading model for kinds %s: those devices are not simulated", skipped)
        self._client_factory = client_factory
        self._clock: Clock = clock or SystemClock()
        self._rng = random.Random(settings.simulator.seed)
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._refusal: str | None = None
        self._rounds = self._published = self._acknowledged = self._dropped = 0
        self._gov = GovSchedule.from_settings(settings)

    @property
    def stats(self) -> SimulatorStats:
        with self._lock:
            return SimulatorStats(self._rounds, self._published, self._acknowledged, self._dropped)

    def run(self, stop_event: threading.Event, *, max_rounds: int | None = None) -> SimulatorStats:
        """Publish until ``stop_event`` is set or ``max_rounds`` rounds are done, then wait
        (bounded) for the broker to acknowledge what was sent and disconnect.
        Raises RetryableError when the broker cannot be reached."""
        scenario = Scenario.from_settings(self._settings, episode_anchor=self._clock.now())
        if self._gov is not None:
            self._gov.start(self._clock.now())
        client = self._connect()
        try:
            published_before = self.stats.published
            acknowledged_before = self.stats.acknowledged
            self._publish_rounds(client, scenario, stop_event, max_rounds)
            self._wait_for_acks(client, published_before, acknowledged_before)
        finally:
            client.disconnect()
            client.loop_stop()
        stats = self.stats
        log.info("simulator stopped: %s", stats)
        return stats

    def _connect(self) -> mqtt.Client:
        broker = self._settings.broker
        where = f"{broker.host}:{broker.port}"
        self._connected.clear()
        self._refusal = None
        client = self._client_factory(self._settings)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        try:
            client.connect(broker.host, broker.port, keepalive=broker.keepalive_s)
        except OSError as exc:
            raise RetryableError(
                f"simulator cannot reach the MQTT broker at {where}: {exc}"
            ) from exc
        client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S) or self._refusal is not None:
            client.disconnect()
            client.loop_stop()
            why = self._refusal or f"no answer within {CONNECT_TIMEOUT_S:g} s"
            raise RetryableError(f"MQTT broker at {where} did not accept the simulator: {why}")
        log.info("simulator connected to %s, %d devices", where, len(self.devices))
        return client

    def _publish_rounds(
        self,
        client: mqtt.Client,
        scenario: Scenario,
        stop_event: threading.Event,
        max_rounds: int | None,
    ) -> None:
        interval = self._settings.simulator.interval_s
        count = max(len(self.devices), 1)
        start = time.monotonic()
        round_index = 0
        while max_rounds is None or round_index < max_rounds:
            round_start = start + round_index * interval
            if time.monotonic() > round_start + interval:  # asleep or overloaded: no burst
                start = time.monotonic() - round_index * interval
                round_start = start + round_index * interval
            for position, device in enumerate(self.devices):
                if not _wait_until(round_start + position * interval / count, stop_event):
                    return
                self._publish_one(client, device, scenario)
            self._publish_gov(client)
            with self._lock:
                self._rounds += 1
            round_index += 1
            if not self.devices and not _wait_until(round_start + interval, stop_event):
                return

    def _publish_one(self, client: mqtt.Client, device: Device, scenario: Scenario) -> None:
        payload = reading_for(device, self._clock.now(), self._rng, scenario=scenario)
        self._send(client, topic_for(device), payload)

    def _publish_gov(self, client: mqtt.Client) -> None:
        for topic, payload in self._gov.due(self._clock.now()) if self._gov else ():
            self._send(client, topic, payload)

    def _send(self, client: mqtt.Client, topic: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":"))
        info = client.publish(topic, body, qos=1)
        with self._lock:
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                self._dropped += 1
                dropped = self._dropped
            else:  # sent, or queued by paho until the broker is back (MQTT_ERR_NO_CONN)
                self._published += 1
                dropped = 0
        if dropped and dropped % 1000 == 1:
            log.warning(
                "broker away and %d readings queued: %d dropped", MAX_QUEUED_MESSAGES, dropped
            )

    def _wait_for_acks(self, client: mqtt.Client, published_before: int, acked_before: int) -> None:
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        while time.monotonic() < deadline:
            stats = self.stats
            if stats.acknowledged - acked_before >= stats.published - published_before:
                return
            time.sleep(0.02)
        log.warning(
            "simulator: broker did not acknowledge every reading within %g s", FLUSH_TIMEOUT_S
        )

    # paho callbacks run on paho's network thread; they only record and never raise.

    def _on_connect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            self._refusal = str(reason)
        self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("simulator lost the MQTT broker (%s); paho reconnects", reason)

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, _reason: ReasonCode, _props: Any
    ) -> None:
        with self._lock:
            self._acknowledged += 1


def _wait_until(deadline: float, stop_event: threading.Event) -> bool:
    """Sleep until the monotonic ``deadline``; False as soon as ``stop_event`` is set."""
    delay = deadline - time.monotonic()
    if delay > 0:
        return not stop_event.wait(delay)
    return not stop_event.is_set()
