"""Wall screens of the operations room: ``/wall/<name>`` (issue #7).

Each wall of ``dashboard.walls`` is its own small Dash app on the main server, with no
navigation bar and only its own stylesheet and script (``assets/wall.css``,
``assets/wall.js``): the clock, the scene of the moment (the Overview's map of a unit
coloured by a metric with its legend, the active alerts, the device counts or a unit's
figures), a ticker of active alerts, the device counts and the rotation's progress.

One callback on the beat draws everything. A part that fails keeps its last picture, and
the beat's stamp is not renewed: wall.js shows "Dữ liệu cũ từ HH:MM" after two missed
beats and hides it on the next good one; when the stamp carries another version (the
server came back with another configuration or code) it reloads the page, the server
having just answered. The browser never accumulates: every output replaces the last.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import dash
from dash import Input, Output, dcc, html, no_update
from flask import redirect, request

from core.errors import RetryableError
from core.types import UnitRef
from dashboard import ids
from dashboard.access import Access
from dashboard.alerts_data import AlertSource
from dashboard.auth import Auth, current_access
from dashboard.callbacks import TEXT_PX_JS, refresh_map
from dashboard.context import DashboardContext
from dashboard.i18n import format_clock, text
from dashboard.kpi import parse_range, unit_kpis
from dashboard.plotlyjs import ROUTE as PLOTLY_JS_ROUTE
from dashboard.views import wall as views
from dashboard.views.kpi import data_attributes, kpi_cards
from dashboard.views.legend import legend
from dashboard.wall_data import (
    Wall,
    alert_ticker,
    device_counts,
    resolve_walls,
    scene_at,
    wall_access,
)
from dashboard.wall_links import WALL_PREFIX, WallGate, WallLinks

log = logging.getLogger("cityops.dashboard")

ASSETS = Path(__file__).resolve().parent / "assets"
# The wall page loads its own stylesheet and script and the session script, nothing
# of the other pages (a file name matching this is left out of the page).
ASSETS_IGNORE: Final = r"^(?!wall\.|session\.js$)"
INK, MUTED = "#F5F7FA", "#B8C2D3"  # wall.css's text colours
MAX_BEAT_S: Final = 5.0  # a scene changes at most this late

ROOT, BEAT, TEXT_PX, STAMP = "wall-root", "wall-beat", "wall-text-px", "wall-stamp"
TIME, DATE, SCENE_NAME, DEVICES = "wall-time", "wall-date", "wall-scene-name", "wall-devices"
MAP_BOX, LEGEND, PANEL, TICKER = "wall-map-box", "wall-legend", "wall-panel", "wall-ticker"
PROGRESS, STALE = "wall-progress-bar", "wall-stale"


def _code_version() -> str:
    """The wall's code as served (a change reloads open walls once the server is back)."""
    parts = [str((ASSETS / name).stat().st_mtime_ns) for name in ("wall.js", "wall.css")]
    return dash.__version__ + "|" + "|".join(parts) + "|" + str(Path(__file__).stat().st_mtime_ns)


def beat_s(ctx: DashboardContext) -> float:
    return min(ctx.settings.dashboard.refresh_s, MAX_BEAT_S)


def wall_layout(ctx: DashboardContext, wall: Wall, version: str) -> html.Div:
    """The page; empty parts until the first beat fills them."""
    lang = wall.lang
    clock, date = views.clock_texts(ctx.clock.now(), ctx.tz, lang)
    try:
        allowed = wall_access(ctx.hierarchy, current_access(), wall) is not None
    except PermissionError:  # Dash asks for the layout once at start, outside a request
        allowed = True
    body: list[Any] = [
        html.Header(
            [
                html.Div(
                    [html.Div(clock, id=TIME, className="wall-time"), html.Div(date, id=DATE)],
                    className="wall-clock",
                ),
                html.Div(id=SCENE_NAME, className="wall-scene-name"),
                html.Div(id=DEVICES, className="wall-devices-box"),
            ],
            className="wall-top",
        ),
        html.Div(id=STALE, className="wall-stale", hidden=True),
        html.Main(
            [
                html.Div(
                    [
                        dcc.Graph(
                            id=ids.MAP,
                            config={"displayModeBar": False, "responsive": True},
                            className="wall-map",
                        ),
                        html.Div(id=LEGEND, className="wall-legend"),
                    ],
                    id=MAP_BOX,
                    className="wall-map-box",
                ),
                html.Div(
                    None if allowed else views.message(text("wall_no_access", lang)),
                    id=PANEL,
                    className="wall-panel",
                ),
            ],
            className="wall-main",
        ),
        html.Footer(
            [
                html.Div(id=TICKER, className="wall-ticker"),
                html.Div(
                    html.Div(id=PROGRESS, className="wall-progress-bar"), className="wall-progress"
                ),
            ],
            className="wall-bottom",
        ),
        html.Div(id=STAMP, hidden=True),
        dcc.Store(id=TEXT_PX),
        dcc.Interval(id=BEAT, interval=int(beat_s(ctx) * 1000)),
    ]
    return html.Div(
        body,
        id=ROOT,
        className="wall",
        lang=lang,
        **data_attributes(
            version=version,
            beat_ms=str(int(beat_s(ctx) * 1000)),
            texts=views.client_texts(lang, ctx.tz),
        ),
    )


def render_wall(
    ctx: DashboardContext, wall: Wall, access: Access, size: object, version: str
) -> tuple[Any, ...]:
    """Every output of the beat (see :func:`register`): scene name, device counts, ticker,
    map box style, map figure, legend, panel, panel style, stamp. A part that fails is
    no_update and the stamp stays, so the screen keeps its last picture and turns stale."""
    lang = wall.lang
    now = ctx.clock.now()
    now_ms = int(now.timestamp() * 1000)
    clock = format_clock(now, ctx.tz)[:5]
    hide, show = {"display": "none"}, {"display": "flex"}
    mine = wall_access(ctx.hierarchy, access, wall)
    if mine is None:
        refused = views.message(text("wall_no_access", lang))
        return (
            "",
            None,
            None,
            hide,
            no_update,
            None,
            refused,
            show,
            views.stamp(now_ms, version, clock),
        )
    at = scene_at(wall, now)
    scene = at.scene
    metric = ctx.metrics.get(scene.metric)
    name = views.scene_name(scene.page, scene.title, metric.label.get(lang) if metric else "", lang)
    ok = True
    counts: Any = no_update
    try:
        counts = views.device_counts_bar(device_counts(ctx, mine), lang)
    except Exception as exc:
        ok = _failed("wall devices", exc)
    tick: Any = no_update
    alerts = None
    try:
        alerts = alert_ticker(AlertSource.from_context(ctx), mine, lang)
        tick = views.ticker(alerts, lang, ctx.tz)
    except Exception as exc:
        ok = _failed("wall alerts", exc)
    if scene.page == "map" and metric is not None:
        figure, _key, _updated, _badge, status, _note, _update = refresh_map(
            ctx, mine, scene.metric, lang, None, None, size, scene.unit
        )
        ok = ok and not status  # a status is the store's failure: the last map stays
        if figure is not no_update:
            figure = on_dark(figure)
        box = legend(metric, lang, stale_after=ctx.stale_after)
        parts: tuple[Any, ...] = (show, figure, box, no_update, hide)
    else:
        panel, good = _panel(ctx, mine, scene.page, scene.unit, alerts, lang)
        ok = ok and good
        parts = (hide, no_update, no_update, panel, show)
    beat = f"{views.stamp(now_ms, version, clock)}|{at.starts_ms}|{at.ends_ms or 0}|{scene.index}"
    return (name, counts, tick, *parts, beat if ok else no_update)


def on_dark(figure: Any) -> Any:
    """The Overview's map figure, its frame and inset names in the wall's light ink."""
    figure.update_annotations(font_color=INK)
    figure.update_shapes(line_color=MUTED)
    return figure


def _panel(
    ctx: DashboardContext, access: Access, page: str, unit: str, alerts: Any, lang: str
) -> tuple[Any, bool]:
    """(the scene's body, it worked) for the alerts, devices and unit scenes."""
    try:
        if page == "alerts":
            if alerts is None:
                return no_update, False
            return views.alerts_scene(alerts, lang, ctx.tz), True
        if page == "devices":
            return views.device_scene(device_counts(ctx, access, unit), lang), True
        found = ctx.hierarchy.get(unit)
        if found is None:
            return views.message(text("wall_no_data", lang)), True
        now = ctx.clock.now()
        period = parse_range("live", None, None, now, ctx.tz)
        frame = unit_kpis(ctx.data, access, UnitRef(found.level, found.code), period, now)
        title = html.H2(ctx.hierarchy.full_name(found.code, lang), className="wall-unit-name")
        cards = kpi_cards(frame, ctx.metrics, lang, now, ctx.stale_after, ctx.tz)
        return html.Div([title, cards], className="wall-unit"), True
    except Exception as exc:
        return no_update, _failed(f"wall scene {page}", exc)


def _failed(what: str, exc: Exception) -> bool:
    if isinstance(exc, RetryableError):
        log.warning("%s failed, the wall keeps its last picture: %s", what, exc)
    else:
        log.exception("%s failed, the wall keeps its last picture", what)
    return False


def register(app: dash.Dash, ctx: DashboardContext, wall: Wall, version: str) -> None:
    app.clientside_callback(  # type: ignore[no-untyped-call]
        TEXT_PX_JS, Output(TEXT_PX, "data"), Input(ROOT, "id")
    )

    @app.callback(
        Output(SCENE_NAME, "children"),
        Output(DEVICES, "children"),
        Output(TICKER, "children"),
        Output(MAP_BOX, "style"),
        Output(ids.MAP, "figure"),
        Output(LEGEND, "children"),
        Output(PANEL, "children"),
        Output(PANEL, "style"),
        Output(STAMP, "children"),
        Input(BEAT, "n_intervals"),
        Input(TEXT_PX, "data"),
    )
    def _beat(_n: object, size: object) -> Any:
        return render_wall(ctx, wall, current_access(), size, version)


def mount_walls(main: dash.Dash, ctx: DashboardContext, auth: Auth) -> dict[str, dash.Dash]:
    """Serve every wall of ``dashboard.walls`` at ``<prefix>wall/<name>/`` and let wall
    links in (``auth.walls``). Raises ConfigError for a wall naming a unit or metric that
    does not exist. Mount after ``mount_plotly_js(main, …)``: walls load the same bundle."""
    walls = resolve_walls(ctx.settings, ctx.hierarchy)
    if not walls or ctx.state_engine is None:
        return {}
    links = WallLinks(ctx.state_engine, ctx.clock)
    links.migrate()
    auth.walls = WallGate(links, {name: wall.units for name, wall in walls.items()})
    code = _code_version()
    return {name: _mount(main, ctx, wall, wall.version(code)) for name, wall in walls.items()}


def _mount(main: dash.Dash, ctx: DashboardContext, wall: Wall, version: str) -> dash.Dash:
    path = f"{WALL_PREFIX}{wall.name}/"
    routes = (main.config.routes_pathname_prefix or "/") + path
    requests = (main.config.requests_pathname_prefix or "/") + path
    app = dash.Dash(
        f"cityops_wall_{wall.name.replace('-', '_')}",
        server=main.server,
        routes_pathname_prefix=routes,
        requests_pathname_prefix=requests,
        assets_folder=str(ASSETS),
        assets_ignore=ASSETS_IGNORE,
        serve_locally=True,
        compress=False,
        title=text("wall_title", wall.lang),
        update_title="",
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )

    def slash() -> Any:
        query = request.query_string.decode()
        return redirect(requests + (f"?{query}" if query else ""), code=308)

    main.server.add_url_rule(routes.rstrip("/"), f"cityops_wall_{wall.name}_slash", slash)
    layout: Callable[[], Any] = lambda: wall_layout(ctx, wall, version)  # noqa: E731
    app.layout = layout
    register(app, ctx, wall, version)
    for script in main.scripts.get_all_scripts():  # type: ignore[no-untyped-call]
        url = str(script.get("external_url", ""))
        if PLOTLY_JS_ROUTE in url:
            app.scripts.append_script({"external_url": url, "external_only": True})  # type: ignore[no-untyped-call]
    return app
