"""Key figures of one unit over a time range: the numbers behind the KPI cards of the unit
page (and of the overview's panel). No Dash here.

A range is ``live`` (the latest values, compared with 24 hours earlier), the last ``24h``,
``7d`` or ``30d`` (ending at the current trend bucket), or ``custom``: whole local calendar
days, first to last inclusive (a week is Monday to Sunday). Each is compared with the
period of the same length just before it.

Over a range, a metric's value is its aggregation over the range, computed from the trend
buckets the page draws anyway (15 min, 1 h or 6 h, see :data:`PRESETS`): max, min, sum and
last are exact; ``mean`` is the mean of the bucket means, i.e. weighted by time, not by how
often the devices report. The Store port has no "aggregate over a window" call, and this
way the chart and the card never disagree.

Every query goes through :meth:`DashboardData._cached` under a key built from strings and
numbers only, with the range's end rounded up to the bucket, so every screen on the same
page shares one store query per refresh beat.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

import pandas as pd

from core.ports import Store
from core.settings import MetricSettings
from core.types import UnitRef
from dashboard.access import Access
from dashboard.data import DashboardData
from dashboard.frames import TS_DTYPE, series_frame, unit_values_frame
from dashboard.i18n import add_texts, text

RangeKind = Literal["live", "24h", "7d", "30d", "custom"]
RANGE_KINDS: Final[tuple[RangeKind, ...]] = ("live", "24h", "7d", "30d", "custom")
# The preset ranges: (length, trend bucket).
PRESETS: Final[dict[str, tuple[timedelta, timedelta]]] = {
    "24h": (timedelta(hours=24), timedelta(minutes=15)),
    "7d": (timedelta(days=7), timedelta(hours=1)),
    "30d": (timedelta(days=30), timedelta(hours=6)),
}
LIVE_WINDOW: Final = timedelta(hours=24)  # live: the trend's window, and "24 h earlier"
LIVE_EVERY: Final = timedelta(minutes=15)
MAX_CUSTOM_DAYS: Final = 92  # a quarter: 8,832 hourly buckets per chart at most
KPI_COLUMNS: Final = ("value", "previous", "change", "change_pct", "ts", "devices")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

add_texts(
    {
        "kpi_range_bad_day": (
            "Ngày không hợp lệ: {value} (cần dạng 2025-11-02 hoặc tuần 2025-W45)",
            "Not a valid day: {value} (expected 2025-11-02 or week 2025-W45)",
        ),
        "kpi_range_missing": (
            "Hãy chọn ngày bắt đầu và ngày kết thúc",
            "Choose a first and a last day",
        ),
        "kpi_range_order": (
            "Ngày kết thúc {end} trước ngày bắt đầu {start}",
            "The last day {end} is before the first day {start}",
        ),
        "kpi_range_too_long": (
            "Khoảng thời gian dài quá {days} ngày",
            "The range is longer than {days} days",
        ),
        "kpi_range_future": (
            "Ngày bắt đầu {start} ở tương lai",
            "The first day {start} is in the future",
        ),
    }
)


class RangeError(ValueError):
    """A custom range that cannot be shown; ``key``/``values`` give the message per
    language, ``str()`` is the English one (the CSV export answers it as a 400)."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(text(key, "en", **values))
        self.key = key
        self.values = values

    def message(self, lang: str) -> str:
        return text(self.key, lang, **self.values)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """[start, end) in UTC, the trend bucket, and for ``custom`` the local days chosen."""

    kind: RangeKind
    start: datetime
    end: datetime
    every: timedelta
    first_day: date | None = None
    last_day: date | None = None

    @property
    def live(self) -> bool:
        return self.kind == "live"

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def previous(self) -> tuple[datetime, datetime]:
        """The period of the same length just before (live: the 24 hours before)."""
        return self.start - self.length, self.start

    def includes(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end

    def query(self) -> dict[str, str]:
        """The URL query arguments that give this range back (``?range=&start=&end=``)."""
        if self.kind != "custom" or self.first_day is None or self.last_day is None:
            return {"range": self.kind}
        return {
            "range": "custom",
            "start": self.first_day.isoformat(),
            "end": self.last_day.isoformat(),
        }


def ceil_to(moment: datetime, every: timedelta) -> datetime:
    """``moment`` rounded up to a multiple of ``every`` since the Unix epoch (the store's
    bucket edges)."""
    step = every.total_seconds()
    buckets = math.ceil((moment - _EPOCH).total_seconds() / step)
    return _EPOCH + timedelta(seconds=buckets * step)


def floor_to(moment: datetime, every: timedelta) -> datetime:
    step = every.total_seconds()
    return _EPOCH + timedelta(seconds=math.floor((moment - _EPOCH).total_seconds() / step) * step)


def parse_day(value: object, *, last: bool) -> date:
    """A local calendar day, "2025-11-02" (also the date picker's "2025-11-02T00:00:00"),
    or an ISO week "2025-W45": its Monday, or its Sunday when ``last``."""
    raw = value.strip() if isinstance(value, str) else ""
    if not raw:
        raise RangeError("kpi_range_missing")
    try:
        if "-W" in raw.upper():
            year, week = raw.upper().split("-W")
            return date.fromisocalendar(int(year), int(week), 7 if last else 1)
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise RangeError("kpi_range_bad_day", value=raw[:30]) from None


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The start of ``day`` in ``tz``, in UTC."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def custom_bucket(length: timedelta) -> timedelta:
    if length <= timedelta(days=2):
        return timedelta(minutes=15)
    if length <= timedelta(days=14):
        return timedelta(hours=1)
    return timedelta(hours=6)


def parse_range(
    value: object, start: object, end: object, now: datetime, tz: ZoneInfo
) -> TimeRange:
    """The range a URL or the selectors ask for. An unknown ``value`` is ``live``; a custom
    range with a missing, malformed, reversed, future or too long pair of days raises
    :class:`RangeError`."""
    kind = value if isinstance(value, str) and value in RANGE_KINDS else "live"
    if kind == "live":
        return TimeRange("live", now - LIVE_WINDOW, now, LIVE_EVERY)
    if kind in PRESETS:
        length, every = PRESETS[kind]
        stop = ceil_to(now, every)
        return TimeRange(kind, stop - length, stop, every)
    first, last = parse_day(start, last=False), parse_day(end, last=True)
    if last < first:
        raise RangeError("kpi_range_order", start=first.isoformat(), end=last.isoformat())
    if first > now.astimezone(tz).date():
        raise RangeError("kpi_range_future", start=first.isoformat())
    if (last - first).days + 1 > MAX_CUSTOM_DAYS:
        raise RangeError("kpi_range_too_long", days=MAX_CUSTOM_DAYS)
    begin, stop = local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz)
    return TimeRange("custom", begin, stop, custom_bucket(stop - begin), first, last)


def lower_is_better(metric: MetricSettings) -> bool:
    """Whether a fall is good news and the lowest value ranks best: true for every catalogue
    metric (bands run from good to bad) unless it declares ``better: higher`` (a setting
    for metrics such as "cases resolved on time", not in the catalogue yet)."""
    return metric.better != "higher"


def aggregate_buckets(values: pd.Series, aggregation: str) -> float:
    """One value from the trend buckets of a range (NaN when there are none)."""
    clean = values.dropna()
    if clean.empty:
        return math.nan
    if aggregation == "max":
        return float(clean.max())
    if aggregation == "min":
        return float(clean.min())
    if aggregation == "sum":
        return float(clean.sum())
    if aggregation == "last":
        return float(clean.iloc[-1])
    return float(clean.mean())


# ---------------------------------------------------------------- named queries (cached)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def range_series(
    data: DashboardData,
    metric_id: str,
    unit: UnitRef,
    start: datetime,
    end: datetime,
    every: timedelta,
) -> pd.DataFrame:
    """The buckets (ts, value) of ``metric_id`` for ``unit`` in [start, end). ``unit`` may
    be ``UnitRef("device", id)``: every stored point carries its device tag."""
    metric = data.metric(metric_id)

    def query() -> pd.DataFrame:
        points = data.store.series(
            metric.ref, unit, start=start, end=end, every=every, aggregation=metric.aggregation
        )
        return series_frame(points)

    key = ("kpi_series", metric_id, unit.level, unit.code, _iso(start), _iso(end))
    return data._cached((*key, int(every.total_seconds())), query)


def window_values(
    data: DashboardData,
    metric_id: str,
    level: str,
    parent: UnitRef,
    start: datetime,
    end: datetime | None,
) -> pd.DataFrame:
    """Per unit of ``level`` inside ``parent`` (``parent`` itself when it is of ``level``):
    each device's last value in [start, end), rolled up by the metric's aggregation, the
    newest reading time and how many devices reported (:func:`unit_values_frame`)."""
    metric = data.metric(metric_id)
    aggregation = "last" if level == "device" else metric.aggregation

    def query() -> pd.DataFrame:
        values = data.store.latest_by_unit(
            metric.ref, level, since=start, parent=parent, aggregation=aggregation, until=end
        )
        return unit_values_frame(values)

    stop = "" if end is None else _iso(end)
    key = ("kpi_window", metric_id, level, parent.level, parent.code, _iso(start), stop)
    return data._cached(key, query)


class _FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def _as_data(
    source: DashboardData | Store, metrics: Mapping[str, MetricSettings], level: str, now: datetime
) -> DashboardData:
    if isinstance(source, DashboardData):
        return source
    return DashboardData(source, metrics, clock=_FixedClock(now), level=level)


def empty_kpis(metrics: Mapping[str, MetricSettings]) -> pd.DataFrame:
    """Every metric without data: what a unit out of reach answers, too."""
    codes = list(metrics)
    frame = pd.DataFrame(
        {
            "value": [math.nan] * len(codes),
            "previous": [math.nan] * len(codes),
            "change": [math.nan] * len(codes),
            "change_pct": [math.nan] * len(codes),
            "ts": pd.Series([pd.NaT] * len(codes), dtype=TS_DTYPE).array,
            "devices": [0] * len(codes),
        },
        index=pd.Index(codes, dtype="object"),
        columns=list(KPI_COLUMNS),
    )
    frame.index.name = "metric"
    return frame.astype({"devices": "int64"})


@dataclass(frozen=True, slots=True)
class _Reading:
    value: float
    ts: datetime | None
    devices: int


def _reading(frame: pd.DataFrame, code: str) -> _Reading | None:
    """The row ``code`` of a frame of :func:`unit_values_frame` shape (None: absent)."""
    if code not in frame.index:
        return None
    row = frame.loc[[code]].to_dict("records")[0]
    ts = row["ts"]
    return _Reading(
        float(row["value"]),
        None if pd.isna(ts) else pd.Timestamp(ts).to_pydatetime(),
        int(row["devices"]),
    )


def kpi_frame(
    source: DashboardData | Store,
    metrics: Mapping[str, MetricSettings],
    unit: UnitRef,
    period: TimeRange,
    now: datetime,
) -> pd.DataFrame:
    """Per catalogue metric (index, catalogue order): ``value`` (live: the latest; a range:
    the aggregation over it), ``previous`` (live: the value 24 h earlier; a range: the
    period before), ``change`` and ``change_pct`` (NaN when either is missing, or the
    previous is 0), ``ts`` (newest reading in the range) and ``devices`` (how many
    reported). No access check here: see :func:`unit_kpis`."""
    data = _as_data(source, metrics, unit.level, now)
    frame = empty_kpis(metrics)
    # live: the map panel's own query (one cache entry for both); 24 h earlier to the
    # minute, so that cache key lasts a minute.
    latest = data.unit_latest(unit) if period.live else None
    at = floor_to(now - LIVE_WINDOW, timedelta(minutes=1))
    for metric_id, metric in metrics.items():
        if latest is not None:
            current = _reading(latest, metric_id)
            value = math.nan if current is None else current.value
            before = window_values(data, metric_id, unit.level, unit, at - data.lookback, at)
            found = _reading(before, unit.code)
            previous = math.nan if found is None else found.value
        else:
            window = window_values(data, metric_id, unit.level, unit, period.start, period.end)
            current = _reading(window, unit.code)
            series = range_series(data, metric_id, unit, period.start, period.end, period.every)
            value = aggregate_buckets(series["value"], metric.aggregation)
            old = range_series(data, metric_id, unit, *period.previous, period.every)
            previous = aggregate_buckets(old["value"], metric.aggregation)
        frame.loc[metric_id, "value"] = value
        frame.loc[metric_id, "previous"] = previous
        if not (math.isnan(value) or math.isnan(previous)):
            frame.loc[metric_id, "change"] = value - previous
            if previous != 0:
                frame.loc[metric_id, "change_pct"] = (value - previous) / abs(previous) * 100
        if current is not None and current.ts is not None:
            frame.loc[metric_id, "ts"] = current.ts
            frame.loc[metric_id, "devices"] = current.devices
    return frame


def unit_kpis(
    data: DashboardData, access: Access, unit: UnitRef, period: TimeRange, now: datetime
) -> pd.DataFrame:
    """:func:`kpi_frame` of a unit this user may see; all "no data" otherwise."""
    if not access.can_see(unit.code):
        return empty_kpis(data.metrics)
    return kpi_frame(data, data.metrics, unit, period, now)


def unit_trend(
    data: DashboardData, access: Access, metric_id: str, unit: UnitRef, period: TimeRange
) -> pd.DataFrame:
    """The buckets (ts, value) of one metric over the range (live: the map panel's 24-hour
    trend, shared with it); empty for a unit out of reach."""
    data.metric(metric_id)  # an unknown metric fails the same for everyone
    if not access.can_see(unit.code):
        return series_frame([])
    if period.live:
        return data.trend(metric_id, unit)
    return range_series(data, metric_id, unit, period.start, period.end, period.every)
