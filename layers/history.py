"""Readings from before the 2025 reform, shown on today's units.

On 2025-07-01 Vietnam went from 63 provinces → 696 districts → 10,035 communes to 34
provinces → 3,321 communes. Readings stored before that carry the old codes in their level
tags (``province``, ``district``, ``commune``), and many new commune codes reuse an old
one (new 20194 Phường Hải Vân was formed from old 20194, 20195, 20293 and part of 20296),
so a tag value alone is ambiguous: the time of the reading decides. Before
:attr:`HistoryMap.reform_start` a code is an old code and goes through this map.

The map comes from ``layers/data/commune_mapping_pre2025_to_2025.csv`` (one row per new
commune and old unit, ``relation`` full or partial). Old units are communes, except five
island districts that had no communes (``old_level`` district): each is looked up by its
own level.

**Partial splits** (docs/design/009-history-mapping.md). An old unit marked ``partial``
went, in parts, into several new communes; readings do not say in which part they were
taken, so:

* ``mean``, ``min``, ``max``, ``last``: the old unit's value counts in every new commune
  that received part of it. Its value describes its area, and each new commune holds some
  of that area. A mean weighs each old unit by its device count.
* ``sum`` (counters, e.g. public-service dossiers): the value is divided equally among the
  new communes that received the old unit (each gets 1/n), so the country's total is
  unchanged. When the CSV has a ``weight`` column, a weight given on a row wins (e.g. a
  population share); the old unit's rows without one share what is left equally, and its
  weights must not add up to more than 1.

A new unit above the commune level (a province) combines every old unit mapped into any of
its communes, each old unit once: its weight for a sum is the total of its communes'
weights. A result is ``partial`` when some old unit in it lies only partly inside the new
unit (its other parts went to communes outside it); a province that received every part of
a split commune is not partial.

Pure: the only I/O is :meth:`HistoryMap.from_csv` (and :func:`load_history`, which calls it).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from core.errors import ConfigError
from core.settings import HistorySettings, Settings
from core.types import Aggregation, UnitValue
from layers.levels import Hierarchy

Relation = Literal["full", "partial"]
MAPPING_COLUMNS = ("new_commune_code", "old_level", "old_code", "relation")
SETTING = "hierarchy.history.mapping_file"
# Pre-2025 readings carry level tags named after the pre-2025 structure; the CSV's old_level
# values (commune, district) name those tags, and this one holds the old province code.
OLD_PROVINCE_LEVEL = "province"
# How a partial old unit is marked in MappedValue.sources_text(): "20194, 20296*".
PARTIAL_MARK = "*"
_WEIGHT_SLACK = 1e-9  # weights written with a few decimals may add up to 1.0000000001


@dataclass(frozen=True, slots=True)
class OldPart:
    """One old unit that a new commune was formed from, whole or in part."""

    level: str  # the old level: "commune", or "district" for an island district
    code: str
    relation: Relation
    weight: float  # this new commune's share of the old unit's value in a sum
    province: str  # the old province code ("" when the file does not say)


@dataclass(frozen=True, slots=True)
class Source:
    """An old unit whose value went into a mapped result."""

    level: str
    code: str
    partial: bool  # only part of the old unit lies inside the new unit


@dataclass(frozen=True, slots=True)
class MappedValue:
    """A new unit's value combined from old units' values."""

    code: str
    value: float
    ts: datetime  # the newest old-unit timestamp that went into ``value``
    devices: int  # devices behind ``value``, each old unit counted once
    partial: bool  # some source lies only partly inside this unit
    sources: tuple[Source, ...]  # sorted by code
    mapped: bool = True

    def sources_text(self) -> str:
        """ "20194, 20195, 20293, 20296*": the old codes, partial ones marked."""
        return ", ".join(
            source.code + (PARTIAL_MARK if source.partial else "") for source in self.sources
        )


class HistoryMap:
    """New commune code → the old units it was formed from, and back."""

    def __init__(self, parts: Mapping[str, Sequence[OldPart]], reform_start: datetime) -> None:
        if reform_start.tzinfo is None:
            raise ValueError(f"reform_start must be timezone-aware: {reform_start.isoformat()}")
        self.reform_start = reform_start
        self._parts = {code: tuple(found) for code, found in sorted(parts.items())}
        recipients: dict[tuple[str, str], list[tuple[str, OldPart]]] = defaultdict(list)
        for new_code, found in self._parts.items():
            for part in found:
                recipients[(part.level, part.code)].append((new_code, part))
        self._recipients = {key: tuple(rows) for key, rows in recipients.items()}

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_csv(cls, path: Path, *, reform_start: datetime | None = None) -> HistoryMap:
        """Read and check a mapping CSV (new_commune_code,old_level,old_code,relation and
        optionally old_province_code and weight). Raises ConfigError naming the file, the
        line and the bad value."""
        if not path.is_file():
            raise ConfigError(SETTING, str(path), "must name an existing CSV file")
        start = HistorySettings().reform_start if reform_start is None else reform_start
        rows: list[_Row] = []
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [column for column in MAPPING_COLUMNS if column not in columns]
            if missing:
                raise ConfigError(
                    SETTING,
                    str(path),
                    f"must have the columns {list(MAPPING_COLUMNS)} (missing {missing})",
                )
            for row in reader:
                # line_num is the physical line: right even after blank lines
                rows.append(_read_row(row, f"{SETTING} {path}:{reader.line_num}"))
        return cls(_parts_from_rows(rows), start)

    # ------------------------------------------------------------------ lookups

    @property
    def new_communes(self) -> tuple[str, ...]:
        return tuple(self._parts)

    @property
    def old_levels(self) -> tuple[str, ...]:
        """The old levels to query: "commune", and "district" for the island districts."""
        return tuple(sorted({level for level, _ in self._recipients}))

    def parts(self, new_commune: str) -> tuple[OldPart, ...]:
        """The old units new commune ``new_commune`` was formed from; () when unknown."""
        return self._parts.get(new_commune, ())

    def successors(self, level: str, code: str) -> tuple[str, ...]:
        """The new communes old unit ``code`` (at old ``level``) went into, whole or in part."""
        return tuple(new_code for new_code, _ in self._recipients.get((level, code), ()))

    def old_provinces(self, new_communes: Iterable[str]) -> set[str]:
        """The old provinces of the old units of these new communes (to narrow a query)."""
        return {part.province for code in new_communes for part in self.parts(code)}

    def is_historical(self, at: datetime) -> bool:
        """True when a reading taken at ``at`` carries pre-2025 codes."""
        return at < self.reform_start

    # ------------------------------------------------------------------ combining

    def combine(
        self,
        old_values: Mapping[str, Sequence[UnitValue]],
        aggregation: Aggregation,
        *,
        hierarchy: Hierarchy,
        level: str,
    ) -> list[MappedValue]:
        """Values per new unit of ``level`` (of the 2025 ``hierarchy``) from old units' values
        (``old_values`` by old level, as the store's ``latest_by_unit`` gives them, each
        aggregated over its devices with the same ``aggregation``). Old units not in the map,
        and new communes not in the hierarchy, are left out. Sorted by code."""
        if level not in hierarchy.levels:
            raise KeyError(f"no level {level!r} in {list(hierarchy.levels)}")
        # new unit → old unit → [total weight of its communes in the new unit, how many]
        inside: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(dict)
        known: dict[tuple[str, str], UnitValue] = {}
        for old_level, values in old_values.items():
            for value in values:
                key = (old_level, value.code)
                if key not in self._recipients:
                    continue
                known[key] = value
                for new_commune, part in self._recipients[key]:
                    target = _ancestor(hierarchy, new_commune, level)
                    if target is None:
                        continue
                    share = inside[target].setdefault(key, [0.0, 0.0])
                    share[0] += part.weight
                    share[1] += 1
        results = []
        for target, olds in sorted(inside.items()):
            weighted = []
            sources = []
            for key, (weight, count) in sorted(olds.items(), key=lambda item: item[0][1]):
                recipients = self._recipients[key]
                split = any(part.relation == "partial" for _, part in recipients)
                partly_inside = split and count < len(recipients)
                weighted.append((known[key], weight))
                sources.append(Source(key[0], key[1], partly_inside))
            results.append(
                MappedValue(
                    code=target,
                    value=_aggregate(weighted, aggregation),
                    ts=max(value.ts for value, _ in weighted),
                    devices=sum(value.devices for value, _ in weighted),
                    partial=any(source.partial for source in sources),
                    sources=tuple(sources),
                )
            )
        return results


def load_history(settings: Settings, hierarchy: Hierarchy) -> HistoryMap | None:
    """The configured map (None when ``hierarchy.history.mapping_file`` is null). Every new
    commune of the file must be a unit of ``hierarchy`` (the 2025 structure)."""
    history = settings.hierarchy.history
    if history.mapping_file is None:
        return None
    path = settings.path(history.mapping_file)
    found = HistoryMap.from_csv(path, reform_start=history.reform_start)
    unknown = [code for code in found.new_communes if hierarchy.get(code) is None]
    if unknown:
        raise ConfigError(
            SETTING,
            str(path),
            f"must name new communes of hierarchy.units_file; {len(unknown)} are not "
            f"(first {unknown[:5]}): is hierarchy.levels the 2025 structure?",
        )
    return found


# ---------------------------------------------------------------------- helpers

_RELATIONS: dict[str, Relation] = {"full": "full", "partial": "partial"}


@dataclass(frozen=True, slots=True)
class _Row:
    where: str  # "hierarchy.history.mapping_file <path>:<line>"
    new_code: str
    old_level: str
    old_code: str
    relation: Relation
    province: str
    weight: float | None  # None: the default (1 for full, 1/n for partial)


def _read_row(row: Mapping[str, str | None], where: str) -> _Row:
    def cell(name: str) -> str:
        return (row.get(name) or "").strip()

    for name in ("new_commune_code", "old_code"):
        if not cell(name).isdigit():
            raise ConfigError(f"{where} {name}", cell(name), "must be an administrative code")
    if not cell("old_level"):
        raise ConfigError(f"{where} old_level", cell("old_level"), "must name the old level")
    relation = _RELATIONS.get(cell("relation"))
    if relation is None:
        raise ConfigError(f"{where} relation", cell("relation"), "must be full or partial")
    weight: float | None = None
    if cell("weight"):
        try:
            weight = float(cell("weight"))
        except ValueError:
            weight = math.nan
        if not 0.0 <= weight <= 1.0:  # also refuses nan
            raise ConfigError(f"{where} weight", cell("weight"), "must be a number from 0 to 1")
    return _Row(
        where,
        cell("new_commune_code"),
        cell("old_level"),
        cell("old_code"),
        relation,
        cell("old_province_code"),
        weight,
    )


def _parts_from_rows(rows: list[_Row]) -> dict[str, list[OldPart]]:
    by_old: dict[tuple[str, str], list[_Row]] = defaultdict(list)
    for row in rows:
        by_old[(row.old_level, row.old_code)].append(row)
    parts: dict[str, list[OldPart]] = defaultdict(list)
    for (old_level, old_code), found in by_old.items():
        where = found[-1].where
        new_codes = [row.new_code for row in found]
        if len(set(new_codes)) != len(new_codes):
            raise ConfigError(f"{where} old_code", old_code, "must appear once per new commune")
        if len(found) > 1 and any(row.relation == "full" for row in found):
            raise ConfigError(
                f"{where} relation",
                "full",
                f"must be partial: {old_level} {old_code} went into the new communes {new_codes}",
            )
        given = [row.weight for row in found if row.weight is not None]
        if math.fsum(given) > 1.0 + _WEIGHT_SLACK:
            raise ConfigError(
                f"{where} weight", given, f"must add up to at most 1 for {old_level} {old_code}"
            )
        # Rows without a weight share what the given weights leave, equally: 1/n when none
        # is given.
        rest = max(0.0, 1.0 - math.fsum(given)) / max(1, len(found) - len(given))
        weights = [rest if row.weight is None else row.weight for row in found]
        for row, weight in zip(found, weights, strict=True):
            parts[row.new_code].append(
                OldPart(old_level, old_code, row.relation, weight, row.province)
            )
    return parts


def _ancestor(hierarchy: Hierarchy, new_commune: str, level: str) -> str | None:
    if hierarchy.get(new_commune) is None:
        return None
    return hierarchy.level_tags(new_commune).get(level)


def _aggregate(weighted: list[tuple[UnitValue, float]], aggregation: Aggregation) -> float:
    """One new unit's value from its old units' values and sum weights (not empty)."""
    values = [value for value, _ in weighted]
    if aggregation == "sum":
        return math.fsum(value.value * weight for value, weight in weighted)
    if aggregation == "mean":
        devices = sum(value.devices for value in values)
        if devices == 0:
            return math.fsum(value.value for value in values) / len(values)
        return math.fsum(value.value * value.devices for value in values) / devices
    if aggregation == "max":
        return max(value.value for value in values)
    if aggregation == "min":
        return min(value.value for value in values)
    # last: the newest old unit; a tie goes to the larger code, whatever the input order.
    return max(values, key=lambda value: (value.ts, value.code)).value
