"""Named queries of the dashboard: the store's answers as pandas DataFrames.

Results are cached for a few seconds: every wall screen and desk refreshes on the same
interval, and one query per interval is enough for all of them. Frames handed out are
shared between callers and must not be modified.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime, timedelta

import pandas as pd

from core.ports import Clock, Store
from core.settings import AlertRule, MetricSettings
from core.types import MetricRef, UnitRef, UnitValue
from dashboard.cache import LocalCache, QueryCache
from dashboard.devices import device_frame
from dashboard.frames import TS_DTYPE, series_frame, unit_values_frame
from dashboard.history import historical_unit_values
from ingest.metrics import DEAD_LETTER_REASONS, MEASUREMENT, WORKER_TAG, dead_letter_field
from layers.history import HistoryMap
from layers.levels import Hierarchy
from layers.registry import Device

# A unit's newest value counts for the map this long; older units show "no data".
# (Units older than ``dashboard.stale_after_s`` but inside this window show "old data".)
DEFAULT_LOOKBACK = timedelta(hours=24)
TREND_WINDOW = timedelta(hours=24)
TREND_EVERY = timedelta(minutes=15)


# The ingest workers' self-metrics snapshots (ingest/metrics.py, docs/design/007): a worker
# silent for longer than this disappears from the pipeline page.
PIPELINE_LOOKBACK = timedelta(days=7)
# "received" is in every snapshot: its timestamp is the worker's last snapshot.
PIPELINE_FIELDS = (
    "received",
    "stored",
    "spooled",
    "dead_lettered",
    *(dead_letter_field(reason) for reason in DEAD_LETTER_REASONS),
    "pending",
    "spool_bytes",
    "spool_batches",
    "mqtt_connected",
    "interval_s",
    "lag_last_s",
    "write_latency_p50_s",
    "write_latency_p99_s",
)
# Left out of a snapshot when the interval had no writes: shown only if from the last one.
_INTERVAL_FIELDS = ("write_latency_p50_s", "write_latency_p99_s")


def pipeline_frame(store: Store, since: datetime) -> pd.DataFrame:
    """worker (index) → last_seen (UTC) and one float column per :data:`PIPELINE_FIELDS`
    (NaN when absent); sorted by worker. One ``latest_by_unit`` per field, grouped by the
    ``worker`` tag: the Store port needs no method of its own for this page."""
    columns: dict[str, dict[str, float]] = {}
    seen: dict[str, datetime] = {}
    stamps: dict[str, dict[str, datetime]] = {}
    for name in PIPELINE_FIELDS:
        found = store.latest_by_unit(
            MetricRef(MEASUREMENT, name), WORKER_TAG, since=since, aggregation="last"
        )
        for item in found:
            if item.code:  # a point without the worker tag is not ours
                columns.setdefault(name, {})[item.code] = item.value
                stamps.setdefault(name, {})[item.code] = item.ts
                if name == "received":
                    seen[item.code] = item.ts
    workers = sorted(seen)
    frame = pd.DataFrame(
        {
            name: [columns.get(name, {}).get(w, float("nan")) for w in workers]
            for name in PIPELINE_FIELDS
        },
        index=pd.Index(workers, name="worker", dtype="object"),
        dtype="float64",
    )
    for name in _INTERVAL_FIELDS:
        for worker in workers:
            if stamps.get(name, {}).get(worker) != seen[worker]:
                frame.loc[worker, name] = float("nan")
    frame["last_seen"] = pd.DatetimeIndex([seen[w] for w in workers], dtype=TS_DTYPE)
    return frame


class DashboardData:
    """The dashboard's queries on one store, for one map level inside one scope."""

    def __init__(
        self,
        store: Store,
        metrics: Mapping[str, MetricSettings],
        *,
        clock: Clock,
        level: str,
        scope: UnitRef | None = None,
        lookback: timedelta = DEFAULT_LOOKBACK,
        cache_s: float = 0.0,
        devices: Callable[[], list[Device]] | None = None,
        rules: Sequence[AlertRule] = (),
        stale_after: timedelta = timedelta(minutes=15),
        hierarchy: Hierarchy | None = None,
        history: HistoryMap | None = None,
        cache: QueryCache | None = None,
        grace_s: float | None = None,
    ) -> None:
        self.store = store
        self.metrics = dict(metrics)
        self.clock = clock
        self.level = level
        self.scope = scope
        self.lookback = lookback
        self.cache_s = cache_s
        self.registry = devices or (lambda: [])
        self.rules = list(rules)
        self.stale_after = stale_after
        self.hierarchy = hierarchy
        self.history = history
        # Answers kept cache_s seconds: this process's (default) or every worker's (Redis).
        self.cache: QueryCache = cache if cache is not None else LocalCache()
        # Past cache_s an answer is served grace_s more while one background refresh fetches
        # the next (dashboard/cache.py), so a screen on the refresh beat never waits for the
        # store. None: max(cache_s, 2 beats), the beat taken as 2 × cache_s (build_context's
        # cache_s = refresh_s / 2, up to 5 s); 0: an expired answer is recomputed inline.
        self.grace_s = grace_s

    def metric(self, metric_id: str) -> MetricSettings:
        try:
            return self.metrics[metric_id]
        except KeyError:
            raise KeyError(
                f"no metric {metric_id!r} in the catalogue {sorted(self.metrics)}"
            ) from None

    def lookback_for(self, metric: MetricSettings) -> timedelta:
        """How far back a value counts: the lookback, or as long as a value per period stays
        current (MetricSettings.stale_after)."""
        return max(self.lookback, metric.stale_after(self.stale_after))

    def map_values(
        self, metric_id: str, level: str | None = None, parent: UnitRef | None = None
    ) -> pd.DataFrame:
        """The latest value of ``metric_id`` per unit of ``level`` (default: the map level)
        inside ``parent`` (default: the scope), indexed by unit code; units without data in
        the lookback window are absent. A unit above the lowest level gets the value rolled
        up by the metric's aggregation over every device inside it (Store.latest_by_unit)."""
        metric = self.metric(metric_id)
        level = level or self.level
        parent = parent or self.scope

        def query() -> pd.DataFrame:
            values = self.store.latest_by_unit(
                metric.ref,
                level,
                since=self.clock.now() - self.lookback_for(metric),
                parent=parent,
                aggregation=metric.aggregation,
            )
            return unit_values_frame(values)

        key = ("map", metric_id, level, None if parent is None else parent.code)
        return self._cached(key, query)

    def map_values_at(
        self, metric_id: str, level: str, parent: UnitRef | None, at: datetime
    ) -> pd.DataFrame:
        """:meth:`map_values` as it was at ``at`` (each device's last value in the lookback
        before it), on today's units: before the 2025 reform, mapped from the old units
        (columns mapped, partial, sources: :mod:`dashboard.history`)."""
        metric = self.metric(metric_id)

        def query() -> pd.DataFrame:
            if self.hierarchy is None:
                raise ValueError("map_values_at needs the hierarchy")
            return historical_unit_values(
                self.store,
                self.history,
                self.hierarchy,
                metric,
                level,
                parent,
                at,
                self.lookback,
            )

        key = ("map_at", metric_id, level, None if parent is None else parent.code, at)
        return self._cached(key, query)

    def unit_latest(self, unit: UnitRef) -> pd.DataFrame:
        """The latest value of every catalogue metric for one unit, indexed by metric id in
        catalogue order; a metric without data has NaN value, NaT ts and 0 devices."""

        def query() -> pd.DataFrame:
            now = self.clock.now()
            rows: list[UnitValue] = []
            order: list[str] = []
            for metric_id, metric in self.metrics.items():
                found = self.store.latest_by_unit(
                    metric.ref,
                    unit.level,
                    since=now - self.lookback_for(metric),
                    parent=unit,
                    aggregation=metric.aggregation,
                )
                mine = [item for item in found if item.code == unit.code]
                if mine:
                    rows.append(UnitValue(metric_id, mine[0].value, mine[0].ts, mine[0].devices))
                order.append(metric_id)
            frame = unit_values_frame(rows).reindex(order)
            frame.index.name = "metric"
            frame["devices"] = frame["devices"].fillna(0).astype("int64")
            return frame

        return self._cached(("unit", unit.level, unit.code), query)

    def trend(self, metric_id: str, unit: UnitRef) -> pd.DataFrame:
        """The last 24 hours of ``metric_id`` for one unit in 15-minute buckets."""
        metric = self.metric(metric_id)

        def query() -> pd.DataFrame:
            end = self.clock.now()
            points = self.store.series(
                metric.ref,
                unit,
                start=end - TREND_WINDOW,
                end=end,
                every=TREND_EVERY,
                aggregation=metric.aggregation,
            )
            return series_frame(points)

        return self._cached(("trend", metric_id, unit.level, unit.code), query)

    def devices(self, within: str | None = None) -> pd.DataFrame:
        """Every registered device inside the unit ``within`` (None: all) with its state
        (ok, warning, alarm, offline: :mod:`dashboard.devices`), sorted by device id."""

        def query() -> pd.DataFrame:
            return device_frame(
                self.store,
                self.registry(),
                self.metrics,
                self.rules,
                now=self.clock.now(),
                stale_after=self.stale_after,
                lookback=max(self.lookback, self.stale_after),
                within=within,
            )

        return self._cached(("devices", within), query)

    def pipeline(self) -> pd.DataFrame:
        """The ingest workers' last self-metrics snapshots (see :func:`pipeline_frame`)."""
        return self._cached(
            ("pipeline",), lambda: pipeline_frame(self.store, self.clock.now() - PIPELINE_LOOKBACK)
        )

    def _cached(self, key: Hashable, query: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        grace_s = 4 * self.cache_s if self.grace_s is None else self.grace_s
        return self.cache.get_or_compute(key, self.cache_s, query, grace_s)
