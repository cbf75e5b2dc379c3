"""Check a prepared boundary layer against the hierarchy and itself: a report, no printing.

Severity decides the exit code of ``cityops layers check``:

* ``error``: the dashboard refuses the file or would place units wrongly (a code not in the
  hierarchy at that level, a duplicate code, a parent code that does not exist, a geometry
  that is not a polygon or cannot be repaired). Exit 1.
* ``warning``: the file loads and works, but the map has holes, overlaps or stray bits
  (missing units, repaired geometries, slivers, gaps, overlaps, borders that do not match,
  units outside their parent). Exit 0, so a GIS officer can ship and fix later.

Areas are measured in EPSG:6933 (WGS 84 equal-area cylindrical), in square metres.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

from layers.importer import LayerFileError, read_source, repair, resolve_field
from layers.levels import Hierarchy

EQUAL_AREA_CRS = "EPSG:6933"
DEFAULT_MIN_AREA_M2 = 100.0  # 10 m × 10 m: below the 1e-5° (≈1 m) grid noise of traced files

Severity = Literal["error", "warning", "info"]

# kind → severity; the order is the order of the report.
KINDS: dict[str, Severity] = {
    "not_in_hierarchy": "error",
    "duplicate_code": "error",
    "bad_parent": "error",
    "not_polygon": "error",
    "unrepairable": "error",
    "missing": "warning",
    "parent_mismatch": "warning",
    "repaired": "warning",
    "sliver": "warning",
    "gap": "warning",
    "overlap": "warning",
    "unmatched_edges": "warning",
    "outside_parent": "warning",
    "parent_not_in_layer": "warning",
    "outside_scope": "info",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: the units concerned, and where and how big when it is an area."""

    kind: str
    codes: tuple[str, ...] = ()
    area_m2: float | None = None
    where: tuple[float, float] | None = None  # (lon, lat) of a point inside the area
    detail: str = ""

    @property
    def severity(self) -> Severity:
        return KINDS[self.kind]


@dataclass(frozen=True, slots=True)
class CheckReport:
    path: Path
    level: str
    features: int
    scope: str | None
    min_area_m2: float
    parent_layer: Path | None
    findings: tuple[Finding, ...] = field(default=())

    def of(self, kind: str) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == kind]

    @property
    def errors(self) -> int:
        return sum(1 for finding in self.findings if finding.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for finding in self.findings if finding.severity == "warning")

    @property
    def exit_code(self) -> int:
        """0 usable (warnings allowed), 1 not usable as it is."""
        return 1 if self.errors else 0


def check_layer(
    path: Path,
    level: str,
    hierarchy: Hierarchy,
    *,
    scope: str | None = None,
    parent_layer: Path | None = None,
    min_area_m2: float = DEFAULT_MIN_AREA_M2,
) -> CheckReport:
    """Every problem of the layer at ``path`` (a ``layers.boundaries.<level>`` file).

    Raises LayerFileError when the file cannot be read or has no ``code`` field."""
    if level not in hierarchy.levels:
        raise LayerFileError(f"--level {level!r} must be one of {list(hierarchy.levels)}")
    if scope is not None and hierarchy.get(scope) is None:
        raise LayerFileError(f"scope {scope!r} is not the code of a unit in the hierarchy")
    frame, _ = read_source(path)
    code_column = resolve_field(frame, "code", path, "property code")
    codes = [str(value).strip() for value in frame[code_column]]
    findings: list[Finding] = []
    findings += _code_findings(codes, level, hierarchy, scope)
    parents = _file_parents(frame, codes, hierarchy)
    findings += _parent_findings(codes, parents, level, hierarchy)

    geometries, invalid = repair(np.asarray(frame.geometry.values, dtype=object))
    polygonal = np.array([_is_polygonal(geometry) for geometry in geometries], dtype=bool)
    for index in np.flatnonzero(~polygonal):
        kind = "unrepairable" if invalid[index] else "not_polygon"
        shown = None if geometries[index] is None else geometries[index].geom_type
        findings.append(Finding(kind, (codes[index],), detail=str(shown)))
    repaired = [codes[i] for i in np.flatnonzero(invalid & polygonal)]
    if repaired:
        findings.append(Finding("repaired", tuple(repaired)))

    keep = np.flatnonzero(polygonal)
    kept_codes = [codes[i] for i in keep]
    projected = gpd.GeoSeries(geometries[keep], crs=frame.crs).to_crs(EQUAL_AREA_CRS).to_numpy()
    to_lonlat = Transformer.from_crs(EQUAL_AREA_CRS, "EPSG:4326", always_xy=True)
    findings += _slivers(projected, kept_codes, min_area_m2, to_lonlat)
    findings += _coverage(projected, kept_codes, min_area_m2, to_lonlat)
    if parent_layer is not None:
        kept_parents = [parents[i] for i in keep]
        findings += _outside_parent(
            projected, kept_codes, kept_parents, parent_layer, min_area_m2, to_lonlat
        )
    order = list(KINDS)
    findings.sort(key=lambda finding: (order.index(finding.kind), -(finding.area_m2 or 0.0)))
    return CheckReport(
        path=path,
        level=level,
        features=len(frame),
        scope=scope,
        min_area_m2=min_area_m2,
        parent_layer=parent_layer,
        findings=tuple(findings),
    )


def _code_findings(
    codes: list[str], level: str, hierarchy: Hierarchy, scope: str | None
) -> list[Finding]:
    findings = [
        Finding("duplicate_code", (code,), detail=str(count))
        for code, count in sorted(Counter(codes).items())
        if count > 1
    ]
    present = set(codes)
    outside: list[str] = []
    for code in sorted(present):
        unit = hierarchy.get(code)
        if unit is None or unit.level != level:
            findings.append(Finding("not_in_hierarchy", (code,)))
        elif scope is not None and not hierarchy.is_within(code, scope):
            outside.append(code)
    if outside:
        findings.append(Finding("outside_scope", tuple(outside)))
    wanted = [
        unit
        for unit in hierarchy.units_at(level)
        if scope is None or hierarchy.is_within(unit.code, scope)
    ]
    findings += [Finding("missing", (unit.code,)) for unit in wanted if unit.code not in present]
    return findings


def _file_parents(
    frame: gpd.GeoDataFrame, codes: list[str], hierarchy: Hierarchy
) -> list[str | None]:
    """The parent each feature claims (property parent_code), else the hierarchy's."""
    if "parent_code" in frame.columns:
        return [
            None if value is None or str(value).strip() in ("", "None", "nan") else str(value)
            for value in frame["parent_code"]
        ]
    return [
        (unit.parent_code if (unit := hierarchy.get(code)) is not None else None) for code in codes
    ]


def _parent_findings(
    codes: list[str], parents: list[str | None], level: str, hierarchy: Hierarchy
) -> list[Finding]:
    position = hierarchy.levels.index(level)
    if position == 0:
        return []
    parent_level = hierarchy.levels[position - 1]
    findings = []
    for code, parent in zip(codes, parents, strict=True):
        unit = hierarchy.get(code)
        parent_unit = None if parent is None else hierarchy.get(parent)
        if parent_unit is None or parent_unit.level != parent_level:
            findings.append(Finding("bad_parent", (code,), detail=str(parent)))
        elif unit is not None and unit.parent_code != parent:
            findings.append(
                Finding("parent_mismatch", (code,), detail=f"{parent}≠{unit.parent_code}")
            )
    return findings


def _slivers(
    geometries: np.ndarray, codes: list[str], min_area_m2: float, to_lonlat: Transformer
) -> list[Finding]:
    parts, owner = shapely.get_parts(geometries, return_index=True)
    areas = shapely.area(parts)
    findings = []
    for index in np.flatnonzero(areas < min_area_m2):
        where = _xy(parts[index], to_lonlat)
        findings.append(Finding("sliver", (codes[owner[index]],), float(areas[index]), where))
    return findings


def _coverage(
    geometries: np.ndarray, codes: list[str], min_area_m2: float, to_lonlat: Transformer
) -> list[Finding]:
    """Overlaps, gaps and unmatched borders between neighbours."""
    findings: list[Finding] = []
    if shapely.coverage_is_valid(geometries):
        union = shapely.coverage_union_all(geometries)
    else:
        edges = shapely.coverage_invalid_edges(geometries)
        bad = np.flatnonzero(~shapely.is_empty(edges))
        findings.append(Finding("unmatched_edges", tuple(codes[i] for i in bad)))
        findings += _overlaps(geometries, codes, bad, min_area_m2, to_lonlat)
        union = shapely.union_all(geometries)
    tree = shapely.STRtree(geometries)
    for polygon in shapely.get_parts(union):
        for ring in polygon.interiors:
            hole = shapely.Polygon(ring)
            if hole.area >= min_area_m2:
                around = tuple(codes[i] for i in sorted(tree.query(hole, predicate="intersects")))
                findings.append(Finding("gap", around, hole.area, _xy(hole, to_lonlat)))
    return findings


def _overlaps(
    geometries: np.ndarray,
    codes: list[str],
    candidates: np.ndarray,
    min_area_m2: float,
    to_lonlat: Transformer,
) -> list[Finding]:
    """Only units with unmatched edges can overlap: an overlap's outline is made of edges
    that lie inside the neighbour, so both sides have them."""
    subset = geometries[candidates]
    tree = shapely.STRtree(subset)
    left, right = tree.query(subset, predicate="intersects")
    pairs = left < right
    left, right = left[pairs], right[pairs]
    shared = shapely.intersection(subset[left], subset[right])
    areas = shapely.area(shared)
    findings = []
    for index in np.flatnonzero(areas >= min_area_m2):
        pair = (codes[candidates[left[index]]], codes[candidates[right[index]]])
        findings.append(
            Finding("overlap", pair, float(areas[index]), _xy(shared[index], to_lonlat))
        )
    return findings


def _outside_parent(
    geometries: np.ndarray,
    codes: list[str],
    parents: list[str | None],
    parent_layer: Path,
    min_area_m2: float,
    to_lonlat: Transformer,
) -> list[Finding]:
    frame, _ = read_source(parent_layer)
    column = resolve_field(frame, "code", parent_layer, "property code")
    parent_geometries, _ = repair(
        np.asarray(frame.to_crs(EQUAL_AREA_CRS).geometry.values, dtype=object)
    )
    by_code = dict(
        zip((str(code).strip() for code in frame[column]), parent_geometries, strict=True)
    )
    findings = []
    for code, parent, geometry in zip(codes, parents, geometries, strict=True):
        outline = by_code.get(parent or "")
        if outline is None:
            findings.append(Finding("parent_not_in_layer", (code,), detail=str(parent)))
            continue
        shapely.prepare(outline)
        if shapely.covers(outline, geometry):
            continue
        outside = shapely.difference(geometry, outline)
        if outside.area >= min_area_m2:
            findings.append(
                Finding(
                    "outside_parent", (code,), outside.area, _xy(outside, to_lonlat), parent or ""
                )
            )
    return findings


def _xy(geometry: shapely.Geometry, to_lonlat: Transformer) -> tuple[float, float]:
    point = shapely.point_on_surface(geometry)
    lon, lat = to_lonlat.transform(point.x, point.y)
    return (float(lon), float(lat))


def _is_polygonal(geometry: shapely.Geometry | None) -> bool:
    return (
        geometry is not None
        and not geometry.is_empty
        and geometry.geom_type in ("Polygon", "MultiPolygon")
    )
