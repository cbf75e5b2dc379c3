"""Boundaries from a GIS office (GeoJSON, Shapefile, GeoPackage) → the project's prepared layer.

The prepared layer is what :func:`layers.boundaries.load_boundaries` reads: GeoJSON in
EPSG:4326, one MultiPolygon feature per unit with the properties ``code`` (a string
zero-padded to the level's ``code_length``), ``name`` (NFC) and ``parent_code``.
"""

from __future__ import annotations

import math
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from pyproj.exceptions import CRSError

from core.errors import CityOpsError
from core.settings import LevelSettings

PREPARED_CRS = "EPSG:4326"
_POLYGONAL = ("Polygon", "MultiPolygon")


class LayerFileError(CityOpsError):
    """A boundary file cannot be used at all (not found, not geodata, missing field, no CRS).
    The message names the file and says what to do; the CLI prints it on one line."""


@dataclass(frozen=True, slots=True)
class FieldNames:
    """Which attribute of the source holds the code, the name and the parent's code."""

    code: str = "code"
    name: str | None = "name"
    parent: str | None = "parent_code"


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What :func:`import_boundaries` did, for the operator."""

    source: Path
    layer: str | None
    out: Path
    features: int
    source_crs: str  # as found ("EPSG:3405"), or "none (assumed EPSG:4326)"
    fields: FieldNames
    padded_codes: int  # codes that were zero-padded to the level's code_length
    repaired: tuple[str, ...]  # codes whose geometry was invalid and made valid
    skipped: tuple[int, ...]  # source feature positions without a polygon geometry


def read_source(
    path: Path, *, layer: str | None = None, source_crs: str | None = None
) -> tuple[gpd.GeoDataFrame, str]:
    """Read any file pyogrio can (GeoJSON, Shapefile, GeoPackage ...) and return it in
    EPSG:4326 with a description of the CRS it had. Raises LayerFileError."""
    if not path.exists():
        raise LayerFileError(f"{path}: no such file / không có tệp này")
    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # pyogrio raises DataSourceError and others for non-geodata
        raise LayerFileError(f"{path}: not a readable geodata file ({_first_line(exc)})") from exc
    names = [str(name) for name in layers[:, 0]]
    if layer is None and len(names) > 1:
        raise LayerFileError(f"{path}: has several layers {names}: choose one with --layer NAME")
    if layer is not None and layer not in names:
        raise LayerFileError(f"{path}: has no layer {layer!r} (layers: {names})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyogrio warns about odd-but-readable files
            frame = gpd.read_file(path, layer=layer or names[0], engine="pyogrio")
    except Exception as exc:
        raise LayerFileError(f"{path}: not a readable geodata file ({_first_line(exc)})") from exc
    if len(frame) == 0:
        raise LayerFileError(f"{path}: has no features")
    if source_crs is not None:
        try:
            frame = frame.set_crs(source_crs, allow_override=True)
        except CRSError as exc:
            raise LayerFileError(f"--source-crs {source_crs!r} is not a known CRS") from exc
    if frame.crs is None:
        west, south, east, north = (float(value) for value in frame.total_bounds)
        if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
            raise LayerFileError(
                f"{path}: has no CRS (a Shapefile without its .prj?) and its coordinates "
                f"({west:.0f}, {south:.0f}, {east:.0f}, {north:.0f}) are not longitude/latitude:"
                " give the CRS with --source-crs, e.g. EPSG:3405 for VN-2000 / UTM 48N"
            )
        return frame.set_crs(PREPARED_CRS), f"none (assumed {PREPARED_CRS})"
    found = frame.crs.to_string()
    if frame.crs.to_epsg() != 4326:
        try:
            frame = frame.to_crs(PREPARED_CRS)
        except Exception as exc:
            raise LayerFileError(f"{path}: cannot reproject from {found} ({exc})") from exc
    return frame, found


def resolve_field(frame: gpd.GeoDataFrame, wanted: str, path: Path, option: str) -> str:
    """The column called ``wanted``; case-insensitive when unambiguous (Shapefiles often
    have MA_XA where the office's documentation says ma_xa). Raises LayerFileError."""
    if wanted in frame.columns:
        return wanted
    matches = [str(c) for c in frame.columns if str(c).casefold() == wanted.casefold()]
    if len(matches) == 1:
        return matches[0]
    fields = [str(c) for c in frame.columns if c != frame.geometry.name]
    raise LayerFileError(f"{path}: has no field {wanted!r} ({option}); its fields are {fields}")


def normalise_code(value: object, length: int) -> str | None:
    """A code as the hierarchy spells it: 20194.0 → "20194", 4 → "00004" (length 5), text
    NFC and stripped. None for an empty value. Longer or non-digit codes stay as they are
    (``layers check`` then reports them as not in the hierarchy)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = unicodedata.normalize("NFC", str(value)).strip()
    if not text:
        return None
    if text.isdigit() and len(text) < length:
        return text.zfill(length)
    return text


def normalise_name(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return " ".join(unicodedata.normalize("NFC", str(value)).split())


def repair(geometries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(geometries made valid, mask of those that were invalid). method="structure" keeps
    polygons polygonal: a bow-tie becomes two triangles, never a line."""
    invalid = ~shapely.is_valid(geometries)
    if invalid.any():
        geometries = geometries.copy()
        geometries[invalid] = shapely.make_valid(
            geometries[invalid], method="structure", keep_collapsed=False
        )
    return geometries, invalid


def as_multipolygon(geometry: shapely.Geometry | None) -> shapely.MultiPolygon | None:
    """Polygon parts only, as one MultiPolygon (the project's files hold nothing else)."""
    if geometry is None or geometry.is_empty:
        return None
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in _POLYGONAL]
    polygons = [q for p in parts for q in shapely.get_parts(p) if not q.is_empty]
    return shapely.MultiPolygon(polygons) if polygons else None


def import_boundaries(
    source: Path,
    out: Path,
    *,
    level: str,
    levels: list[LevelSettings],
    fields: FieldNames,
    layer: str | None = None,
    source_crs: str | None = None,
) -> ImportReport:
    """Read ``source``, map its fields, reproject, normalise and repair; write ``out``.

    Raises LayerFileError when the file cannot be used (nothing is written then)."""
    names = [item.name for item in levels]
    if level not in names:
        raise LayerFileError(f"--level {level!r} must be one of hierarchy.levels {names}")
    position = names.index(level)
    code_length = levels[position].code_length
    parent_length = levels[position - 1].code_length if position > 0 else None
    frame, found_crs = read_source(source, layer=layer, source_crs=source_crs)
    code_column = resolve_field(frame, fields.code, source, "--code-field")
    name_column = resolve_field(frame, fields.name, source, "--name-field") if fields.name else None
    parent_column = (
        resolve_field(frame, fields.parent, source, "--parent-field")
        if fields.parent and parent_length is not None
        else None
    )
    codes = [normalise_code(value, code_length) for value in frame[code_column]]
    empty = [index for index, code in enumerate(codes) if code is None]
    if empty:
        raise LayerFileError(
            f"{source}: {len(empty)} features have no code in field {code_column!r} "
            f"(first: feature {empty[0]})"
        )
    raw_codes = [str(value).strip() for value in frame[code_column]]
    padded = sum(
        1
        for raw, code in zip(raw_codes, codes, strict=True)
        if code != raw and code != raw.removesuffix(".0")
    )
    geometries, invalid = repair(np.asarray(frame.geometry.values, dtype=object))
    shapes = [as_multipolygon(geometry) for geometry in geometries]
    keep = [index for index, shape in enumerate(shapes) if shape is not None]
    skipped = tuple(index for index, shape in enumerate(shapes) if shape is None)
    if not keep:
        raise LayerFileError(f"{source}: has no polygon geometries")
    parents = (
        [normalise_code(value, parent_length or 0) for value in frame[parent_column]]
        if parent_column
        else [None] * len(frame)
    )
    prepared = gpd.GeoDataFrame(
        {
            "code": [codes[i] for i in keep],
            "name": [normalise_name(frame[name_column].iloc[i]) for i in keep]
            if name_column
            else [""] * len(keep),
            "parent_code": [parents[i] for i in keep],
        },
        geometry=[shapes[i] for i in keep],
        crs=PREPARED_CRS,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()  # the GeoJSON driver refuses to overwrite
    prepared.to_file(out, driver="GeoJSON", engine="pyogrio", layer_options={"RFC7946": "YES"})
    return ImportReport(
        source=source,
        layer=layer,
        out=out,
        features=len(keep),
        source_crs=found_crs,
        fields=FieldNames(code_column, name_column, parent_column),
        padded_codes=padded,
        repaired=tuple(str(codes[i]) for i in np.flatnonzero(invalid)),
        skipped=skipped,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
