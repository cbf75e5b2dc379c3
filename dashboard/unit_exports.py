"""The unit page's CSV downloads (dashboard/exports.py): exactly the rows its cards, table
and charts show, for the signed-in user. A unit out of reach gives the same empty file as
an unknown one.

    export/unit_kpis.csv?unit=20194&range=7d
    export/unit_children.csv?unit=48&metric=pm25&range=custom&start=2025-11-03&end=2025-11-09
    export/unit_trend.csv?unit=48&metric=pm25&range=30d      (no metric: every metric)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import pandas as pd

from core.types import UnitRef
from dashboard.access import Access
from dashboard.context import DashboardContext
from dashboard.exports import export_href
from dashboard.frames import TS_DTYPE
from dashboard.kpi import TimeRange, empty_kpis, parse_range, unit_kpis, unit_trend
from dashboard.ranking import children_ranking
from dashboard.views.bands import band_label, band_scale

KPIS: Final = "unit_kpis"
CHILDREN: Final = "unit_children"
TREND: Final = "unit_trend"
TREND_COLUMNS: Final = ("metric", "ts", "value")


def export_links(
    ctx: DashboardContext, unit: str, metric_id: str, period: TimeRange
) -> dict[str, str]:
    """The download link of each export for what the page shows (``unit_trend`` without
    a metric: add ``metric=`` per chart, see :func:`trend_link`)."""
    prefix = ctx.url_prefix
    query = period.query()
    return {
        KPIS: export_href(prefix, KPIS, unit=unit, **query),
        CHILDREN: export_href(prefix, CHILDREN, unit=unit, metric=metric_id, **query),
        TREND: export_href(prefix, TREND, unit=unit, **query),
    }


def trend_link(ctx: DashboardContext, unit: str, metric_id: str, period: TimeRange) -> str:
    return export_href(ctx.url_prefix, TREND, unit=unit, metric=metric_id, **period.query())


def _unit(ctx: DashboardContext, args: Mapping[str, str]) -> UnitRef | None:
    """The unit of the link; None for an unknown one (answered like one out of reach)."""
    found = ctx.hierarchy.get(args.get("unit", "").strip())
    return None if found is None else UnitRef(found.level, found.code)


def _period(ctx: DashboardContext, args: Mapping[str, str]) -> TimeRange:
    """The link's range; a bad custom range raises RangeError (a ValueError: HTTP 400)."""
    return parse_range(
        args.get("range"), args.get("start"), args.get("end"), ctx.clock.now(), ctx.tz
    )


def kpis_export(ctx: DashboardContext, access: Access, args: Mapping[str, str]) -> pd.DataFrame:
    """One row per catalogue metric: label, unit, value, previous, change, change_pct, the
    band (Vietnamese label), last reading and devices."""
    period = _period(ctx, args)
    unit = _unit(ctx, args)
    if unit is None:
        out = empty_kpis(ctx.metrics)
    else:
        out = unit_kpis(ctx.data, access, unit, period, ctx.clock.now()).copy()
    out.insert(0, "label", [ctx.metrics[m].label.vi for m in out.index])
    out.insert(1, "unit", [ctx.metrics[m].unit for m in out.index])
    out["band"] = [
        band_label(band_scale(ctx.metrics[m]), v, "vi") if ctx.metrics[m].bands and v == v else ""
        for m, v in zip(out.index, out["value"], strict=True)
    ]
    out = out.rename(columns={"ts": "last_reading"})
    out.index.name = "metric"
    return out


def children_export(ctx: DashboardContext, access: Access, args: Mapping[str, str]) -> pd.DataFrame:
    """The ranking table's rows, best first: code (index), names, value, band, devices or
    state, rank, best, worst, last reading."""
    period = _period(ctx, args)
    metric_id = ctx.metric_id(args.get("metric"))
    metric = ctx.metrics[metric_id]
    code = args.get("unit", "").strip()
    frame = children_ranking(ctx.data, access, code, metric_id, period).copy()
    scale = band_scale(metric)
    frame.insert(
        3,
        "band",
        [band_label(scale, v, "vi") if metric.bands and v == v else "" for v in frame["value"]],
    )
    frame.insert(0, "metric", metric_id)
    return frame.rename(columns={"ts": "last_reading"})


def trend_export(ctx: DashboardContext, access: Access, args: Mapping[str, str]) -> pd.DataFrame:
    """metric, ts (bucket start), value: the chart of one metric, or of every metric."""
    period = _period(ctx, args)
    unit = _unit(ctx, args)
    wanted = [args["metric"]] if args.get("metric") in ctx.metrics else list(ctx.metrics)
    parts = []
    if unit is not None:
        for metric_id in wanted:
            series = unit_trend(ctx.data, access, metric_id, unit, period)
            parts.append(series.assign(metric=metric_id)[list(TREND_COLUMNS)])
    if not parts or all(part.empty for part in parts):
        return pd.DataFrame(
            {
                "metric": pd.Series(dtype="object"),
                "ts": pd.Series(dtype=TS_DTYPE),
                "value": pd.Series(dtype="float64"),
            }
        )
    return pd.concat([part for part in parts if not part.empty], ignore_index=True)


def declare_exports(ctx: DashboardContext) -> None:
    """Declare the page's exports on ``ctx.exports`` (once per context)."""
    ctx.exports.add(KPIS, kpis_export)
    ctx.exports.add(CHILDREN, children_export)
    ctx.exports.add(TREND, trend_export)
