"""A unit's children (or devices) ranked by a metric (dashboard/ranking.py), on a real
SqliteStore, and who may see which rows."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from core.settings import MetricSettings, Settings
from core.store import SqliteStore
from core.types import Point
from dashboard.access import Access
from dashboard.data import DashboardData
from dashboard.kpi import lower_is_better, parse_range
from dashboard.ranking import RANKING_COLUMNS, children_ranking, rank_values
from layers.geography import Geography
from layers.registry import Device
from tests.conftest import FakeClock

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 4, 1, 0, tzinfo=UTC)
HAI_VAN = {"province": "48", "commune": "20194"}
CAM_LE = {"province": "48", "commune": "20260"}
LIEN_CHIEU = {"province": "48", "commune": "20197"}
DEVICES = [
    Device("aq-1", "air", "Trường Hải Vân", 108.13, 16.12, "20194", HAI_VAN),
    Device("aq-2", "air", "Cảng Liên Chiểu", 108.14, 16.11, "20194", HAI_VAN),
    Device("aq-9", "air", "", 108.15, 16.13, "20194", HAI_VAN),  # never reported, no name
    Device("w-1", "water", "Trạm Hải Vân", 108.12, 16.12, "20194", HAI_VAN),
    Device("aq-3", "air", "Chợ Cẩm Lệ", 108.20, 16.01, "20260", CAM_LE),
    Device("aq-4", "air", "Hòa Khánh", 108.15, 16.07, "20197", LIEN_CHIEU),
]


def air(device: str, tags: dict[str, str], pm25: float, at: datetime) -> Point:
    return Point("air", {"device": device, **tags}, {"pm25": pm25, "pm10": 2 * pm25}, at)


@pytest.fixture
def data(tmp_path: Path, settings: Settings, geography: Geography) -> Iterator[DashboardData]:
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    store.write(
        [
            air("aq-1", HAI_VAN, 30.0, NOW - timedelta(minutes=2)),
            air("aq-2", HAI_VAN, 50.0, NOW - timedelta(minutes=3)),
            air("aq-3", CAM_LE, 120.0, NOW - timedelta(minutes=1)),
            air("aq-4", LIEN_CHIEU, 40.04, NOW - timedelta(minutes=4)),  # shows as 40,0: a tie
            # Three days ago Cẩm Lệ was clean and Hải Vân was not.
            air("aq-3", CAM_LE, 5.0, NOW - timedelta(days=3)),
            air("aq-1", HAI_VAN, 200.0, NOW - timedelta(days=3)),
        ]
    )
    yield DashboardData(
        store,
        settings.metrics,
        clock=FakeClock(NOW),
        level="commune",
        devices=lambda: DEVICES,
        hierarchy=geography.hierarchy,
    )
    store.close()


def admin(geography: Geography) -> Access:
    return Access.admin(geography.hierarchy)


def officer(geography: Geography, *units: str) -> Access:
    return Access(geography.hierarchy, units, role="operator", username="can-bo")


def test_rank_ties_best_and_worst(settings: Settings) -> None:
    metric = settings.metrics["pm25"]
    values = pd.Series([40.0, 39.96, float("nan"), 120.0, 10.0], index=list("abcde"))
    ranks = rank_values(values, metric)
    assert list(ranks["rank"].fillna(0)) == [2, 2, 0, 4, 1]  # 40,0 and 40,0 share a rank
    assert list(ranks.index[ranks["best"]]) == ["e"]
    assert list(ranks.index[ranks["worst"]]) == ["d"]
    alone = rank_values(pd.Series([3.0, float("nan")], index=["a", "b"]), metric)
    assert not alone["best"].any()
    assert not alone["worst"].any()
    same = rank_values(pd.Series([3.0, 3.0], index=["a", "b"]), metric)
    assert not same["best"].any()
    assert not same["worst"].any()


def test_higher_is_better_only_when_the_metric_says_so(settings: Settings) -> None:
    pm25 = settings.metrics["pm25"]
    sensors = [metric for metric in settings.metrics.values() if metric.is_live]
    assert all(lower_is_better(metric) for metric in sensors)

    class Served(MetricSettings):
        better: str = "higher"

    served = Served(kind="gov", field="on_time", label=pm25.label, unit="%")
    assert not lower_is_better(served)
    ranks = rank_values(pd.Series([80.0, 95.0], index=["a", "b"]), served)
    assert list(ranks.index[ranks["best"]]) == ["b"]


def test_children_of_a_province_best_first(data: DashboardData, geography: Geography) -> None:
    period = parse_range("live", None, None, NOW, TZ)
    frame = children_ranking(data, admin(geography), "48", "pm25", period)
    assert list(frame.columns) == list(RANKING_COLUMNS)
    assert len(frame) == len(geography.hierarchy.children("48"))  # every commune is listed
    assert list(frame.index[:4]) == ["20194", "20197", "20260", frame.index[3]]
    assert frame.loc["20194", "value"] == pytest.approx(40.0)  # mean of aq-1, aq-2
    assert list(frame["rank"][:3]) == [1.0, 1.0, 3.0]  # 40,0 and 40,0: the same rank
    assert list(frame.index[frame["best"]]) == ["20194", "20197"]
    assert list(frame.index[frame["worst"]]) == ["20260"]
    assert frame.loc["20194", "devices"] == 2
    assert frame.loc["20194", "name_vi"] == "Phường Hải Vân"
    assert frame.loc["20194", "name_en"] == "Hai Van Ward"
    assert math.isnan(frame["rank"].iloc[3])
    assert frame["devices"].iloc[3] == 0


def test_a_range_ranks_by_the_aggregation_over_it(
    data: DashboardData, geography: Geography
) -> None:
    period = parse_range("7d", None, None, NOW, TZ)
    frame = children_ranking(data, admin(geography), "48", "pm25", period)
    # Over the week Cẩm Lệ (mean of 5 and 120) beats Hải Vân (200, then 40).
    assert frame.loc["20260", "value"] == pytest.approx(62.5)
    assert frame.loc["20194", "value"] == pytest.approx(120.0)
    assert list(frame.index[:3]) == ["20197", "20260", "20194"]
    assert list(frame.index[frame["worst"]]) == ["20194"]


def test_a_commune_ranks_its_devices_of_the_metric(
    data: DashboardData, geography: Geography
) -> None:
    period = parse_range("live", None, None, NOW, TZ)
    frame = children_ranking(data, admin(geography), "20194", "pm25", period)
    assert list(frame.index) == ["aq-1", "aq-2", "aq-9"]  # the water gauge does not measure dust
    assert set(frame["kind"]) == {"device"}
    assert list(frame["value"][:2]) == [30.0, 50.0]
    assert frame.loc["aq-1", "state"] == "ok"
    assert frame.loc["aq-9", "state"] == "offline"
    assert frame.loc["aq-9", "name_vi"] == "aq-9"  # no name: its id
    assert bool(frame.loc["aq-1", "best"])
    assert bool(frame.loc["aq-2", "worst"])
    water = children_ranking(data, admin(geography), "20194", "water_level", period)
    assert list(water.index) == ["w-1"]


def test_access_a_commune_officer_sees_only_their_commune(
    data: DashboardData, geography: Geography
) -> None:
    period = parse_range("live", None, None, NOW, TZ)
    hai_van = officer(geography, "20194")
    assert children_ranking(data, hai_van, "20260", "pm25", period).empty  # another commune
    assert children_ranking(data, hai_van, "99999", "pm25", period).empty  # as if unknown
    assert children_ranking(data, hai_van, "48", "pm25", period).empty  # no other commune's row
    mine = children_ranking(data, hai_van, "20194", "pm25", period)
    assert list(mine.index) == ["aq-1", "aq-2", "aq-9"]
    # A province officer sees every commune of the province.
    province = children_ranking(data, officer(geography, "48"), "48", "pm25", period)
    assert {"20194", "20260", "20197"} <= set(province.index)
    # Two communes: the province itself is out of reach, so no ranking of it at all.
    assert children_ranking(data, officer(geography, "20194", "20197"), "48", "pm25", period).empty
