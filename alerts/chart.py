"""The trend chart of an alert e-mail: a small PNG drawn in pure Python (zlib + struct).

E-mail clients show an inline image (``cid:``) but neither scripts nor SVG everywhere, and
a plotting library for a 480x120 sparkline is not worth its weight. So: a white
background, the series as a 2-pixel line scaled to the data and the threshold (with some
padding), the threshold as a dashed horizontal line, the last point as a dot. No text in
the image (no fonts): the HTML around it says min, max, last and the time span.

The PNG is 8-bit palette (colour type 3): white, the line colour, the threshold colour.
A gap in the data (a bucket step more than three times the usual one) breaks the line, so
a silent sensor does not look like a straight ramp.
"""

from __future__ import annotations

import itertools
import math
import statistics
import struct
import zlib
from collections.abc import Sequence
from datetime import datetime

from core.types import SeriesPoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WHITE, LINE, THRESHOLD = 0, 1, 2  # palette indexes
PAD_X, PAD_Y = 6, 8  # pixels kept free around the plot (the dot must fit)
DOT_RADIUS = 3
DASH_ON, DASH_OFF = 6, 4  # the threshold line's dashes, in pixels
GAP_FACTOR = 3.0


def sparkline_png(
    points: Sequence[SeriesPoint],
    *,
    width: int = 480,
    height: int = 120,
    threshold: float | None,
    color: str,
    threshold_color: str = "#D7191C",
    now: datetime | None,
) -> bytes:
    """The chart as PNG bytes. The time axis runs from the first point to ``now`` (or the
    last point when ``now`` is None or earlier), so data that stopped short of now ends
    short of the right edge. Raises ValueError for an empty series or a size too small."""
    finite = [point for point in points if math.isfinite(point.value)]
    if not finite:
        raise ValueError("no finite values to draw")
    if width < 4 * PAD_X or height < 4 * PAD_Y:
        raise ValueError(f"chart too small: {width}x{height}")
    finite.sort(key=lambda point: point.ts)
    canvas = bytearray(width * height)  # all WHITE
    scale = _Scale(finite, width, height, threshold, now)
    if threshold is not None and math.isfinite(threshold):
        row = scale.y(threshold)
        for x in range(PAD_X, width - PAD_X):
            if (x - PAD_X) % (DASH_ON + DASH_OFF) < DASH_ON:
                canvas[row * width + x] = THRESHOLD
    pixels = [(scale.x(point.ts), scale.y(point.value)) for point in finite]
    for (start, end), broken in zip(itertools.pairwise(pixels), _gaps(finite), strict=True):
        if not broken:
            _line(canvas, width, height, start, end)
    _dot(canvas, width, height, pixels[-1])
    palette = [(255, 255, 255), _rgb(color), _rgb(threshold_color)]
    return _png(canvas, width, height, palette)


def chart_for(
    points: Sequence[SeriesPoint] | None,
    *,
    threshold: float | None,
    color: str,
    threshold_color: str = "#D7191C",
    now: datetime | None,
    width: int = 480,
    height: int = 120,
) -> bytes | None:
    """The chart, or None when there is nothing to draw (no series, no finite value): an
    e-mail then goes without one."""
    if not points or not any(math.isfinite(point.value) for point in points):
        return None
    return sparkline_png(
        points,
        width=width,
        height=height,
        threshold=threshold,
        color=color,
        threshold_color=threshold_color,
        now=now,
    )


class _Scale:
    """Data → pixel. y grows downwards in the image; high values are at the top."""

    def __init__(
        self,
        points: Sequence[SeriesPoint],
        width: int,
        height: int,
        threshold: float | None,
        now: datetime | None,
    ) -> None:
        values = [point.value for point in points]
        if threshold is not None and math.isfinite(threshold):
            values.append(threshold)
        low, high = min(values), max(values)
        spread = high - low or max(abs(high) * 0.1, 1.0)  # a flat line sits in the middle
        self.low = low - spread * 0.08 if high > low else low - spread / 2
        self.high = high + spread * 0.08 if high > low else high + spread / 2
        self.start = points[0].ts.timestamp()
        end = points[-1].ts.timestamp()
        if now is not None:
            end = max(end, now.timestamp())
        self.span = end - self.start
        self.left, self.right = PAD_X, width - 1 - PAD_X
        self.top, self.bottom = PAD_Y, height - 1 - PAD_Y

    def x(self, ts: datetime) -> int:
        if self.span <= 0:
            return self.right  # one instant: at the right edge, where "now" is
        share = (ts.timestamp() - self.start) / self.span
        return self.left + round(share * (self.right - self.left))

    def y(self, value: float) -> int:
        share = (self.high - value) / (self.high - self.low)
        return self.top + round(share * (self.bottom - self.top))


def _gaps(points: Sequence[SeriesPoint]) -> list[bool]:
    """Per segment: whether it spans a gap in the data (not drawn)."""
    steps = [(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(points)]
    if len(steps) < 2:
        return [False] * len(steps)
    usual = statistics.median(steps)
    return [usual > 0 and step > GAP_FACTOR * usual for step in steps]


def _line(
    canvas: bytearray, width: int, height: int, start: tuple[int, int], end: tuple[int, int]
) -> None:
    """A 2-pixel line: a 2x2 stamp at every step of the longer axis."""
    (x0, y0), (x1, y1) = start, end
    steps = max(abs(x1 - x0), abs(y1 - y0), 1)
    for step in range(steps + 1):
        x = x0 + round((x1 - x0) * step / steps)
        y = y0 + round((y1 - y0) * step / steps)
        for dx in (0, 1):
            for dy in (0, 1):
                _put(canvas, width, height, x + dx, y + dy, LINE)


def _dot(canvas: bytearray, width: int, height: int, centre: tuple[int, int]) -> None:
    cx, cy = centre
    for dx in range(-DOT_RADIUS, DOT_RADIUS + 1):
        for dy in range(-DOT_RADIUS, DOT_RADIUS + 1):
            if dx * dx + dy * dy <= DOT_RADIUS * DOT_RADIUS + 1:
                _put(canvas, width, height, cx + dx, cy + dy, LINE)


def _put(canvas: bytearray, width: int, height: int, x: int, y: int, colour: int) -> None:
    if 0 <= x < width and 0 <= y < height:
        canvas[y * width + x] = colour


def _rgb(color: str) -> tuple[int, int, int]:
    """ "#FF7E00" → (255, 126, 0)."""
    text = color.strip().lstrip("#")
    if len(text) != 6:
        raise ValueError(f"a colour must be #RRGGBB: {color!r}")
    try:
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    except ValueError as exc:
        raise ValueError(f"a colour must be #RRGGBB: {color!r}") from exc


def _png(
    canvas: bytearray, width: int, height: int, palette: Sequence[tuple[int, int, int]]
) -> bytes:
    rows = b"".join(
        b"\x00" + bytes(canvas[y * width : (y + 1) * width])  # filter type 0 (none)
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    colours = b"".join(bytes(rgb) for rgb in palette)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"PLTE", colours)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
