"""The e-mail's trend chart: a real PNG, decoded back here (zlib + struct) to check where the
line, the dot and the dashed threshold are."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from alerts.chart import chart_for, sparkline_png
from core.types import SeriesPoint

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
LINE = (0x33, 0x33, 0x33)
RED = (0xD7, 0x19, 0x1C)
WHITE = (255, 255, 255)


@dataclass
class Image:
    width: int
    height: int
    pixels: list[list[tuple[int, int, int]]]  # rows of RGB

    def column(self, x: int, colour: tuple[int, int, int]) -> list[int]:
        """Rows where column ``x`` has ``colour``."""
        return [y for y in range(self.height) if self.pixels[y][x] == colour]

    def row(self, y: int, colour: tuple[int, int, int]) -> list[int]:
        return [x for x in range(self.width) if self.pixels[y][x] == colour]


def decode(png: bytes) -> Image:
    """A minimal PNG reader: checks the signature and every CRC, reads an 8-bit palette
    (or RGB) image with filter type 0 on every row."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, []
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, kind
        chunks.append((kind, data))
        at += 12 + length
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, interlace) == (8, 0)
    assert colour_type in (2, 3)
    raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    palette_data = next((data for kind, data in chunks if kind == b"PLTE"), b"")
    palette = [tuple(palette_data[i : i + 3]) for i in range(0, len(palette_data), 3)]
    step = 1 if colour_type == 3 else 3
    stride = 1 + width * step
    assert len(raw) == stride * height
    rows = []
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        assert line[0] == 0, "filter type 0 expected"
        if colour_type == 3:
            rows.append([palette[index] for index in line[1:]])
        else:
            rows.append([tuple(line[1 + 3 * x : 4 + 3 * x]) for x in range(width)])
    return Image(width, height, rows)  # type: ignore[arg-type]


def rising(count: int = 25, start: float = 20.0, step: float = 3.0) -> list[SeriesPoint]:
    """Six hours of 15-minute buckets, rising to the last one at T0."""
    return [
        SeriesPoint(T0 - timedelta(minutes=15 * (count - 1 - i)), start + i * step)
        for i in range(count)
    ]


def test_png_header_and_size() -> None:
    png = sparkline_png(rising(), threshold=80.0, color="#333333", now=T0)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (480, 120)
    image = decode(png)
    assert (image.width, image.height) == (480, 120)
    small = decode(
        sparkline_png(rising(), width=200, height=60, threshold=None, color="#333333", now=None)
    )
    assert (small.width, small.height) == (200, 60)


def test_line_rises_to_the_last_point_at_the_right_edge() -> None:
    image = decode(sparkline_png(rising(), threshold=80.0, color="#333333", now=T0))
    # The last point (at now) is a dot at the right edge of the plot (6 px padding).
    last_column = image.column(480 - 1 - 6, LINE)
    assert len(last_column) >= 5  # the dot is 7 px across
    first_column = image.column(6, LINE)
    assert first_column, "the line starts at the left edge"
    # Higher values are higher up: the last point (92) is above the first (20).
    assert max(last_column) < min(first_column)
    # A 2-pixel line: every column in between has line pixels, at least 2 per column.
    assert all(len(image.column(x, LINE)) >= 2 for x in range(6, 474))
    # Nothing drawn in the padding.
    assert image.column(0, LINE) == image.column(479, LINE) == []
    # Mostly background.
    white = sum(row.count(WHITE) for row in image.pixels)
    assert white > 0.9 * 480 * 120


def test_threshold_is_a_dashed_line_in_its_colour() -> None:
    image = decode(sparkline_png(rising(), threshold=80.0, color="#333333", now=T0))
    rows = [y for y in range(image.height) if len(image.row(y, RED)) > 100]
    assert len(rows) == 1, "one dashed row"
    dashed = image.row(rows[0], RED)
    # Dashes with gaps: runs of 6 red pixels separated by runs of 4 others.
    runs = sum(1 for x in dashed if x - 1 not in dashed)
    assert runs >= 40
    assert len(dashed) < 0.7 * (480 - 12)
    # 80 lies between the first value (20) and the last (92): so does its row.
    assert min(image.column(474 - 1, LINE)) < rows[0] < max(image.column(6, LINE))


def test_a_threshold_above_the_data_stretches_the_scale() -> None:
    image = decode(sparkline_png(rising(step=1.0), threshold=500.0, color="#333333", now=T0))
    (row,) = [y for y in range(image.height) if len(image.row(y, RED)) > 100]
    line_rows = [y for x in range(6, 474) for y in image.column(x, LINE)]
    assert row < min(line_rows)  # the threshold is above every point
    assert row >= 8  # still inside the padding


def test_data_that_stopped_before_now_ends_short_of_the_right_edge() -> None:
    points = rising()
    image = decode(
        sparkline_png(points, threshold=None, color="#333333", now=T0 + timedelta(hours=6))
    )
    # 6 h of data on a 12-h axis: the dot is near the middle, the right half is empty.
    assert image.column(240, LINE)
    assert all(not image.column(x, LINE) for x in range(260, 480))


def test_a_gap_in_the_data_breaks_the_line() -> None:
    before = [
        SeriesPoint(T0 - timedelta(hours=6) + timedelta(minutes=15 * i), 30.0) for i in range(8)
    ]
    after = [
        SeriesPoint(T0 - timedelta(hours=1) + timedelta(minutes=15 * i), 40.0) for i in range(5)
    ]
    image = decode(sparkline_png(before + after, threshold=None, color="#333333", now=T0))
    # The sensor was silent from 04:45 to 07:00 (UTC 21:45-00:00): no line there.
    middle = [x for x in range(6, 474) if image.column(x, LINE)]
    gap = [x for x in range(6, 474) if x not in middle]
    assert len(gap) > 100


def test_chart_for_says_none_when_there_is_nothing_to_draw() -> None:
    assert chart_for(None, threshold=80.0, color="#333333", now=T0) is None
    assert chart_for([], threshold=80.0, color="#333333", now=T0) is None
    nan = [SeriesPoint(T0, float("nan")), SeriesPoint(T0 + timedelta(minutes=1), float("inf"))]
    assert chart_for(nan, threshold=80.0, color="#333333", now=T0) is None
    with pytest.raises(ValueError, match="no finite"):
        sparkline_png([], threshold=None, color="#333333", now=None)


@pytest.mark.parametrize(
    "points",
    [
        [SeriesPoint(T0, 50.0)],  # one point: a dot
        [SeriesPoint(T0 - timedelta(minutes=15 * i), 50.0) for i in range(10)],  # flat
        [SeriesPoint(T0 - timedelta(minutes=15 * i), -5.0 * i) for i in range(10)],  # negative
        [SeriesPoint(T0, 1.0), SeriesPoint(T0, 2.0)],  # one instant
        [SeriesPoint(T0, 1e12), SeriesPoint(T0 + timedelta(minutes=1), float("nan"))],
    ],
)
def test_odd_series_still_draw(points: list[SeriesPoint]) -> None:
    png = chart_for(points, threshold=50.0, color="#2C7BB6", now=T0)
    assert png is not None
    image = decode(png)
    assert any((0x2C, 0x7B, 0xB6) in row for row in image.pixels)


def test_a_bad_colour_is_an_error() -> None:
    with pytest.raises(ValueError, match="RRGGBB"):
        sparkline_png(rising(), threshold=None, color="red", now=T0)
