"""The administrative hierarchy as data: levels from configuration, units from a CSV.

Nothing here knows the names "province" or "commune": the 2025 structure (province →
commune) and the pre-2025 one (province → district → commune) are both just lists of
levels. Units are joined by official code, never by name.
"""

from __future__ import annotations

import csv
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError
from core.settings import LevelSettings

UNIT_COLUMNS = ("level", "code", "parent_code", "name", "full_name", "name_en", "unit_type")

# English words for the Vietnamese unit types, for "Hai Van Ward, Da Nang City".
_TYPE_EN = {
    "Phường": "Ward",
    "Xã": "Commune",
    "Thị trấn": "Township",
    "Đặc khu tại hải đảo": "Special Zone",
    "Đặc khu": "Special Zone",
    "Quận": "District",
    "Huyện": "District",
    "Thị xã": "Town",
    "Thành phố": "City",
    "Thành phố trực thuộc trung ương": "City",
    "Tỉnh": "Province",
}


@dataclass(frozen=True, slots=True)
class Unit:
    """One administrative unit."""

    code: str
    level: str
    parent_code: str | None
    name: str
    full_name: str
    name_en: str
    unit_type: str


def fold(text: str) -> str:
    """Accent- and case-insensitive form for search: "Hoà Khánh" and "Hòa Khánh" → "hoa khanh"."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return " ".join(stripped.casefold().split())


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


class Hierarchy:
    """Levels (top first) and every unit, with parent/child navigation."""

    def __init__(self, levels: Sequence[LevelSettings], units: Sequence[Unit]) -> None:
        self.levels: tuple[str, ...] = tuple(level.name for level in levels)
        self._level_settings = {level.name: level for level in levels}
        self._units: dict[str, Unit] = {unit.code: unit for unit in units}
        self._children: dict[str | None, list[Unit]] = defaultdict(list)
        for unit in units:
            self._children[unit.parent_code].append(unit)
        for siblings in self._children.values():
            siblings.sort(key=lambda unit: unit.code)
        self._folded = [(fold(unit.name), fold(unit.full_name), unit) for unit in units]

    @classmethod
    def from_csv(cls, levels: Sequence[LevelSettings], path: Path) -> Hierarchy:
        """Read and check a units CSV (level,code,parent_code,name,full_name,name_en,unit_type).

        Raises ConfigError naming the file, the line and the bad value."""
        if not path.exists():
            raise ConfigError("hierarchy.units_file", str(path), "must name an existing CSV file")
        names = [level.name for level in levels]
        index = {name: position for position, name in enumerate(names)}
        units: list[Unit] = []
        seen: dict[str, int] = {}
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in UNIT_COLUMNS if column not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(
                    "hierarchy.units_file",
                    str(path),
                    f"must have the columns {list(UNIT_COLUMNS)} (missing {missing})",
                )
            for row in reader:
                line = reader.line_num  # physical line: right even after blank lines
                where = f"hierarchy.units_file {path}:{line}"
                level = (row["level"] or "").strip()
                if level not in index:
                    raise ConfigError(f"{where} level", level, f"must be one of {names}")
                code = (row["code"] or "").strip()
                length = levels[index[level]].code_length
                if len(code) != length or not code.isdigit():
                    raise ConfigError(
                        f"{where} code", code, f"must be {length} digits for level {level}"
                    )
                if code in seen:
                    raise ConfigError(
                        f"{where} code", code, f"must be unique (also line {seen[code]})"
                    )
                seen[code] = line
                parent = (row["parent_code"] or "").strip() or None
                if (index[level] == 0) != (parent is None):
                    raise ConfigError(
                        f"{where} parent_code",
                        parent,
                        "must be empty for the top level and set for every other level",
                    )
                name, full_name = _nfc(row["name"] or ""), _nfc(row["full_name"] or "")
                if not name or not full_name:
                    raise ConfigError(
                        f"{where} name", row["name"], "must be set, and so must full_name"
                    )
                units.append(
                    Unit(
                        code=code,
                        level=level,
                        parent_code=parent,
                        name=name,
                        full_name=full_name,
                        name_en=(row["name_en"] or "").strip(),
                        unit_type=_nfc(row["unit_type"] or ""),
                    )
                )
        by_code = {unit.code: unit for unit in units}
        for unit in units:
            if unit.parent_code is None:
                continue
            parent_unit = by_code.get(unit.parent_code)
            expected = names[index[unit.level] - 1]
            if parent_unit is None or parent_unit.level != expected:
                raise ConfigError(
                    f"hierarchy.units_file {path}:{seen[unit.code]} parent_code",
                    unit.parent_code,
                    f"must be the code of a {expected} in the file",
                )
        return cls(levels, units)

    # ------------------------------------------------------------------ navigation

    def get(self, code: str) -> Unit | None:
        return self._units.get(code)

    def unit(self, code: str) -> Unit:
        try:
            return self._units[code]
        except KeyError:
            raise KeyError(f"no administrative unit with code {code!r}") from None

    def parent(self, code: str) -> Unit | None:
        parent_code = self.unit(code).parent_code
        return None if parent_code is None else self._units[parent_code]

    def ancestors(self, code: str) -> list[Unit]:
        """Top first, ending with the unit itself."""
        chain = [self.unit(code)]
        while chain[-1].parent_code is not None:
            chain.append(self._units[chain[-1].parent_code])
        return chain[::-1]

    def children(self, code: str) -> list[Unit]:
        return list(self._children.get(code, []))

    def is_within(self, code: str, ancestor: str) -> bool:
        """True when ``code`` is ``ancestor`` or lies inside it."""
        return any(unit.code == ancestor for unit in self.ancestors(code))

    def units_at(self, level: str, parent: str | None = None) -> list[Unit]:
        """Every unit of a level, optionally only those inside ``parent`` (any ancestor)."""
        if level not in self.levels:
            raise KeyError(f"no level {level!r} in {list(self.levels)}")
        found = [unit for unit in self._units.values() if unit.level == level]
        if parent is not None:
            found = [unit for unit in found if self.is_within(unit.code, parent)]
        return sorted(found, key=lambda unit: unit.code)

    def level_tags(self, code: str) -> dict[str, str]:
        """{"province": "48", "commune": "20194"}: the code of every level down to the unit."""
        return {unit.level: unit.code for unit in self.ancestors(code)}

    def level_label(self, level: str, lang: str = "vi") -> str:
        return self._level_settings[level].label.get(lang)

    def full_name(self, code: str, lang: str = "vi") -> str:
        """ "Phường Hải Vân, Thành phố Đà Nẵng"; in English "Hai Van Ward, Da Nang City"."""
        chain = self.ancestors(code)[::-1]
        if lang == "vi":
            return ", ".join(unit.full_name for unit in chain)
        return ", ".join(_english_name(unit) for unit in chain)

    def search(self, text: str, limit: int = 20) -> list[Unit]:
        """Accent-insensitive search by name. Names that start with the text come first,
        then names that contain it; each group top level first, then by code."""
        needle = fold(text)
        if not needle:
            return []
        starts, contains = [], []
        for name, full_name, unit in self._folded:
            if name.startswith(needle) or full_name.startswith(needle):
                starts.append(unit)
            elif needle in name or needle in full_name:
                contains.append(unit)
        rank = {level: position for position, level in enumerate(self.levels)}

        def by_level_then_code(unit: Unit) -> tuple[int, str]:
            return rank[unit.level], unit.code

        ordered = sorted(starts, key=by_level_then_code) + sorted(contains, key=by_level_then_code)
        return ordered[:limit]

    def __len__(self) -> int:
        return len(self._units)


def _english_name(unit: Unit) -> str:
    kind = _TYPE_EN.get(unit.unit_type)
    name = unit.name_en or unit.name
    return f"{name} {kind}" if kind else name
