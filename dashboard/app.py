"""The Dash app factory and its server.

``create_app`` builds a new app for the given settings, store and geography; nothing
happens at import. Everything the browser loads comes from this server: Dash's and
plotly's scripts (``serve_locally``), the font, the map geometry (``/geo/<level>.json``)
and the empty world topology that Plotly's geo trace insists on fetching. plotly.js is its
geo bundle (dashboard/plotlyjs.py), not the full one. Responses are compressed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dash
import waitress
from flask import Response, request
from sqlalchemy import Engine
from waitress import wasyncore
from waitress.server import BaseWSGIServer, MultiSocketServer

from core.clock import SystemClock
from core.db import make_engine
from core.ports import Clock, DeadLetterStore, Store
from core.settings import Settings
from dashboard import callbacks
from dashboard.ack_link import mount_ack_link
from dashboard.alerts_page import mount_alerts_page
from dashboard.auth import Auth, current_access, load_secret
from dashboard.cache import QueryCache, make_query_cache
from dashboard.context import DashboardContext
from dashboard.data import DashboardData
from dashboard.devices_page import mount_devices_page
from dashboard.exports import mount_exports
from dashboard.forwarded import ForwardedFor
from dashboard.geo import GeoCache
from dashboard.mapview import MapViews
from dashboard.metrics import SelfMonitoring
from dashboard.pages import nav_links, page_lang, user_box
from dashboard.pipeline import mount_pipeline_page
from dashboard.plotlyjs import mount_plotly_js
from dashboard.review_exports import mount_review_exports
from dashboard.review_page import mount_review_page
from dashboard.throttle_sql import SqlLoginThrottle
from dashboard.unit_page import mount_unit_page
from dashboard.users import UserStore
from dashboard.views.page import page_layout
from dashboard.wall_page import mount_walls
from layers.geography import Geography
from layers.history import HistoryMap, load_history
from layers.registry import Device, RegistryFile

log = logging.getLogger("cityops.dashboard")

ASSETS = Path(__file__).resolve().parent / "assets"
SERVER_THREADS = 8


def _log_callback_error(exc: Exception) -> None:
    """Last line of defence (the callbacks catch their own errors): log, keep the screen."""
    log.error("dashboard callback failed", exc_info=exc)


def mount_geometry(app: dash.Dash, geo: GeoCache, prefix: str) -> None:
    """``/geo/<level>.json`` and ``/geo/<level>/<parent_code>.json`` (dashboard/geo.py)."""

    def level_view(level: str) -> Response:
        return geo.response(request, level)

    def parent_view(level: str, parent: str) -> Response:
        return geo.response(request, level, parent)

    app.server.add_url_rule(f"{prefix}geo/<level>.json", "cityops_geo", level_view)
    app.server.add_url_rule(f"{prefix}geo/<level>/<parent>.json", "cityops_geo_parent", parent_view)


def build_context(
    settings: Settings,
    store: Store,
    views: MapViews,
    *,
    dead_letters: DeadLetterStore | None = None,
    clock: Clock,
    url_prefix: str = "/",
    devices: Callable[[], list[Device]] | None = None,
    history: HistoryMap | None = None,
    state_engine: Engine | None = None,
    cache: QueryCache | None = None,
) -> DashboardContext:
    """What the callbacks work with (tests build it to call them directly)."""
    # The live pages (map, panels, unit page, devices) show live metrics; ratios and period
    # counters (public-service KPIs) are read per week by the weekly review (reports/),
    # which takes them from the full catalogue: the one place they are filtered out here.
    shown = {key: metric for key, metric in settings.metrics.items() if metric.is_live}
    settings = settings.model_copy(update={"metrics": shown})
    geography = views.geography
    home = views.home()  # prepared now: a bad boundary file fails here, not in the browser
    data = DashboardData(
        store,
        settings.metrics,
        clock=clock,
        level=home.level,
        scope=home.parent,
        # Every screen refreshes on the same beat: one store query per beat serves them all.
        cache_s=min(settings.dashboard.refresh_s / 2, 5.0),
        # Past that, served while one background refresh fetches the next (stale-while-
        # revalidate): a screen on the beat never waits for the store.
        grace_s=max(2 * settings.dashboard.refresh_s, 20.0),
        devices=devices,
        rules=settings.alerts.rules,
        stale_after=timedelta(seconds=settings.dashboard.stale_after_s),
        hierarchy=geography.hierarchy,
        history=history,
        cache=cache,
    )
    return DashboardContext(
        settings=settings,
        data=data,
        hierarchy=geography.hierarchy,
        views=views,
        clock=clock,
        tz=ZoneInfo(settings.site.timezone),
        dead_letters=dead_letters,
        url_prefix=url_prefix,
        state_engine=state_engine,
    )


def create_app(
    settings: Settings,
    store: Store,
    geography: Geography,
    *,
    dead_letters: DeadLetterStore | None = None,
    clock: Clock | None = None,
    devices: Callable[[], list[Device]] | None = None,
    state_engine: Engine | None = None,
) -> dash.Dash:
    """A new dashboard app. Reads the boundary file of the home map now (a bad file fails
    here, not in the browser); the store is first queried by the first page view.
    ``devices`` gives the registered devices for the map's device layer (default: the
    registry file of ``devices.registry``, re-read when it changes). ``state_engine`` is
    the SQL state database of users, alert state and acknowledgements (default:
    ``database.url``); its tables are migrated now."""
    clock = clock or SystemClock()
    if state_engine is None:
        state_engine = make_engine(settings.database.url, settings.base_dir)
    users = UserStore(state_engine, clock)  # migrates the users tables
    secret = load_secret(settings)  # a missing or unreadable key file stops here
    if devices is None:
        devices = RegistryFile(settings.path(settings.devices.registry), geography).devices
    app = dash.Dash(
        __name__,
        assets_folder=str(ASSETS),
        assets_ignore=r"^wall\.",  # the wall screens' dark theme is theirs alone
        serve_locally=True,
        compress=True,  # Flask-Compress on app.server
        external_stylesheets=[],
        external_scripts=[],
        title=settings.site.name.vi,
        update_title="",  # no "Updating..." flicker in the tab title on every refresh
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
        on_error=_log_callback_error,
    )
    prefix = app.config.routes_pathname_prefix or "/"
    geo = GeoCache(geography, app.config.requests_pathname_prefix or "/")
    mount_geometry(app, geo, prefix)
    # The home view is prepared now (about 1.5 s for the country's 3,321 communes): the
    # page's URL carries the hash of the bytes, and a bad file fails here.
    default_metric = settings.dashboard.default_metric
    ctx = build_context(
        settings,
        store,
        MapViews(geography, geo),
        dead_letters=dead_letters,
        clock=clock,
        url_prefix=app.config.requests_pathname_prefix or "/",
        devices=devices,
        # A mapping that does not fit the hierarchy stops here, naming the setting.
        history=load_history(settings, geography.hierarchy),
        state_engine=state_engine,
        # One cache per process, or every worker's through Redis (dashboard.cache_url).
        cache=make_query_cache(settings.dashboard.cache_url, secret),
    )
    requests_prefix = app.config.requests_pathname_prefix or "/"
    # /metrics, /health, request counts and the X-Request-ID correlation id: installed
    # before the sign-in gate, which would otherwise answer them 401 (dashboard/metrics.py).
    monitoring = SelfMonitoring(
        allow=settings.dashboard.metrics_allow,
        store_probe=_store_probe(store, ctx, clock),
        state_engine=state_engine,
    )
    monitoring.install(app.server, prefix)
    # Behind nginx: the client's address from X-Forwarded-For of dashboard.trusted_proxies.
    app.server.wsgi_app = ForwardedFor(app.server.wsgi_app, settings.dashboard.trusted_proxies)
    auth = Auth(
        settings,
        users,
        geography.hierarchy,
        clock,
        routes_prefix=prefix,
        requests_prefix=requests_prefix,
        # counted in the state database: one count for every dashboard process and host
        throttle=SqlLoginThrottle(state_engine, clock),
    )
    auth.install(app.server, secret)
    mount_exports(ctx, app.server, prefix)
    mount_review_exports(ctx, app.server, prefix, settings)  # the review's XLSX and PDF
    topojson_url = app.get_asset_url("topojson/")
    # The geo bundle, not plotly's full one, with no internet endpoint (dashboard/plotlyjs.py).
    mount_plotly_js(app, topojson_url)
    pages = [mount_pipeline_page(app, ctx), mount_unit_page(app, ctx), mount_alerts_page(app, ctx)]
    mount_ack_link(app.server, ctx, secret, routes_prefix=prefix)  # e-mails' acknowledge links
    pages.append(mount_devices_page(app, ctx))
    pages.append(mount_review_page(app, ctx, settings))  # /review/: the weekly KPI review
    walls = mount_walls(app, ctx, auth)  # /wall/<name>: the operations room's screens
    monitoring.watch_apps([app, *pages, *walls.values()])  # their callback ids are labels

    def layout() -> Any:
        # A function: each page view gets fresh defaults; data arrives through callbacks.
        lang = page_lang(ctx)
        return page_layout(
            site_name=settings.site.name,
            metrics=ctx.settings.metrics,
            metric_id=default_metric,
            lang=lang,
            refresh_s=settings.dashboard.refresh_s,
            topojson_url=topojson_url,
            show_dead_letters=dead_letters is not None,
            nav=nav_links(requests_prefix, lang, "", pipeline=_sees_pipeline()),
            user=user_box(requests_prefix, lang),
        )

    app.layout = layout
    callbacks.register(app, ctx)
    return app


def _store_probe(store: Store, ctx: DashboardContext, clock: Clock) -> Callable[[], object] | None:
    """The health check's store query: the last minute of the first live metric at the
    map's level (small and indexed on both stores); None without metrics."""
    metric = next(iter(ctx.settings.metrics.values()), None)
    if metric is None:
        return None
    ref, level = metric.ref, ctx.settings.layers.map_level
    return lambda: store.latest_by_unit(ref, level, since=clock.now() - timedelta(minutes=1))


def _sees_pipeline() -> bool:
    try:
        return current_access().sees_pipeline
    except PermissionError:  # Dash builds the layout once at start, outside any request
        return False


def make_server(
    app: dash.Dash, host: str, port: int, *, threads: int = SERVER_THREADS
) -> BaseWSGIServer | MultiSocketServer:
    """A waitress server for ``app``, bound but not yet serving (port 0 picks a free one:
    read it from ``server.effective_port``). ``run()`` serves; ``close()`` stops."""
    return waitress.create_server(app.server, host=host, port=port, threads=threads)


def stop_server(server: BaseWSGIServer | MultiSocketServer) -> None:
    """Stop a running server from :func:`make_server` so that ``run()`` returns.

    ``BaseWSGIServer.close`` closes only the listening socket: a browser's keep-alive
    connection keeps ``run()`` serving. So every connection is closed too, and inside the
    server's own loop thread (through its trigger): closing sockets from another thread
    while the loop polls them fails with EBADF."""
    if isinstance(server, MultiSocketServer):
        server.close()
        return

    def close_everything() -> None:
        server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(server._map)

    server.trigger.pull_trigger(close_everything)


def serve(app: dash.Dash, host: str, port: int) -> None:
    """Serve ``app`` until interrupted (waitress, 8 threads)."""
    server = make_server(app, host, port)
    log.info("dashboard on http://%s:%s/", host, getattr(server, "effective_port", port))
    server.run()
