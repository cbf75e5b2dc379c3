"""to_points and the Enricher: registry lookup, placing by payload position, refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import DecodeError
from core.types import UNASSIGNED, Point, Reading
from ingest.enrich import Enricher, to_points
from layers.registry import Device

TS = datetime(2025, 11, 28, 3, 0, tzinfo=UTC)
HAI_CHAU = {"province": "48", "commune": "20242"}
AQ1 = Device("aq-0001", "air", "Trạm Hải Châu 1", 108.2208, 16.0678, "20242", HAI_CHAU)
OUTSIDE = Device("aq-9999", "air", "Ngoài biển", 109.5, 15.0, None, {})


def reading(device_id: str = "aq-0001", kind: str = "air", **position: float) -> Reading:
    return Reading(kind, device_id, TS, {"pm25": 35.2, "pm10": 61.0}, **position)


class FakePlacer:
    """Places by a table of positions; records each call (placing is the costly part)."""

    def __init__(self, units: dict[tuple[float, float], str]) -> None:
        self.units = units
        self.calls: list[tuple[str, str, str, float, float]] = []

    def __call__(self, device_id: str, kind: str, name: str, lon: float, lat: float) -> Device:
        self.calls.append((device_id, kind, name, lon, lat))
        code = self.units.get((lon, lat))
        tags = {"province": "48", "commune": code} if code else {}
        return Device(device_id, kind, name, lon, lat, code, tags)


def test_to_points_builds_one_point_with_device_and_unit_tags() -> None:
    assert to_points(reading(), AQ1) == [
        Point(
            measurement="air",
            tags={"device": "aq-0001", "province": "48", "commune": "20242"},
            fields={"pm25": 35.2, "pm10": 61.0},
            ts=TS,
        )
    ]


def test_to_points_refuses_a_kind_mismatch() -> None:
    with pytest.raises(DecodeError, match="registered as kind 'air', the topic says 'water'") as e:
        to_points(reading(kind="water"), AQ1)
    assert e.value.code == "kind_mismatch"


def test_to_points_refuses_a_device_outside_every_unit() -> None:
    with pytest.raises(
        DecodeError, match=r"'aq-9999' at lon 109\.50000, lat 15\.00000 lies outside"
    ):
        to_points(reading("aq-9999"), OUTSIDE)


def test_to_points_with_the_wrong_device_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="enriched with"):
        to_points(reading("aq-0002"), AQ1)


def test_registered_device_is_found_without_placing() -> None:
    placer = FakePlacer({})
    enricher = Enricher({"aq-0001": AQ1}, placer)
    assert enricher.points_for(reading())[0].tags["commune"] == "20242"
    assert placer.calls == []


def test_registered_device_at_its_registered_position_is_not_placed_again() -> None:
    placer = FakePlacer({})
    enricher = Enricher({"aq-0001": AQ1}, placer)
    enricher.points_for(reading(lon=108.2208, lat=16.0678))
    assert placer.calls == []


class FakeUnassigned:
    def __init__(self) -> None:
        self.seen_calls: list[tuple[str, str, str, datetime]] = []

    def seen(self, device_id: str, kind: str, why: str, at: datetime) -> None:
        self.seen_calls.append((device_id, kind, why, at))


UNASSIGNED_TAGS = {"province": UNASSIGNED, "commune": UNASSIGNED}
NOW = datetime(2025, 11, 28, 3, 0, 5, tzinfo=UTC)


def test_unknown_device_without_position_is_stored_as_unassigned() -> None:
    sink = FakeUnassigned()
    enricher = Enricher({"aq-0001": AQ1}, FakePlacer({}), unassigned=sink)
    points = enricher.points_for(reading("bus-7"), NOW)
    assert points[0].tags == {"device": "bus-7", **UNASSIGNED_TAGS}
    assert points[0].measurement == "air"
    assert sink.seen_calls == [("bus-7", "air", "no_position", NOW)]


def test_unassigned_tags_follow_the_configured_levels() -> None:
    enricher = Enricher({}, FakePlacer({}), levels=("province", "district", "commune"))
    assert enricher.points_for(reading("bus-7"))[0].tags == {
        "device": "bus-7",
        "province": UNASSIGNED,
        "district": UNASSIGNED,
        "commune": UNASSIGNED,
    }


def test_unassigned_code_cannot_be_a_real_unit_code() -> None:
    assert not UNASSIGNED.isdigit()  # layers/levels.py accepts only digit codes


def test_unknown_device_with_position_is_placed_once_and_cached() -> None:
    placer = FakePlacer({(108.15, 16.07): "20194"})
    enricher = Enricher({}, placer)
    first = enricher.points_for(reading("bus-7", lon=108.15, lat=16.07))
    again = enricher.points_for(reading("bus-7", lon=108.15, lat=16.07))
    # Later readings without a position use the last known one.
    later = enricher.points_for(reading("bus-7"))
    assert placer.calls == [("bus-7", "air", "bus-7", 108.15, 16.07)]
    assert first[0].tags == again[0].tags == later[0].tags
    assert first[0].tags == {"device": "bus-7", "province": "48", "commune": "20194"}
    assert enricher.placed == 1


def test_moving_device_is_placed_at_its_new_position() -> None:
    placer = FakePlacer({(108.15, 16.07): "20194", (108.2208, 16.0678): "20242"})
    enricher = Enricher({"aq-0001": AQ1}, placer)
    moved = enricher.points_for(reading(lon=108.15, lat=16.07))
    assert moved[0].tags["commune"] == "20194"
    # Registry name and kind are kept for a registered device that moves.
    assert placer.calls == [("aq-0001", "air", "Trạm Hải Châu 1", 108.15, 16.07)]
    assert enricher.points_for(reading())[0].tags["commune"] == "20194"


def test_unknown_device_placed_outside_every_unit_is_unassigned_and_placed_once() -> None:
    placer, sink = FakePlacer({}), FakeUnassigned()
    enricher = Enricher({}, placer, unassigned=sink)
    for _ in range(2):
        points = enricher.points_for(reading("boat-1", lon=109.9, lat=15.1), NOW)
        assert points[0].tags == {"device": "boat-1", **UNASSIGNED_TAGS}
    assert len(placer.calls) == 1
    assert [call[2] for call in sink.seen_calls] == ["outside_map", "outside_map"]


def test_registered_device_outside_the_map_is_unassigned() -> None:
    sink = FakeUnassigned()
    enricher = Enricher({"aq-9999": OUTSIDE}, FakePlacer({}), unassigned=sink)
    assert enricher.points_for(reading("aq-9999"), NOW)[0].tags["commune"] == UNASSIGNED
    assert sink.seen_calls == [("aq-9999", "air", "outside_map", NOW)]


def test_placed_cache_is_bounded() -> None:
    placer = FakePlacer({(108.0, 16.0): "20194"})
    enricher = Enricher({}, placer, max_placed=2)
    for index in range(5):
        enricher.points_for(reading(f"bus-{index}", lon=108.0, lat=16.0))
    assert enricher.placed == 2
    # forgotten: a later reading without a position is unassigned again
    assert enricher.points_for(reading("bus-0"))[0].tags["commune"] == UNASSIGNED
    assert enricher.points_for(reading("bus-4"))[0].tags["commune"] == "20194"
