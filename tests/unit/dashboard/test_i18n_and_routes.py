"""The i18n table and formatting, and the URL parsing of the dashboard."""

from __future__ import annotations

import ast
import string
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.text import format_number
from core.text import format_shortest as format_limit
from dashboard.i18n import (
    TEXTS,
    as_lang,
    format_clock,
    format_when,
    text,
)
from dashboard.routes import (
    COUNTRY,
    Selection,
    area_href,
    parse_location,
    place_href,
    unit_link,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
VIEWS = Path(__file__).resolve().parents[3] / "dashboard" / "views"


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_every_text_has_vietnamese_and_english_with_the_same_placeholders(key: str) -> None:
    vi, en = TEXTS[key]
    assert vi.strip()
    assert en.strip()
    assert unicodedata.is_normalized("NFC", vi), f"{key}: Vietnamese text is not NFC"
    assert _fields(vi) == _fields(en), key


def test_text_fills_placeholders_and_defaults_to_vietnamese() -> None:
    assert text("updated_at", "vi", time="08:00:00") == "Cập nhật lúc 08:00:00"
    assert text("updated_at", "en", time="08:00:00") == "Updated at 08:00:00"
    assert text("no_data", "fr") == "Không có dữ liệu"
    with pytest.raises(KeyError):
        text("no_such_key", "vi")


def test_text_output_is_nfc_even_from_decomposed_values() -> None:
    decomposed = unicodedata.normalize("NFD", "Hải Vân")
    shown = text("unknown_unit", "vi", code=decomposed)
    assert unicodedata.is_normalized("NFC", shown)
    assert "Hải Vân" in shown


@pytest.mark.parametrize(
    ("value", "decimals", "lang", "expected"),
    [
        (35.25, 1, "vi", "35,2"),  # exactly representable: half rounds to even
        (35.26, 1, "en", "35.3"),
        (1234.5, 1, "vi", "1.234,5"),
        (1234.5, 1, "en", "1,234.5"),
        (2.1, 2, "vi", "2,10"),
        (-0.5, 1, "vi", "-0,5"),
    ],
)
def test_format_number(value: float, decimals: int, lang: str, expected: str) -> None:
    assert format_number(value, decimals, lang) == expected


def test_format_limit_uses_only_the_decimals_it_needs() -> None:
    assert format_limit(25.0, "vi") == "25"
    assert format_limit(1.5, "vi") == "1,5"
    assert format_limit(1.5, "en") == "1.5"
    assert format_limit(0.25, "en") == "0.25"


def test_times_are_shown_in_local_time() -> None:
    ts = datetime(2026, 11, 2, 17, 30, 5, tzinfo=UTC)
    assert format_clock(ts, HCM) == "00:30:05"
    assert format_when(ts, HCM) == "00:30 03/11"


def test_as_lang() -> None:
    assert as_lang("en") == "en"
    assert as_lang("vi", default="en") == "vi"
    assert as_lang("de", default="en") == "en"
    assert as_lang(None) == "vi"


def test_views_hold_no_vietnamese_literals() -> None:
    """User text comes from the i18n table (or a page's own ``add_texts`` table of
    (Vietnamese, English) pairs) or the settings, never from a view's code."""
    offenders = []
    for path in VIEWS.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        tables = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "add_texts"
            for inner in ast.walk(node)
        }
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and id(node) not in tables
                and any(ord(char) > 127 and char.isalpha() for char in node.value)
            ):
                offenders.append(f"{path.name}:{node.lineno} {node.value!r}")
    assert offenders == []


@pytest.mark.parametrize(
    ("pathname", "search", "expected"),
    [
        ("/", "", Selection()),
        ("/", "?unit=20194&metric=pm25", Selection(unit="20194", metric="pm25")),
        ("/", "?unit=20260&metric=water_level&lang=en", Selection("20260", "water_level", "en")),
        ("/area/commune/20194", "", Selection(unit="20194")),
        ("/area/commune/20194/", "?metric=pm10", Selection(unit="20194", metric="pm10")),
        ("/", "?unit=<script>", Selection()),  # not a code: dropped
        ("/", "?unit=&lang=fr", Selection()),
        (None, None, Selection()),
        ("/", "?place=48", Selection(place="48")),
        ("/", "?place=", Selection(place=COUNTRY)),  # the country, explicitly
        ("/", "?place=%3Cb%3E", Selection()),  # not a code: dropped
        ("/cityops/area/district/490", "?place=48", Selection(unit="490", place="48")),
    ],
)
def test_parse_location(pathname: str | None, search: str | None, expected: Selection) -> None:
    assert parse_location(pathname, search) == expected


def test_place_and_area_links_round_trip_under_a_prefix() -> None:
    href = place_href("/cityops/", "48", "pm25", "en")
    assert href == "/cityops/?place=48&metric=pm25&lang=en"
    assert parse_location("/cityops/", href.partition("?")[2]) == Selection(
        metric="pm25", lang="en", place="48"
    )
    assert place_href("/", None) == "/?place="
    area = area_href("/cityops/", "commune", "20194")
    assert area == "/cityops/area/commune/20194"
    assert parse_location(area, "") == Selection(unit="20194")


def test_unit_link_round_trips() -> None:
    link = unit_link("http://ioc.danang.gov.vn/", "20194", "pm25")
    assert link == "http://ioc.danang.gov.vn/?unit=20194&metric=pm25"
    path, _, query = link.removeprefix("http://ioc.danang.gov.vn").partition("?")
    assert parse_location(path, "?" + query) == Selection(unit="20194", metric="pm25")
