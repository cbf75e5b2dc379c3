"""A strict parser of the Prometheus text exposition format 0.0.4, for tests.

Stricter than Prometheus itself where the spec says "must": a final line feed, HELP/TYPE
at most once per family and TYPE before its samples, families in one uninterrupted group,
only the three escapes in label values (two in HELP), unique (name, labels) per sample,
histogram buckets in increasing ``le`` order, cumulative, ending with ``+Inf`` equal to
``_count``, with ``_sum`` and ``_count`` present. Raises :class:`ExpositionError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
# Go's strconv.ParseFloat as Prometheus writes and reads it.
FLOAT = r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|Inf|NaN)"
_SAMPLE = re.compile(rf"^({NAME})(\{{.*\}})?[ \t]+({FLOAT})(?:[ \t]+(-?[0-9]+))?$")
_LABEL = re.compile(rf'\s*({LABEL_NAME})="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)')
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ExpositionError(ValueError):
    pass


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str | None = None
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def _unescape(text: str, allowed: str) -> str:
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            following = text[index + 1 : index + 2]
            if following not in allowed or not following:
                raise ExpositionError(f"bad escape \\{following} in {text!r}")
            out.append("\n" if following == "n" else following)
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _labels(block: str | None) -> dict[str, str]:
    if block is None:
        return {}
    inner, labels, position = block[1:-1], {}, 0
    while position < len(inner):
        match = _LABEL.match(inner, position)
        if match is None:
            raise ExpositionError(f"bad label set {block!r}")
        name, value = match[1], _unescape(match[2], '\\"n')
        if name in labels:
            raise ExpositionError(f"label {name} twice in {block!r}")
        labels[name] = value
        position = match.end()
    return labels


def _family_of(sample_name: str, families: dict[str, Family]) -> Family | None:
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample_name.removesuffix(suffix)
        if base != sample_name and base in families and families[base].type == "histogram":
            return families[base]
    return families.get(sample_name)


def parse(text: str) -> dict[str, Family]:
    if not text.endswith("\n"):
        raise ExpositionError("the last line must end with a line feed")
    families: dict[str, Family] = {}
    finished: set[str] = set()
    current: str | None = None
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()

    def enter(name: str) -> Family:
        nonlocal current
        if name != current:
            if name in finished:
                raise ExpositionError(f"{name} is not one uninterrupted group")
            if current is not None:
                finished.add(current)
            current = name
        return families.setdefault(name, Family(name))

    for number, line in enumerate(text[:-1].split("\n"), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            tokens = stripped[1:].split(None, 2)
            if tokens[:1] == ["HELP"]:
                if len(tokens) < 2 or not re.fullmatch(NAME, tokens[1]):
                    raise ExpositionError(f"line {number}: bad HELP")
                family = enter(tokens[1])
                if family.help is not None:
                    raise ExpositionError(f"line {number}: second HELP for {tokens[1]}")
                family.help = _unescape(tokens[2] if len(tokens) > 2 else "", "\\n")
            elif tokens[:1] == ["TYPE"]:
                parts = stripped[1:].split()
                if len(parts) != 3 or parts[2] not in _TYPES or not re.fullmatch(NAME, parts[1]):
                    raise ExpositionError(f"line {number}: bad TYPE {line!r}")
                family = enter(parts[1])
                if family.samples or family.type != "untyped":
                    raise ExpositionError(f"line {number}: TYPE of {parts[1]} too late or twice")
                family.type = parts[2]
            continue
        match = _SAMPLE.match(stripped)
        if match is None:
            raise ExpositionError(f"line {number}: not a sample: {line!r}")
        name, labels = match[1], _labels(match[2])
        family = enter((_family_of(name, families) or Family(name)).name)
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ExpositionError(f"line {number}: {name}{labels} twice")
        seen.add(key)
        family.samples.append((name, labels, float(match[3].replace("Inf", "inf"))))
    for family in families.values():
        if family.type == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: Family) -> None:
    groups: dict[tuple[tuple[str, str], ...], dict[str, list[tuple[float, float]]]] = {}
    for name, labels, value in family.samples:
        suffix = name.removeprefix(family.name)
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        group = groups.setdefault(rest, {"_bucket": [], "_sum": [], "_count": []})
        if suffix not in group:
            raise ExpositionError(f"{name} does not belong to histogram {family.name}")
        if suffix == "_bucket":
            if "le" not in labels:
                raise ExpositionError(f"{name}{labels} has no le")
            group[suffix].append((float(labels["le"].replace("Inf", "inf")), value))
        else:
            group[suffix].append((0.0, value))
    for rest, group in groups.items():
        buckets = group["_bucket"]
        if len(group["_sum"]) != 1 or len(group["_count"]) != 1 or not buckets:
            raise ExpositionError(f"{family.name}{rest}: needs buckets, one _sum, one _count")
        bounds = [bound for bound, _ in buckets]
        counts = [count for _, count in buckets]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ExpositionError(f"{family.name}{rest}: le not increasing {bounds}")
        if not math.isinf(bounds[-1]):
            raise ExpositionError(f"{family.name}{rest}: no +Inf bucket")
        if counts != sorted(counts):
            raise ExpositionError(f"{family.name}{rest}: buckets not cumulative {counts}")
        if counts[-1] != group["_count"][0][1]:
            raise ExpositionError(f"{family.name}{rest}: +Inf bucket differs from _count")
