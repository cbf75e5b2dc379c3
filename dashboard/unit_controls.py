"""The unit page's frame and selectors, and its state in the URL (dashboard/unit_page.py).

The query string ``?metric=&range=&start=&end=`` is the page's state: a link, a reload or
the back button sets the selectors from it, and choosing in a selector writes it (keeping
anything else in it, such as ``lang``). The page itself is drawn from the URL only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any, Final, NamedTuple
from urllib.parse import parse_qs, urlencode

import dash
from dash import Input, Output, State, dcc, html

from dashboard import ids
from dashboard.context import DashboardContext
from dashboard.i18n import add_texts, text
from dashboard.kpi import RANGE_KINDS, RangeError, parse_range

UNIT_HEAD: Final = "unit-head"
UNIT_BEAT: Final = "unit-beat"  # dcc.Store: the refresh beats the page redraws on
UNIT_METRIC: Final = "unit-metric"
UNIT_METRIC_LABEL: Final = "unit-metric-label"
UNIT_RANGE: Final = "unit-range"
UNIT_RANGE_LABEL: Final = "unit-range-label"
UNIT_DAYS: Final = "unit-days"
UNIT_STATUS: Final = "unit-status"
UNIT_KPIS: Final = "unit-kpis"
UNIT_RANKING: Final = "unit-ranking"
UNIT_RANKING_TABLE: Final = "unit-ranking-table"
UNIT_MAP: Final = "unit-map"
UNIT_MAP_GRAPH: Final = "unit-map-graph"
UNIT_TRENDS: Final = "unit-trends"
UNIT_TREND_GRAPH: Final = "unit-trend-graph"  # dict ids {"type": UNIT_TREND_GRAPH, "metric": id}
# A range other than live changes slowly: it is redrawn every this many refresh beats.
RANGE_REFRESH_BEATS: Final = 6
# "Pick days" before any day is picked shows the last week, today included.
DEFAULT_CUSTOM_DAYS: Final = 7

add_texts(
    {
        "unit_loading": ("Đang tải…", "Loading…"),
        "unit_range_label": ("Thời gian", "Period"),
        "unit_range_live": ("Hiện tại", "Now"),
        "unit_range_24h": ("24 giờ", "24 h"),
        "unit_range_7d": ("7 ngày", "7 days"),
        "unit_range_30d": ("30 ngày", "30 days"),
        "unit_range_custom": ("Chọn ngày", "Pick days"),
    }
)


def query_of(search: str | None) -> dict[str, str]:
    """The query string as a dict (first value of each key)."""
    parsed = parse_qs((search or "").lstrip("?"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items() if values}


class Controls(NamedTuple):
    """What the selectors and the URL become; None for metric, range and search means
    "leave as it is"."""

    metric: str | None
    range: str | None
    start: str | None
    end: str | None
    days_hidden: bool
    search: str | None


def controls_from_url(search: str | None, metrics: Mapping[str, object], default: str) -> Controls:
    """The selectors as the URL says (an unknown metric or range: the defaults)."""
    query = query_of(search)
    metric = query.get("metric", "")
    kind = query.get("range", "")
    kind = kind if kind in RANGE_KINDS else "live"
    return Controls(
        metric if metric in metrics else default,
        kind,
        query.get("start"),
        query.get("end"),
        kind != "custom",
        None,
    )


def url_from_controls(
    search: str | None, metric: object, kind: object, start: object, end: object, today: date
) -> Controls:
    """The URL after a choice in a selector; "pick days" without days picked yet shows the
    last :data:`DEFAULT_CUSTOM_DAYS` days."""
    query = query_of(search)
    chosen = kind if isinstance(kind, str) and kind in RANGE_KINDS else "live"
    first = str(start)[:10] if start else None
    last = str(end)[:10] if end else None
    query.pop("start", None)
    query.pop("end", None)
    query["range"] = chosen
    if isinstance(metric, str) and metric:
        query["metric"] = metric
    if chosen == "custom":
        first = first or (today - timedelta(days=DEFAULT_CUSTOM_DAYS - 1)).isoformat()
        last = last or today.isoformat()
        query.update({"start": first, "end": last})
    new = "?" + urlencode({key: value for key, value in query.items() if value})
    same = query_of(new) == query_of(search)
    return Controls(None, None, first, last, chosen != "custom", None if same else new)


def refresh_due(kind: str, tick: object, end: datetime, now: datetime) -> bool:
    """Whether a refresh beat redraws the page: live always; a range every
    :data:`RANGE_REFRESH_BEATS` beats; custom days wholly in the past never (complete)."""
    if kind == "live":
        return True
    if kind == "custom" and end <= now:
        return False
    return isinstance(tick, int) and tick % RANGE_REFRESH_BEATS == 0


def unit_body(ctx: DashboardContext, lang: str) -> html.Div:
    """The page inside the shell; the parts are filled by the render callback. The
    selectors get their options here: a value set before its options would be dropped."""
    metrics, ranges = selector_options(ctx, lang)
    return html.Div(
        [
            dcc.Store(id=UNIT_BEAT),
            html.Div(html.P(text("unit_loading", lang), className="panel-note"), id=UNIT_HEAD),
            html.Div(
                [
                    html.Label(
                        text("metric_label", lang), id=UNIT_METRIC_LABEL, htmlFor=UNIT_METRIC
                    ),
                    dcc.Dropdown(
                        id=UNIT_METRIC, options=metrics, clearable=False, className="unit-metric"
                    ),
                    html.Span(text("unit_range_label", lang), id=UNIT_RANGE_LABEL),
                    dcc.RadioItems(
                        id=UNIT_RANGE,
                        options=ranges,
                        value="live",
                        inline=True,
                        className="segmented",
                    ),
                    dcc.DatePickerRange(
                        id=UNIT_DAYS,
                        first_day_of_week=1,  # weeks start on Monday in Vietnam
                        display_format="DD/MM/YYYY",
                        style={"display": "none"},
                    ),
                    html.Span(id=UNIT_STATUS, className="unit-status", role="status"),
                ],
                className="unit-controls control",
            ),
            # The spinner only for a slow draw (a new range), not on every refresh beat.
            dcc.Loading(html.Div(id=UNIT_KPIS), type="dot", delay_show=700),
            html.Div([html.Div(id=UNIT_RANKING), html.Div(id=UNIT_MAP)], className="unit-grid"),
            html.Div(id=UNIT_TRENDS, className="unit-trends"),
        ],
        className="unit-page",
    )


def selector_options(ctx: DashboardContext, lang: str) -> tuple[list[Any], list[Any]]:
    metrics = [{"label": m.label.get(lang), "value": key} for key, m in ctx.metrics.items()]
    ranges = [{"label": text(f"unit_range_{kind}", lang), "value": kind} for kind in RANGE_KINDS]
    return metrics, ranges


def register_controls(app: dash.Dash, ctx: DashboardContext) -> None:
    """The selectors' labels per language, the URL ↔ selectors sync, and the beat.

    The beat is a callback of its own: a refresh beat the page skips must not reach the
    render callback, where even an answer of "no update" would make Dash drop the answer
    of a redraw still running for a choice just made."""

    @app.callback(
        Output(UNIT_BEAT, "data"),
        Input(ids.REFRESH, "n_intervals"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def _beat(tick: Any, search: Any) -> Any:
        query = query_of(search)
        now = ctx.clock.now()
        try:
            period = parse_range(
                query.get("range"), query.get("start"), query.get("end"), now, ctx.tz
            )
        except RangeError:
            return dash.no_update  # the page shows why; nothing to redraw
        return tick if refresh_due(period.kind, tick, period.end, now) else dash.no_update

    @app.callback(
        Output(UNIT_METRIC, "options"),
        Output(UNIT_RANGE, "options"),
        Output(UNIT_METRIC_LABEL, "children"),
        Output(UNIT_RANGE_LABEL, "children"),
        Input(ids.LANG, "value"),
        prevent_initial_call=True,
    )
    def _labels(lang_value: object) -> Any:
        lang = ctx.lang(lang_value)
        metrics, ranges = selector_options(ctx, lang)
        return metrics, ranges, text("metric_label", lang), text("unit_range_label", lang)

    @app.callback(
        Output(UNIT_METRIC, "value"),
        Output(UNIT_RANGE, "value"),
        Output(UNIT_DAYS, "start_date"),
        Output(UNIT_DAYS, "end_date"),
        Output(UNIT_DAYS, "style"),
        Output(ids.URL, "search"),
        Input(ids.URL, "search"),
        Input(UNIT_METRIC, "value"),
        Input(UNIT_RANGE, "value"),
        Input(UNIT_DAYS, "start_date"),
        Input(UNIT_DAYS, "end_date"),
    )
    def _sync(search: Any, metric: Any, kind: Any, start: Any, end: Any) -> Any:
        if dash.ctx.triggered_id in (None, ids.URL):
            chosen = controls_from_url(search, ctx.metrics, ctx.metric_id(None))
        else:
            today = ctx.clock.now().astimezone(ctx.tz).date()
            chosen = url_from_controls(search, metric, kind, start, end, today)
        keep = dash.no_update
        return (
            keep if chosen.metric is None else chosen.metric,
            keep if chosen.range is None else chosen.range,
            chosen.start,
            chosen.end,
            {"display": "none"} if chosen.days_hidden else {},
            keep if chosen.search is None else chosen.search,
        )
