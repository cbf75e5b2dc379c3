"""The demo's device set: air sensors placed inside the communes (more in urban wards) and
six real river gauges of the Hàn, Vu Gia and Thu Bồn rivers with their flood alarm levels.

Placement is deterministic for a seed; the registry CSV it writes is read back like any
operator's registry.
"""

from __future__ import annotations

import logging
import math
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import shapely.ops

from core.settings import Settings
from layers.geography import Geography
from layers.registry import Device, place_device, read_registry, write_registry

log = logging.getLogger("cityops.simulate")

# Unit types whose people, traffic and dust are urban. "Thị trấn" exists in the pre-2025 data.
URBAN_UNIT_TYPES = frozenset({"Phường", "Thị trấn"})
# Offshore archipelagos (Hoàng Sa, Trường Sa): no city sensor network can be placed there.
NO_SENSOR_UNITS = frozenset({"20333", "22736"})
URBAN_SENSORS_PER_KM2_FACTOR = 12.0  # an urban ward gets this many times the rural density
KM_PER_DEGREE = 111.32
COORDINATE_DECIMALS = 6  # what the registry CSV keeps; sample on that grid so a re-read agrees
MAX_SAMPLING_ROUNDS = 200
MAX_STATION_NUDGE_DEG = 0.02  # ≈ 2 km: farther than that, the station is not in this area


@dataclass(frozen=True, slots=True)
class WaterStation:
    device_id: str
    place: str
    river: str
    lon: float
    lat: float
    base_level_m: float
    tide_m: float  # semi-diurnal tide amplitude near the coast
    daily_m: float  # daily swing upstream (reservoir releases, evaporation)

    @property
    def name(self) -> str:
        return unicodedata.normalize("NFC", f"Trạm thủy văn {self.place} ({self.river})")


# Real hydrological stations of the Hàn, Vu Gia and Thu Bồn rivers (approximate coordinates).
WATER_STATIONS = (
    WaterStation("wl-camle", "Cẩm Lệ", "sông Hàn", 108.2075, 16.0186, 1.0, 0.35, 0.03),
    WaterStation("wl-ainghia", "Ái Nghĩa", "sông Vu Gia", 108.1180, 15.8850, 5.5, 0.02, 0.12),
    WaterStation("wl-caulau", "Câu Lâu", "sông Thu Bồn", 108.2860, 15.8720, 1.2, 0.30, 0.04),
    WaterStation("wl-hoian", "Hội An", "sông Thu Bồn", 108.3270, 15.8770, 0.5, 0.30, 0.02),
    WaterStation("wl-giaothuy", "Giao Thủy", "sông Thu Bồn", 108.1000, 15.8420, 4.5, 0.02, 0.10),
    WaterStation("wl-nongson", "Nông Sơn", "sông Thu Bồn", 107.9900, 15.7000, 8.0, 0.00, 0.15),
)  # fmt: skip
STATIONS_BY_ID = {station.device_id: station for station in WATER_STATIONS}
# Flood alarm levels I, II, III in metres at each gauge (QĐ 05/2020/QĐ-TTg as reported in
# 2022-2025 bulletins: shared/reference/vn-kpis-thresholds.md §3c); None = not verified.
ALARM_LEVELS_M: dict[str, tuple[float | None, float | None, float | None]] = {
    "wl-camle": (None, None, 2.5),
    "wl-ainghia": (None, 8.0, 9.0),
    "wl-caulau": (2.0, 3.0, 4.0),
    "wl-hoian": (1.0, 1.5, 2.0),
    "wl-giaothuy": (6.5, None, 8.8),
    "wl-nongson": (None, 13.0, 15.0),
}
# Metric fields per kind, named as the catalogue in config.yaml names them.
FIELDS_BY_KIND = {"air": ("pm25", "pm10"), "water": ("level", "alarm")}


# ----------------------------------------------------------------------------- placement


def _area_km2(geometry: Any) -> float:
    # Equirectangular at the polygon's latitude: good to a few percent, enough for weights.
    lat = math.radians(geometry.centroid.y)
    return float(geometry.area) * KM_PER_DEGREE**2 * math.cos(lat)


def _allocate(weights: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Sensors per commune: one each when there are enough, the rest by weight (largest
    remainder, so the split is exact); fewer than communes → a weighted draw."""
    count = len(weights)
    if total < count:
        chosen = rng.choice(count, size=total, replace=False, p=weights / weights.sum())
        drawn: np.ndarray = np.bincount(chosen, minlength=count)
        return drawn
    extra = total - count
    quotas = extra * weights / weights.sum()
    result = np.floor(quotas).astype(int)
    order = np.argsort(-(quotas - result), kind="stable")
    result[order[: extra - int(result.sum())]] += 1
    allocated: np.ndarray = result + 1
    return allocated


def _sample_inside(
    geometry: Any, count: int, rng: np.random.Generator, accept: Callable[[float, float], bool]
) -> list[tuple[float, float]]:
    """``count`` uniform points (lon/lat, on the registry's 6-decimal grid) inside ``geometry``
    that ``accept`` also agrees with; rejection sampling in the bounding box, bounded."""
    min_x, min_y, max_x, max_y = geometry.bounds
    found: list[tuple[float, float]] = []
    for _ in range(MAX_SAMPLING_ROUNDS):
        size = max(32, 8 * (count - len(found)))
        xs = np.round(rng.uniform(min_x, max_x, size), COORDINATE_DECIMALS)
        ys = np.round(rng.uniform(min_y, max_y, size), COORDINATE_DECIMALS)
        inside = shapely.contains_xy(geometry, xs, ys)
        for x, y in zip(xs[inside].tolist(), ys[inside].tolist(), strict=True):
            if accept(x, y):
                found.append((x, y))
                if len(found) == count:
                    return found
    raise ValueError(f"could not place {count} points inside a polygon at {geometry.bounds}")


def make_demo_devices(
    geography: Geography,
    *,
    air_devices: int,
    water_stations: bool,
    seed: int,
    skip_units: Collection[str] = NO_SENSOR_UNITS,
) -> list[Device]:
    """Air sensors ``aq-0001``… at random points inside the communes of the map level (urban
    wards denser per km² than rural communes; every commune gets one when there are at least
    as many sensors as communes), then the river gauges that lie in the area."""
    frame = geography.boundaries(geography.map_level)
    frame = frame[~frame["code"].isin(list(skip_units))].reset_index(drop=True)
    hierarchy, locator = geography.hierarchy, geography.locator()
    rng = np.random.default_rng(seed)
    urban = [hierarchy.unit(code).unit_type in URBAN_UNIT_TYPES for code in frame["code"]]
    areas = np.array([_area_km2(geometry) for geometry in frame.geometry])
    weights = areas * np.where(urban, URBAN_SENSORS_PER_KM2_FACTOR, 1.0)
    counts = _allocate(weights, air_devices, rng) if len(frame) else np.array([], dtype=int)
    same_unit_level = geography.map_level == geography.lowest_level
    devices: list[Device] = []
    for code, geometry, count in zip(frame["code"], frame.geometry, counts.tolist(), strict=True):
        if count == 0:
            continue

        def inside_this_unit(lon: float, lat: float, code: str = code) -> bool:
            found = locator.locate(lon, lat)
            return found == code if same_unit_level else found is not None

        points = _sample_inside(geometry, count, rng, inside_this_unit)
        full_name = hierarchy.unit(code).full_name
        for number, (lon, lat) in enumerate(points, start=1):
            device_id = f"aq-{len(devices) + 1:04d}"
            name = unicodedata.normalize("NFC", f"Trạm quan trắc không khí {full_name} {number}")
            devices.append(place_device(device_id, "air", name, lon, lat, geography))
    if water_stations:
        for station in WATER_STATIONS:
            placed = place_station(station, geography)
            if placed is None:
                log.info("river gauge %s lies outside this area; not simulated", station.device_id)
            else:
                devices.append(placed)
    outside = [device.device_id for device in devices if device.unit_code is None]
    if outside:
        raise ValueError(f"demo devices placed outside every unit: {outside}")
    return devices


def place_station(station: WaterStation, geography: Geography) -> Device | None:
    """The gauge as a Device inside a unit: where it is, or moved onto the nearest unit when
    its approximate coordinates fall just outside (a river bank, the sea); None when no
    unit is within ~2 km."""
    lon, lat = station.lon, station.lat
    if geography.locator().locate(lon, lat) is None:
        frame = geography.boundaries(geography.lowest_level)
        point = shapely.Point(lon, lat)
        distances = shapely.distance(frame.geometry.to_numpy(), point)
        if not len(distances) or float(distances.min()) > MAX_STATION_NUDGE_DEG:
            return None
        nearest = frame.geometry.iloc[int(np.argmin(distances))]
        landing = shapely.ops.nearest_points(nearest, point)[0]
        inside = nearest.intersection(landing.buffer(0.002)).representative_point()
        lon, lat = round(inside.x, COORDINATE_DECIMALS), round(inside.y, COORDINATE_DECIMALS)
        if geography.locator().locate(lon, lat) is None:
            surface = nearest.representative_point()
            lon, lat = round(surface.x, COORDINATE_DECIMALS), round(surface.y, COORDINATE_DECIMALS)
    return place_device(station.device_id, "water", station.name, lon, lat, geography)


def ensure_registry(settings: Settings, geography: Geography) -> list[Device]:
    """The devices of ``settings.devices.registry``; the demo set is generated and written
    there first when the file does not exist yet."""
    path = settings.path(settings.devices.registry)
    if path.exists():
        return list(read_registry(path, geography).values())
    simulator = settings.simulator
    devices = make_demo_devices(
        geography,
        air_devices=simulator.air_devices,
        water_stations=simulator.water_stations,
        seed=simulator.seed,
    )
    # Written beside and renamed, so a crash never leaves a half registry to be read next time.
    partial = path.with_name(path.name + ".partial")
    write_registry(partial, devices)
    partial.replace(path)
    log.info("wrote %d demo devices to %s", len(devices), path)
    return devices
