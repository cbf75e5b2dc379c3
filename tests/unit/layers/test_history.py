"""The pre-2025 → 2025 map on the shipped CSV, and how old units' values combine.

Expected numbers are worked out by hand in the comments next to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings
from core.types import Aggregation, UnitValue
from layers.history import HistoryMap, MappedValue, load_history
from layers.levels import Hierarchy

REPO = Path(__file__).resolve().parents[3]
MAPPING = REPO / "layers" / "data" / "commune_mapping_pre2025_to_2025.csv"
REFORM = datetime(2025, 6, 30, 17, 0, tzinfo=UTC)  # 2025-07-01 00:00 in Hà Nội time
T = datetime(2025, 6, 15, 3, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture(scope="module")
def history() -> HistoryMap:
    return HistoryMap.from_csv(MAPPING)


def uv(code: str, value: float, *, devices: int = 1, minutes: int = 0) -> UnitValue:
    return UnitValue(code, value, T + minutes * MINUTE, devices)


def by_code(results: list[MappedValue]) -> dict[str, MappedValue]:
    return {result.code: result for result in results}


# Old units with data in Đà Nẵng: new 20194 Hải Vân = old 20194 + 20195 + 20293 + part of
# 20296; new 20197 Liên Chiểu = old 20197 + the other part of 20296; new 20333 Hoàng Sa =
# old island district 498.
OLD = {
    "commune": [
        uv("20194", 10.0, devices=1, minutes=1),
        uv("20195", 20.0, devices=3, minutes=2),
        uv("20296", 40.0, devices=2, minutes=3),
        uv("20197", 70.0, devices=1, minutes=4),
    ],
    "district": [
        uv("498", 5.0, devices=1, minutes=5),
        uv("490", 1000.0, devices=9, minutes=9),  # a district with communes: not an old part
    ],
}


# -- the shipped map ---------------------------------------------------------------------


def test_new_20194_was_formed_from_four_old_communes(history: HistoryMap) -> None:
    parts = history.parts("20194")
    assert [(p.level, p.code, p.relation) for p in parts] == [
        ("commune", "20194", "full"),
        ("commune", "20195", "full"),
        ("commune", "20293", "full"),
        ("commune", "20296", "partial"),
    ]
    assert [p.weight for p in parts] == [1.0, 1.0, 1.0, 0.5]  # 20296 went into 2 communes
    assert {p.province for p in parts} == {"48"}


def test_a_partial_old_unit_is_under_every_new_commune_that_got_part_of_it(
    history: HistoryMap,
) -> None:
    assert history.successors("commune", "20296") == ("20194", "20197")
    assert history.successors("commune", "20195") == ("20194",)
    assert history.successors("district", "498") == ("20333",)
    assert history.successors("commune", "498") == ()  # the level is part of the key
    # Hà Nội: old 00016 Ngọc Hà was split between new 00004 Ba Đình and others.
    assert "00004" in history.successors("commune", "00016")
    assert len(history.successors("commune", "00016")) >= 2


def test_the_whole_country_is_mapped(history: HistoryMap) -> None:
    assert len(history.new_communes) == 3321
    assert history.old_levels == ("commune", "district")
    assert history.old_provinces(["20194", "20669"]) == {"48", "49"}  # Quảng Nam merged in
    assert history.reform_start == REFORM


def test_the_reform_moment_decides_which_codes_a_reading_carries(history: HistoryMap) -> None:
    assert history.is_historical(REFORM - timedelta(milliseconds=1))
    assert not history.is_historical(REFORM)


# -- combining ---------------------------------------------------------------------------


def test_mean_is_weighted_by_devices_and_a_split_unit_counts_in_full(
    history: HistoryMap, national: Hierarchy
) -> None:
    result = by_code(history.combine(OLD, "mean", hierarchy=national, level="commune"))
    assert set(result) == {"20194", "20197", "20333"}  # old district 490 is not an old part
    hai_van = result["20194"]
    assert hai_van.value == pytest.approx(25.0)  # (10x1 + 20x3 + 40x2) / 6 = 150 / 6
    assert hai_van.devices == 6
    assert hai_van.ts == T + 3 * MINUTE
    assert (hai_van.mapped, hai_van.partial) == (True, True)
    assert hai_van.sources_text() == "20194, 20195, 20296*"
    lien_chieu = result["20197"]
    assert lien_chieu.value == pytest.approx(50.0)  # (70x1 + 40x2) / 3 = 150 / 3
    assert lien_chieu.sources_text() == "20197, 20296*"
    hoang_sa = result["20333"]
    assert (hoang_sa.value, hoang_sa.partial, hoang_sa.sources_text()) == (5.0, False, "498")


def test_sum_divides_a_split_unit_equally(history: HistoryMap, national: Hierarchy) -> None:
    result = by_code(history.combine(OLD, "sum", hierarchy=national, level="commune"))
    assert result["20194"].value == pytest.approx(50.0)  # 10 + 20 + 40 / 2
    assert result["20197"].value == pytest.approx(90.0)  # 70 + 40 / 2
    assert result["20333"].value == pytest.approx(5.0)
    total = sum(item.value for item in result.values())
    assert total == pytest.approx(145.0)  # 10 + 20 + 40 + 70 + 5: nothing counted twice


def test_province_counts_every_old_unit_once(history: HistoryMap, national: Hierarchy) -> None:
    mean = history.combine(OLD, "mean", hierarchy=national, level="province")
    assert [item.code for item in mean] == ["48"]
    [danang] = mean
    # (10x1 + 20x3 + 40x2 + 70x1 + 5x1) / 8 = 225 / 8; 20296's 2 devices once, not twice
    assert danang.value == pytest.approx(28.125)
    assert danang.devices == 8
    assert danang.partial is False  # all of 20296 lies inside province 48
    assert danang.sources_text() == "20194, 20195, 20197, 20296, 498"
    [summed] = history.combine(OLD, "sum", hierarchy=national, level="province")
    assert summed.value == pytest.approx(145.0)  # 40 / 2 + 40 / 2 = 40, once


@pytest.mark.parametrize(
    ("aggregation", "hai_van", "lien_chieu"),
    [
        ("max", 40.0, 70.0),
        ("min", 10.0, 40.0),
        ("last", 40.0, 70.0),  # 20296 at +3 min is newest in 20194; 20197 at +4 in 20197
    ],
)
def test_min_max_last(
    history: HistoryMap,
    national: Hierarchy,
    aggregation: Aggregation,
    hai_van: float,
    lien_chieu: float,
) -> None:
    result = by_code(history.combine(OLD, aggregation, hierarchy=national, level="commune"))
    assert (result["20194"].value, result["20197"].value) == (hai_van, lien_chieu)


def test_last_picks_the_newest_old_unit(history: HistoryMap, national: Hierarchy) -> None:
    values = {
        "commune": [uv("20194", 1.0, minutes=30), uv("20195", 2.0, minutes=10)],
        "district": [uv("498", 3.0, minutes=20)],
    }
    [danang] = history.combine(values, "last", hierarchy=national, level="province")
    assert (danang.value, danang.ts) == (1.0, T + 30 * MINUTE)


def test_old_units_without_data_are_not_sources(history: HistoryMap, national: Hierarchy) -> None:
    values = {"commune": [uv("20195", 8.0)]}
    [result] = history.combine(values, "mean", hierarchy=national, level="commune")
    assert (result.code, result.value, result.partial) == ("20194", 8.0, False)
    assert result.sources_text() == "20195"
    assert (
        history.combine(
            {"commune": [uv("99999", 1.0)]}, "mean", hierarchy=national, level="commune"
        )
        == []
    )


def test_an_unknown_level_is_refused(history: HistoryMap, national: Hierarchy) -> None:
    with pytest.raises(KeyError, match="district"):
        history.combine(OLD, "mean", hierarchy=national, level="district")


# -- the file ----------------------------------------------------------------------------

HEADER = "new_commune_code,old_level,old_code,relation,old_province_code"


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "mapping.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_weight_column_wins_for_sums(tmp_path: Path, national: Hierarchy) -> None:
    path = write(
        tmp_path,
        HEADER + ",weight",
        "20194,commune,20296,partial,48,0.8",
        "20197,commune,20296,partial,48,",  # empty: what 0.8 leaves, 0.2
        "20197,commune,20197,full,48,",  # empty: all of it
        "20197,commune,20195,partial,48,",  # no weight anywhere: 1/2
        "20194,commune,20195,partial,48,",
    )
    history = HistoryMap.from_csv(path, reform_start=REFORM)
    assert [p.weight for p in history.parts("20197")] == [pytest.approx(0.2), 1.0, 0.5]
    values = {"commune": [uv("20296", 100.0), uv("20197", 1.0)]}
    result = by_code(history.combine(values, "sum", hierarchy=national, level="commune"))
    assert result["20194"].value == pytest.approx(80.0)  # 100 x 0.8
    assert result["20197"].value == pytest.approx(21.0)  # 100 x 0.2 + 1
    mean = by_code(history.combine(values, "mean", hierarchy=national, level="commune"))
    assert mean["20194"].value == pytest.approx(100.0)  # weights are for sums only


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            ["20194,commune,20296,half,48"],
            "mapping.csv:2 relation must be full or partial: 'half'",
        ),
        (
            ["20194,commune,2029x,full,48"],
            "mapping.csv:2 old_code must be an administrative code: '2029x'",
        ),
        (
            ["20194,commune,20296,full,48", "20197,commune,20296,full,48"],
            "mapping.csv:3 relation must be partial: commune 20296 went into the new "
            "communes ['20194', '20197']: 'full'",
        ),
        (
            ["20194,commune,20296,partial,48", "20194,commune,20296,partial,48"],
            "mapping.csv:3 old_code must appear once per new commune: '20296'",
        ),
    ],
)
def test_bad_rows_name_file_line_and_value(tmp_path: Path, lines: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        HistoryMap.from_csv(write(tmp_path, HEADER, *lines))
    assert str(caught.value).startswith("hierarchy.history.mapping_file ")
    assert expected in str(caught.value)


def test_bad_weights_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mapping\.csv:2 weight must be a number from 0 to 1"):
        HistoryMap.from_csv(write(tmp_path, HEADER + ",weight", "20194,commune,1,full,48,1.5"))
    with pytest.raises(ConfigError, match="must add up to at most 1 for commune 20296"):
        HistoryMap.from_csv(
            write(
                tmp_path,
                HEADER + ",weight",
                "20194,commune,20296,partial,48,0.7",
                "20197,commune,20296,partial,48,0.7",
            )
        )


def test_missing_file_and_columns(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must name an existing CSV file"):
        HistoryMap.from_csv(tmp_path / "nowhere.csv")
    with pytest.raises(ConfigError, match=r"missing \['relation'\]"):
        HistoryMap.from_csv(write(tmp_path, "new_commune_code,old_level,old_code", "1,commune,2"))


def test_load_history_follows_the_settings(tmp_path: Path, national: Hierarchy) -> None:
    settings = load_settings(REPO / "config.yaml", environ={})
    loaded = load_history(settings, national)
    assert loaded is not None
    assert loaded.successors("commune", "20296") == ("20194", "20197")
    off = load_settings(
        REPO / "config.yaml", environ={"CITYOPS_HIERARCHY__HISTORY__MAPPING_FILE": "null"}
    )
    assert load_history(off, national) is None
    later = load_settings(
        REPO / "config.yaml", environ={"CITYOPS_HIERARCHY__HISTORY__REFORM_DATE": "2025-07-02"}
    )
    loaded_later = load_history(later, national)
    assert loaded_later is not None
    assert loaded_later.reform_start == REFORM + timedelta(days=1)


def test_load_history_refuses_a_map_for_another_hierarchy(three: Hierarchy) -> None:
    settings = load_settings(REPO / "config.yaml", environ={})
    with pytest.raises(ConfigError, match=r"must name new communes of hierarchy\.units_file"):
        load_history(settings, three)
