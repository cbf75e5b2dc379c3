"""The demo device set (placement on the shipped Đà Nẵng boundaries) and the reading model."""

from __future__ import annotations

import json
import random
import statistics
import threading
import unicodedata
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from core.settings import DevicesSettings, Settings, load_settings, parse_settings
from ingest.decode import decode
from ingest.demo_devices import (
    ALARM_LEVELS_M,
    FIELDS_BY_KIND,
    WATER_STATIONS,
    WaterStation,
    ensure_registry,
    make_demo_devices,
    place_station,
)
from ingest.gov_simulate import SERVICES, gov_units
from ingest.simulate import (
    Scenario,
    Simulator,
    alarm_level,
    epoch_ms,
    reading_for,
    topic_for,
    traffic_factor,
)
from layers.geography import Geography
from layers.registry import Device
from tests.fixtures.geodata import three_level_raw

REPO = Path(__file__).resolve().parents[3]
HOANG_SA = "20333"
EPISODE_UNIT = "20194"  # Phường Hải Vân, as in config.yaml
ANCHOR = datetime(2026, 3, 2, 1, 7, tzinfo=UTC)  # a simulator start, 08:07 local
LOCAL = timedelta(hours=7)  # Asia/Ho_Chi_Minh has no daylight saving
NOT_FROM_SENSORS = {*SERVICES, "aqi"}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ={})


@pytest.fixture(scope="module")
def danang(settings: Settings) -> Geography:
    return Geography.from_settings(settings)


@pytest.fixture(scope="module")
def devices(danang: Geography) -> list[Device]:
    return make_demo_devices(danang, air_devices=150, water_stations=True, seed=2025)


@pytest.fixture(scope="module")
def scenario(settings: Settings) -> Scenario:
    return Scenario.from_settings(settings, episode_anchor=ANCHOR)


def air(devices: list[Device]) -> list[Device]:
    return [device for device in devices if device.kind == "air"]


def local_time(day: int, hour: float) -> datetime:
    """UTC instant of ``hour`` o'clock local time, ``day`` days after 1 January 2026."""
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day, hours=hour) - LOCAL


def mean_pm25(device: Device, times: list[datetime], scenario: Scenario, seed: int = 1) -> float:
    rng = random.Random(seed)
    return statistics.fmean(
        float(reading_for(device, at, rng, scenario=scenario)["pm25"]) for at in times
    )


# ----------------------------------------------------------------------------- placement


def test_the_demo_set_has_the_configured_sensors_and_the_six_river_gauges(
    devices: list[Device],
) -> None:
    air_ids = [device.device_id for device in air(devices)]
    assert air_ids == [f"aq-{number:04d}" for number in range(1, 151)]
    water = [device for device in devices if device.kind == "water"]
    assert [device.device_id for device in water] == [s.device_id for s in WATER_STATIONS]
    assert len({device.device_id for device in devices}) == len(devices) == 156


def test_every_device_lies_in_the_da_nang_commune_it_is_tagged_with(
    devices: list[Device], danang: Geography
) -> None:
    located = danang.locator().locate_many(
        [device.lon for device in devices], [device.lat for device in devices]
    )
    assert located == [device.unit_code for device in devices]
    for device in devices:
        assert device.unit_code is not None
        assert dict(device.tags) == {"province": "48", "commune": device.unit_code}
        assert danang.hierarchy.unit(device.unit_code).parent_code == "48"


def test_every_commune_but_hoang_sa_gets_a_sensor(devices: list[Device], danang: Geography) -> None:
    communes = set(danang.boundaries("commune")["code"])
    covered = {device.unit_code for device in air(devices)}
    assert covered == communes - {HOANG_SA}
    assert HOANG_SA not in {device.unit_code for device in devices}


def test_urban_wards_get_more_sensors_per_km2_than_rural_communes(
    devices: list[Device], danang: Geography
) -> None:
    frame = danang.boundaries("commune").to_crs(32649)  # UTM 49N: metres
    area_km2 = dict(zip(frame["code"], frame.geometry.area / 1e6, strict=True))
    per_unit = Counter(device.unit_code for device in air(devices))
    totals = {"Phường": [0, 0.0], "Xã": [0, 0.0]}
    for code, area in area_km2.items():
        kind = danang.hierarchy.unit(code).unit_type
        if kind in totals:
            totals[kind][0] += per_unit[code]
            totals[kind][1] += area
    urban_density = totals["Phường"][0] / totals["Phường"][1]
    rural_density = totals["Xã"][0] / totals["Xã"][1]
    assert urban_density > 4 * rural_density  # area alone (one per commune) gives ~2


def test_fewer_sensors_than_communes_go_to_distinct_communes(danang: Geography) -> None:
    few = make_demo_devices(danang, air_devices=20, water_stations=False, seed=3)
    assert len(few) == 20
    assert len({device.unit_code for device in few}) == 20
    assert HOANG_SA not in {device.unit_code for device in few}


def test_placement_is_deterministic_for_a_seed(devices: list[Device], danang: Geography) -> None:
    again = make_demo_devices(danang, air_devices=150, water_stations=True, seed=2025)
    assert again == devices
    other = make_demo_devices(danang, air_devices=150, water_stations=True, seed=2026)
    assert [(d.lon, d.lat) for d in air(other)] != [(d.lon, d.lat) for d in air(devices)]


def test_names_are_vietnamese_nfc_and_name_the_unit(
    devices: list[Device], danang: Geography
) -> None:
    for device in devices:
        assert unicodedata.is_normalized("NFC", device.name)
    first = air(devices)[0]
    full_name = danang.hierarchy.unit(first.unit_code or "").full_name
    assert first.name == f"Trạm quan trắc không khí {full_name} 1"
    gauges = {device.device_id: device for device in devices if device.kind == "water"}
    assert gauges["wl-camle"].name == "Trạm thủy văn Cẩm Lệ (sông Hàn)"


@pytest.mark.parametrize(
    ("device_id", "commune"),
    [("wl-camle", "20260"), ("wl-hoian", "20410"), ("wl-nongson", "20669")],
)
def test_river_gauges_sit_in_their_communes(
    devices: list[Device], device_id: str, commune: str
) -> None:
    gauge = next(device for device in devices if device.device_id == device_id)
    assert gauge.unit_code == commune


def test_a_gauge_just_outside_every_unit_is_moved_inside_and_a_far_one_is_left_out() -> None:
    three_level = Geography.from_settings(
        parse_settings(
            three_level_raw(map_level="district"),
            environ={},
            base_dir=REPO,
        )
    )
    # 0.005° east of the last 0.01° square (20242, 108.13-108.14 E): on the river bank.
    near = WaterStation("wl-bank", "Bờ", "sông", 108.145, 16.005, 1.0, 0.1, 0.0)
    moved = place_station(near, three_level)
    assert moved is not None
    assert moved.unit_code == "20242"
    assert dict(moved.tags) == {"province": "48", "district": "492", "commune": "20242"}
    assert 108.13 < moved.lon <= 108.14
    far = WaterStation("wl-far", "Xa", "sông", 108.30, 16.005, 1.0, 0.1, 0.0)
    assert place_station(far, three_level) is None
    # On a map level above the communes, sensors still land in (and are tagged by) communes.
    placed = make_demo_devices(three_level, air_devices=6, water_stations=True, seed=1)
    assert [device.kind for device in placed] == ["air"] * 6  # the real gauges are far away
    assert {device.tags["district"] for device in placed} == {"490", "492"}
    assert all(device.unit_code in {"20194", "20197", "20236", "20242"} for device in placed)


def test_ensure_registry_writes_the_demo_set_once_and_reads_it_back(
    settings: Settings, danang: Geography, tmp_path: Path
) -> None:
    registry = tmp_path / "var" / "devices.csv"
    local = settings.model_copy(
        update={
            "devices": DevicesSettings(registry=str(registry)),
            "simulator": settings.simulator.model_copy(update={"air_devices": 30}),
        }
    )
    written = ensure_registry(local, danang)
    assert registry.exists()
    assert len(written) == 36
    assert list(registry.parent.iterdir()) == [registry]  # no partial file left behind
    assert ensure_registry(local, danang) == written
    registry.write_text("device_id,kind,name,lon,lat\nx-1,air,Một,108.2208,16.0678\n")
    assert [device.device_id for device in ensure_registry(local, danang)] == ["x-1"]


# ----------------------------------------------------------------------------- readings


def test_traffic_rhythm_peaks_at_rush_hours_and_is_lowest_before_dawn() -> None:
    morning, evening, noon, night = (traffic_factor(h) for h in (8, 18, 13, 4))
    assert morning > noon
    assert evening > noon
    assert night < 0.6 < 1.4 < min(morning, evening)
    assert traffic_factor(23.9) == pytest.approx(traffic_factor(-0.1))


def test_rush_hour_air_is_dirtier_than_the_night_for_the_same_device(
    devices: list[Device],
) -> None:
    quiet = Scenario()  # no episode
    device = air(devices)[40]
    rush = [local_time(day, hour) for day in range(60) for hour in (7.5, 8.5, 17.5, 18.5)]
    night = [local_time(day, hour) for day in range(60) for hour in (3.0, 4.0, 4.5, 5.0)]
    assert mean_pm25(device, rush, quiet) > 2 * mean_pm25(device, night, quiet)


def test_urban_wards_breathe_dirtier_air_than_rural_communes(
    devices: list[Device], settings: Settings
) -> None:
    no_episode = Scenario(urban_units=Scenario.from_settings(settings).urban_units)
    assert {"20242", "20257"} <= no_episode.urban_units  # Hải Châu, Hoà Cường
    assert "20308" not in no_episode.urban_units  # Xã Bà Nà
    times = [local_time(day, hour) for day in range(3) for hour in range(0, 24, 3)]
    urban = [d for d in air(devices) if no_episode.is_urban(d)]
    rural = [d for d in air(devices) if not no_episode.is_urban(d)]
    assert len(urban) > 20
    assert len(rural) > 20
    urban_mean = statistics.fmean(mean_pm25(d, times, no_episode) for d in urban)
    rural_mean = statistics.fmean(mean_pm25(d, times, no_episode) for d in rural)
    assert urban_mean > 1.5 * rural_mean


def test_the_episode_commune_is_above_100_for_10_minutes_from_the_start_then_hourly(
    devices: list[Device], scenario: Scenario
) -> None:
    inside = [d for d in air(devices) if d.unit_code == EPISODE_UNIT]
    outside = [d for d in air(devices) if d.unit_code != EPISODE_UNIT]
    assert inside
    assert scenario.episode_unit == EPISODE_UNIT
    rng = random.Random(5)
    for minutes in (0, 3, 9.9, 60, 65, 24 * 60 + 5):
        at = ANCHOR + timedelta(minutes=minutes)
        for device in inside:
            for _ in range(20):
                assert float(reading_for(device, at, rng, scenario=scenario)["pm25"]) > 100
    for minutes in (-1, 10, 30, 59.9):
        at = ANCHOR + timedelta(minutes=minutes)
        assert not scenario.episode_active(inside[0], at)
        assert mean_pm25(inside[0], [at] * 50, scenario) < 80
    assert mean_pm25(outside[0], [ANCHOR + timedelta(minutes=5)] * 50, scenario) < 80


def test_without_a_simulator_start_episodes_run_in_the_first_10_minutes_of_each_hour(
    devices: list[Device],
) -> None:
    on_the_hour = Scenario(episode_unit=EPISODE_UNIT)
    device = next(d for d in air(devices) if d.unit_code == EPISODE_UNIT)
    assert on_the_hour.episode_active(device, datetime(2026, 1, 1, 5, 4, tzinfo=UTC))
    assert not on_the_hour.episode_active(device, datetime(2026, 1, 1, 5, 10, tzinfo=UTC))


def test_air_readings_are_never_negative_and_pm10_includes_pm25(
    devices: list[Device], scenario: Scenario
) -> None:
    rng = random.Random(9)
    for device in air(devices)[::7]:
        for step in range(0, 48 * 60, 37):
            payload = reading_for(device, ANCHOR + timedelta(minutes=step), rng, scenario=scenario)
            assert 0 < float(payload["pm25"]) <= float(payload["pm10"])
            assert 1.2 * float(payload["pm25"]) < float(payload["pm10"]) + 10


def test_river_levels_oscillate_around_each_station_base(
    devices: list[Device], scenario: Scenario
) -> None:
    rng = random.Random(2)
    gauges = {device.device_id: device for device in devices if device.kind == "water"}
    for station in WATER_STATIONS:
        levels = [
            float(reading_for(gauges[station.device_id], at, rng, scenario=scenario)["level"])
            for at in (ANCHOR + timedelta(minutes=20 * step) for step in range(72))
        ]
        assert abs(statistics.fmean(levels) - station.base_level_m) < 0.15
        assert max(levels) - min(levels) > 0.1  # tide or daily swing, plus noise
        assert max(abs(level - station.base_level_m) for level in levels) < 0.6


def test_every_payload_passes_the_message_contract_with_catalogue_fields(
    devices: list[Device], scenario: Scenario, settings: Settings
) -> None:
    catalogue: dict[str, set[str]] = {}
    for metric in settings.metrics.values():
        # public-service counters come from gov/ topics, VN_AQI is derived from PM readings
        if metric.kind not in NOT_FROM_SENSORS:
            catalogue.setdefault(metric.kind, set()).add(metric.field)
    assert {kind: set(fields) for kind, fields in FIELDS_BY_KIND.items()} == catalogue
    rng = random.Random(3)
    at = ANCHOR + timedelta(seconds=12.345)
    for device in devices:
        payload = reading_for(device, at, rng, scenario=scenario)
        assert isinstance(payload["ts"], int)
        assert payload["ts"] == epoch_ms(at)
        body = json.dumps(payload).encode()
        reading = decode(topic_for(device), body, now=at, max_clock_skew_s=0)
        assert (reading.kind, reading.device_id) == (device.kind, device.device_id)
        assert reading.ts == at.replace(microsecond=345000)
        assert set(reading.values) == catalogue[device.kind]


def test_readings_are_reproducible_from_the_random_generator(
    devices: list[Device], scenario: Scenario
) -> None:
    def draw(seed: int) -> list[dict[str, float | int]]:
        rng = random.Random(seed)
        return [reading_for(device, ANCHOR, rng, scenario=scenario) for device in devices]

    assert draw(11) == draw(11)
    assert draw(11) != draw(12)


def test_settings_give_the_scenario_when_none_is_passed(
    devices: list[Device], settings: Settings
) -> None:
    urban = next(d for d in air(devices) if d.unit_code == "20242")
    times = [local_time(day, 12) for day in range(40)]
    with_settings = statistics.fmean(
        float(reading_for(urban, at, random.Random(day), settings=settings)["pm25"])
        for day, at in enumerate(times)
    )
    as_rural = statistics.fmean(
        float(reading_for(urban, at, random.Random(day))["pm25"]) for day, at in enumerate(times)
    )
    assert with_settings > 1.5 * as_rural


def test_bad_calls_are_refused_with_a_clear_error(devices: list[Device]) -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        reading_for(devices[0], datetime(2026, 1, 1), random.Random(1))
    noise = Device("nz-1", "noise", "Ồn", 108.2, 16.0, "20242", {"commune": "20242"})
    with pytest.raises(ValueError, match="no reading model for kind 'noise'"):
        reading_for(noise, ANCHOR, random.Random(1))


def test_alarm_level_uses_each_stations_own_levels() -> None:
    cau_lau = ALARM_LEVELS_M["wl-caulau"]  # BĐ I 2.0, II 3.0, III 4.0
    assert [alarm_level(v, cau_lau) for v in (1.99, 2.0, 2.99, 3.0, 4.0, 5.62)] == [
        0,
        1,
        1,
        2,
        3,
        3,
    ]
    cam_le = ALARM_LEVELS_M["wl-camle"]  # only BĐ III (2.5 m) is verified
    assert [alarm_level(v, cam_le) for v in (1.0, 2.49, 2.5)] == [0, 0, 3]
    assert alarm_level(9.0, (None, None, None)) == 0


# -- public-service counters from the Simulator ---------------------------------------------


class _SteppingClock:
    """Each reading of the clock is ``step`` later: rounds pass at simulated speed."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self.current, self.step = start, step

    def now(self) -> datetime:
        self.current += self.step
        return self.current


class _RecordingClient:
    """Enough of paho's client for the Simulator: accepts the connection, acknowledges
    every publish at once and keeps (topic, payload)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, float]]] = []
        self.on_connect: Any = None
        self.on_disconnect: Any = None
        self.on_publish: Any = None

    def connect(self, *_args: object, **_kwargs: object) -> None:
        pass

    def loop_start(self) -> None:
        self.on_connect(self, None, None, ReasonCode(PacketTypes.CONNACK, identifier=0), None)

    def publish(self, topic: str, body: str, qos: int) -> Any:
        assert qos == 1
        self.sent.append((topic, json.loads(body)))
        self.on_publish(self, None, len(self.sent), None, None)
        return SimpleNamespace(rc=MQTTErrorCode.MQTT_ERR_SUCCESS)

    def disconnect(self) -> None:
        pass

    def loop_stop(self) -> None:
        pass


def run_simulator(
    settings: Settings, devices: list[Device], start: datetime, rounds: int
) -> list[tuple[str, dict[str, float]]]:
    fast = settings.model_copy(
        update={"simulator": settings.simulator.model_copy(update={"interval_s": 0.001})}
    )
    client = _RecordingClient()
    simulator = Simulator(
        fast,
        devices[:2],
        client_factory=lambda _settings: cast(Any, client),
        clock=_SteppingClock(start, timedelta(seconds=20)),
    )
    stats = simulator.run(threading.Event(), max_rounds=rounds)
    assert stats.published == stats.acknowledged == len(client.sent)
    return client.sent


def test_the_simulator_publishes_counters_in_office_hours_only(
    settings: Settings, devices: list[Device]
) -> None:
    # Monday 2 March 2026 from 08:00 local: 20 s a clock reading, 3 a round: 60 s a round.
    sent = run_simulator(settings, devices, datetime(2026, 3, 2, 1, 0, tzinfo=UTC), 40)
    gov = [(topic, payload) for topic, payload in sent if topic.startswith("gov/")]
    assert len(sent) - len(gov) == 80  # every device every round, as before
    assert gov
    assert {topic.split("/")[1] for topic, _ in gov} <= {"dossiers", "feedback"}
    assert {topic.split("/")[2] for topic, _ in gov} <= {unit.code for unit in gov_units(settings)}
    received = sum(payload["received"] for topic, payload in gov if "/dossiers/" in topic)
    assert 40 < received < 200  # ~40 minutes of ~94 offices at 10-60 dossiers a day
    # Saturday 7 March, same hours: the sensors go on, the offices are closed.
    weekend = run_simulator(settings, devices, datetime(2026, 3, 7, 1, 0, tzinfo=UTC), 40)
    assert len(weekend) == 80
    assert not any(topic.startswith("gov/") for topic, _ in weekend)


def test_no_gov_contract_no_counters(devices: list[Device]) -> None:
    plain = parse_settings({}, base_dir=REPO)  # the default contract: json only
    sent = run_simulator(plain, devices, datetime(2026, 3, 2, 1, 0, tzinfo=UTC), 10)
    assert len(sent) == 20
    assert all(topic.startswith("city/") for topic, _ in sent)
