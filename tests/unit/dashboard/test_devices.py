"""Device states: the pure rule table, and device_frame on a real SqliteStore (a file in
tmp_path)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.settings import AlertRule, Settings
from core.store import SqliteStore
from core.types import MetricRef, Point, UnitRef, UnitValue
from dashboard.devices import Latest, Verdict, device_frame, device_state
from layers.geography import Geography
from layers.registry import Device

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
STALE_AFTER = timedelta(seconds=900)
LOOKBACK = timedelta(hours=24)
HAI_VAN = {"province": "48", "commune": "20194"}
LIEN_CHIEU = {"province": "48", "commune": "20197"}

RULES = [
    # A warning first: the order of the rules must not let it beat a critical breach.
    AlertRule(id="pm10-high", metric="pm10", level="commune", op="above", threshold=150,
              severity="warning"),
    AlertRule(id="pm25-bad", metric="pm25", level="commune", op="above", threshold=80,
              severity="critical"),
    AlertRule(id="pm25-any", metric="pm25", level="commune", op="above", threshold=10,
              severity="info"),
    AlertRule(id="water-low", metric="water_level", level="commune", op="below", threshold=0.5,
              severity="warning"),
    AlertRule(id="flood-3", metric="flood_alarm", level="commune", op="above", threshold=2,
              severity="critical"),
    AlertRule(id="flood-hai-van", metric="flood_alarm", level="commune", op="above",
              threshold=0, severity="critical", units=["20194"]),
]  # fmt: skip


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def state_of(latest: Mapping[str, Latest], tags: Mapping[str, str] = LIEN_CHIEU) -> Verdict:
    return device_state(latest, RULES, now=NOW, stale_after=STALE_AFTER, tags=tags)


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize(
    ("latest", "expected"),
    [
        pytest.param({}, Verdict("offline"), id="never-seen"),
        pytest.param(
            {"pm25": Latest(95.0, ago(16))}, Verdict("offline"), id="offline-by-age-even-if-bad"
        ),
        pytest.param(
            {"pm25": Latest(20.0, ago(20)), "pm10": Latest(30.0, ago(15.5))},
            Verdict("offline"),
            id="offline-newest-of-all-metrics-too-old",
        ),
        pytest.param(
            {"pm25": Latest(95.0, ago(15))},
            Verdict("alarm", "pm25", 95.0, "pm25-bad"),
            id="exactly-stale-after-old-still-online",
        ),
        pytest.param(
            {"pm25": Latest(95.0, ago(2))},
            Verdict("alarm", "pm25", 95.0, "pm25-bad"),
            id="critical-above",
        ),
        pytest.param({"pm25": Latest(80.0, ago(2))}, Verdict("ok"), id="at-threshold-no-breach"),
        pytest.param({"pm25": Latest(30.0, ago(2))}, Verdict("ok"), id="info-rule-ignored"),
        pytest.param(
            {"water_level": Latest(0.3, ago(1))},
            Verdict("warning", "water_level", 0.3, "water-low"),
            id="warning-below-op",
        ),
        pytest.param({"water_level": Latest(0.7, ago(1))}, Verdict("ok"), id="above-a-below-rule"),
        pytest.param(
            {"pm10": Latest(200.0, ago(1))},
            Verdict("warning", "pm10", 200.0, "pm10-high"),
            id="warning-above",
        ),
        pytest.param(
            {"pm10": Latest(200.0, ago(1)), "pm25": Latest(95.0, ago(1))},
            Verdict("alarm", "pm25", 95.0, "pm25-bad"),
            id="worst-wins",
        ),
        pytest.param(
            {"pm25": Latest(95.0, ago(20)), "pm10": Latest(20.0, ago(1))},
            Verdict("ok"),
            id="value-older-than-rule-lookback-not-judged",
        ),
        pytest.param(
            {"flood_alarm": Latest(1.0, ago(1))},
            Verdict("ok"),
            id="rule-for-other-units-does-not-apply",
        ),
    ],
)
def test_state_table(latest: dict[str, Latest], expected: Verdict) -> None:
    assert state_of(latest) == expected


def test_rule_limited_to_units_applies_to_devices_tagged_with_them() -> None:
    assert state_of({"flood_alarm": Latest(1.0, ago(1))}, tags=HAI_VAN) == Verdict(
        "alarm", "flood_alarm", 1.0, "flood-hai-van"
    )
    assert state_of({"flood_alarm": Latest(1.0, ago(1))}, tags={}) == Verdict("ok")


def test_first_rule_of_the_worst_severity_decides() -> None:
    # flood_alarm 3 breaches flood-3 and flood-hai-van, both critical: flood-3 comes first.
    assert state_of({"flood_alarm": Latest(3.0, ago(1))}, tags=HAI_VAN).rule == "flood-3"


def test_a_reading_from_the_future_counts_as_fresh() -> None:
    # a device clock ahead (within ingest.max_clock_skew_s) is not offline
    assert state_of({"pm25": Latest(95.0, NOW + timedelta(minutes=5))}).state == "alarm"


# --------------------------------------------------------------------------- device_frame


def air(device: str, tags: Mapping[str, str], at: datetime, **fields: float) -> Point:
    return Point("air", {"device": device, **tags}, fields, at)


def water(device: str, tags: Mapping[str, str], at: datetime, **fields: float) -> Point:
    return Point("water", {"device": device, **tags}, fields, at)


DEVICES = [
    Device("aq-1", "air", "Trường Tiểu học Hải Vân", 108.13, 16.12, "20194", HAI_VAN),
    Device("aq-2", "air", "Cảng Liên Chiểu", 108.14, 16.11, "20194", HAI_VAN),
    Device("aq-3", "air", "Chợ Hòa Khánh", 108.15, 16.07, "20197", LIEN_CHIEU),
    Device("aq-4", "air", "Công viên", 108.16, 16.06, "20197", LIEN_CHIEU),
    Device("w-1", "water", "Trạm Cẩm Lệ", 108.20, 16.01, "20197", LIEN_CHIEU),
    Device("aq-far", "air", "Ngoài bản đồ", 110.0, 10.0, None, {}),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "timeseries.sqlite")
    opened.write(
        [
            air("aq-1", HAI_VAN, ago(30), pm25=20.0, pm10=30.0),  # earlier, fine
            air("aq-1", HAI_VAN, ago(2), pm25=95.0, pm10=120.0),  # latest: critical pm25
            air("aq-2", HAI_VAN, ago(1), pm25=20.0, pm10=200.0),  # warning pm10
            air("aq-3", LIEN_CHIEU, ago(120), pm25=10.0, pm10=20.0),  # two hours ago: offline
            # aq-4 never reported
            water("w-1", LIEN_CHIEU, ago(3), level=0.3, alarm=0.0),  # below 0.5 m: warning
            # a reading under w-1's id in another measurement is not one of its metrics
            air("w-1", LIEN_CHIEU, ago(1), pm25=500.0, pm10=500.0),
            air("aq-9", HAI_VAN, ago(1), pm25=300.0, pm10=300.0),  # not in the registry
            air("aq-far", {"province": "unassigned", "commune": "unassigned"}, ago(4), pm25=5.0,
                pm10=5.0),
        ]
    )  # fmt: skip
    yield opened
    opened.close()


def frame_for(store: Any, settings: Settings, **options: Any) -> pd.DataFrame:
    return device_frame(
        store,
        DEVICES,
        settings.metrics,
        RULES,
        now=NOW,
        stale_after=STALE_AFTER,
        lookback=LOOKBACK,
        **options,
    )


def test_device_frame_states_from_the_store(store: SqliteStore, settings: Settings) -> None:
    frame = frame_for(store, settings).set_index("device_id")
    assert list(frame.index) == ["aq-1", "aq-2", "aq-3", "aq-4", "aq-far", "w-1"]
    assert frame["state"].to_dict() == {
        "aq-1": "alarm",
        "aq-2": "warning",
        "aq-3": "offline",
        "aq-4": "offline",
        "aq-far": "ok",
        "w-1": "warning",
    }
    assert frame.loc["aq-1", ["metric", "value", "rule"]].tolist() == ["pm25", 95.0, "pm25-bad"]
    assert frame.loc["aq-2", ["metric", "value", "rule"]].tolist() == ["pm10", 200.0, "pm10-high"]
    assert frame.loc["w-1", ["metric", "value", "rule"]].tolist() == [
        "water_level",
        0.3,
        "water-low",
    ]
    assert frame.loc["aq-3", "metric"] is None
    assert math.isnan(frame.loc["aq-3", "value"])
    assert frame.loc["aq-1", "last_seen"] == ago(2)
    assert frame.loc["aq-3", "last_seen"] == ago(120)  # offline, but when it was last seen
    assert frame.loc["w-1", "last_seen"] == ago(3)  # not the air reading under its id
    assert frame.loc["aq-4", "last_seen"] is pd.NaT
    assert frame.loc["aq-1", ["kind", "name", "unit_code"]].tolist() == [
        "air",
        "Trường Tiểu học Hải Vân",
        "20194",
    ]
    assert frame.loc["aq-1", ["lon", "lat"]].tolist() == [108.13, 16.12]
    assert frame.loc["aq-far", "unit_code"] is None


def test_device_frame_columns_and_types(store: SqliteStore, settings: Settings) -> None:
    frame = frame_for(store, settings)
    assert list(frame.columns) == [
        "device_id",
        "kind",
        "name",
        "lon",
        "lat",
        "unit_code",
        "last_seen",
        "state",
        "metric",
        "value",
        "rule",
    ]
    assert str(frame["last_seen"].dtype) == "datetime64[us, UTC]"
    assert str(frame["value"].dtype) == "float64"
    assert str(frame["lon"].dtype) == "float64"


def test_within_a_commune_keeps_its_devices(store: SqliteStore, settings: Settings) -> None:
    frame = frame_for(store, settings, within="20194")
    assert frame["device_id"].tolist() == ["aq-1", "aq-2"]
    assert frame["state"].tolist() == ["alarm", "warning"]


def test_within_a_province_keeps_every_placed_device(
    store: SqliteStore, settings: Settings
) -> None:
    frame = frame_for(store, settings, within="48")
    assert frame["device_id"].tolist() == ["aq-1", "aq-2", "aq-3", "aq-4", "w-1"]
    assert frame["state"].tolist() == ["alarm", "warning", "offline", "offline", "warning"]


def test_within_takes_the_level_from_a_hierarchy(
    store: SqliteStore, settings: Settings, geography: Geography
) -> None:
    frame = frame_for(store, settings, within="20197", hierarchy=geography.hierarchy)
    assert frame["device_id"].tolist() == ["aq-3", "aq-4", "w-1"]
    with pytest.raises(KeyError, match="99999"):
        frame_for(store, settings, within="99999", hierarchy=geography.hierarchy)


def test_within_a_code_no_device_has_is_empty_but_typed(
    store: SqliteStore, settings: Settings
) -> None:
    frame = frame_for(store, settings, within="20200")
    assert frame.empty
    assert len(frame.columns) == 11
    assert str(frame["last_seen"].dtype) == "datetime64[us, UTC]"


class RecordingStore:
    """Passes reads to a real store and records their arguments."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.calls: list[tuple[MetricRef, str, datetime, UnitRef | None, str]] = []

    def latest_by_unit(
        self,
        metric: MetricRef,
        level: str,
        *,
        since: datetime,
        parent: UnitRef | None = None,
        aggregation: Any = "mean",
        until: datetime | None = None,
    ) -> list[UnitValue]:
        self.calls.append((metric, level, since, parent, aggregation))
        return self.inner.latest_by_unit(
            metric, level, since=since, parent=parent, aggregation=aggregation, until=until
        )


def test_one_query_per_metric_of_the_selected_kinds(store: SqliteStore, settings: Settings) -> None:
    recording = RecordingStore(store)
    frame_for(recording, settings, within="20194")  # air devices only
    since = NOW - LOOKBACK
    parent = UnitRef("commune", "20194")
    assert recording.calls == [  # catalogue order, water metrics skipped
        (MetricRef("air", "pm10"), "device", since, parent, "last"),
        (MetricRef("air", "pm25"), "device", since, parent, "last"),
    ]
    recording.calls.clear()
    frame_for(recording, settings)
    sensors = [m.ref for m in settings.metrics.values() if m.kind in {"air", "water"}]
    assert [call[0] for call in recording.calls] == sensors
    assert {call[3] for call in recording.calls} == {None}


def test_lookback_shorter_than_stale_after_is_refused(
    store: SqliteStore, settings: Settings
) -> None:
    with pytest.raises(ValueError, match="lookback"):
        device_frame(
            store,
            DEVICES,
            settings.metrics,
            RULES,
            now=NOW,
            stale_after=STALE_AFTER,
            lookback=timedelta(minutes=5),
        )
