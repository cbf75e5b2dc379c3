"""The dashboard's self-monitoring on its own Flask server (the app's port): ``/metrics``
(Prometheus text 0.0.4), ``/health`` (JSON, 200 or 503), request counts and callback
durations, and the per-request correlation id of the logs.

Installed *before* the sign-in gate (dashboard/auth.py), so its ``before_request`` answers
``/metrics`` and ``/health`` without a session, and sees every request, refused ones too.
``/metrics`` answers only clients in ``dashboard.metrics_allow`` (403 otherwise), judged on
``request.remote_addr``: the client's address, also behind a reverse proxy listed in
``dashboard.trusted_proxies`` (dashboard/forwarded.py); behind an unlisted proxy on this
host it would be the proxy's, which must then not forward ``/metrics``.

Cardinality is bounded by construction: ``path_group`` is one of :data:`PATH_GROUPS`
(never a raw path), ``status`` an HTTP code, ``callback`` an output id registered in one
of the server's Dash apps (anything else is "other"). Each process counts its own requests
(several waitress or gunicorn processes: each has its own numbers; docs/design/016).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import dash
from flask import Flask, Response, g, request
from sqlalchemy import Engine, text

from core.exposition import (
    CONTENT_TYPE,
    Exposition,
    Histogram,
    health_answer,
    probe,
    worst,
)
from core.logs import new_id, reset_correlation_id, sane_request_id, set_correlation_id

log = logging.getLogger("cityops.dashboard.metrics")

PREFIX: Final = "cityops_dashboard_"
PATH_GROUPS: Final = ("page", "callback", "asset", "export", "other")
OTHER: Final = "other"
REQUEST_ID_HEADER: Final = "X-Request-ID"
CALLBACK_PATH: Final = "_dash-update-component"
_ASSET_PARTS: Final = ("assets/", "_dash-component-suites/", "_favicon.ico", "_cityops/", "geo/")
# A callback reads the store through the short query cache: a few ms when cached, tens to
# hundreds of ms for a map over the country, seconds on a struggling store.
CALLBACK_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PROBE_TIMEOUT_S: Final = 2.0
MAX_LABEL: Final = 200  # a registered multi-output id can be long; bounded all the same


class DashboardMetrics:
    """Counters written by the server's threads (under one lock: a dict update is not
    atomic across threads) and read by ``/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = {}
        self.callbacks: dict[str, Histogram] = {}

    def request(self, group: str, status: int) -> None:
        key = (group if group in PATH_GROUPS else OTHER, str(status))
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1

    def callback(self, name: str, seconds: float) -> None:
        with self._lock:
            histogram = self.callbacks.get(name)
            if histogram is None:
                histogram = self.callbacks[name] = Histogram(CALLBACK_BUCKETS_S)
        histogram.observe(seconds)

    def render(self) -> str:
        with self._lock:
            requests = sorted(self.requests.items())
            callbacks = sorted(self.callbacks.items())
        out = Exposition()
        name = f"{PREFIX}requests_total"
        out.family(name, "counter", "HTTP requests answered, by path group and status.")
        for (group, status), count in requests:
            out.sample(name, count, {"path_group": group, "status": status})
        name = f"{PREFIX}callback_seconds"
        out.family(name, "histogram", "Duration of Dash callbacks, by output id.")
        for callback, histogram in callbacks:
            out.histogram(name, histogram.copy(), {"callback": callback})
        return out.text()


def path_group(path: str, method: str, mimetype: str | None) -> str:
    """page | callback | asset | export | other, from the path and the answer's type."""
    if path.endswith("/" + CALLBACK_PATH):
        return "callback"
    if "/export/" in path:
        return "export"
    if any(f"/{part}" in path for part in _ASSET_PARTS):
        return "asset"
    if method == "GET" and mimetype == "text/html":
        return "page"
    return OTHER


def callback_name(payload: Any, registered: Callable[[str], bool]) -> str:
    """The ``output`` id of a callback request when one of the Dash apps registered it,
    else "other" (a made-up id must not create a series)."""
    output = payload.get("output") if isinstance(payload, dict) else None
    if not isinstance(output, str) or not registered(output):
        return OTHER
    return output[:MAX_LABEL]


class SelfMonitoring:
    """Hooks on a Flask server: call :meth:`install` before the sign-in gate is installed
    (Flask runs ``before_request`` functions in the order they were added)."""

    def __init__(
        self,
        *,
        allow: Sequence[str],
        store_probe: Callable[[], object] | None,
        state_engine: Engine | None,
        metrics: DashboardMetrics | None = None,
    ) -> None:
        self.metrics = metrics or DashboardMetrics()
        self._allow = [ipaddress.ip_network(network) for network in allow]
        self._store_probe = store_probe
        self._state_engine = state_engine
        self._apps: list[dash.Dash] = []
        self._metrics_path = "/metrics"
        self._health_path = "/health"

    def watch_apps(self, apps: Iterable[dash.Dash]) -> None:
        """The Dash apps whose callback ids are valid ``callback`` label values."""
        self._apps.extend(apps)

    def registered(self, output: str) -> bool:
        return any(output in app.callback_map for app in self._apps)

    def allowed(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self._allow)

    def install(self, server: Flask, routes_prefix: str = "/") -> None:
        self._metrics_path = f"{routes_prefix}metrics"
        self._health_path = f"{routes_prefix}health"
        server.before_request(self._before)
        server.after_request(self._after)
        server.teardown_request(self._teardown)

    # -- hooks -----------------------------------------------------------------------

    def _before(self) -> Response | None:
        request_id = sane_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_id()
        g.cityops_request_id = request_id
        g.cityops_correlation = set_correlation_id(request_id)
        g.cityops_started = time.perf_counter()
        if request.path == self._metrics_path and request.method in ("GET", "HEAD"):
            if not self.allowed(request.remote_addr):
                log.warning("refused /metrics to %s (dashboard.metrics_allow)", request.remote_addr)
                return Response("forbidden\n", status=403, mimetype="text/plain")
            return Response(self.metrics.render(), status=200, content_type=CONTENT_TYPE)
        if request.path == self._health_path and request.method in ("GET", "HEAD"):
            detail = self.allowed(request.remote_addr)
            status, content_type, body = health_answer(self.health(detail=detail))
            return Response(body, status=status, content_type=content_type)
        return None

    def _after(self, response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("cityops_request_id", "")
        started = g.get("cityops_started")
        group = path_group(request.path, request.method, response.mimetype)
        self.metrics.request(group, response.status_code)
        if group == "callback" and started is not None and request.method == "POST":
            name = callback_name(request.get_json(silent=True), self.registered)
            self.metrics.callback(name, time.perf_counter() - started)
        return response

    def _teardown(self, _exc: BaseException | None) -> None:
        token = g.pop("cityops_correlation", None)
        if token is not None:
            try:
                reset_correlation_id(token)
            except ValueError:  # set in another context (cannot happen with waitress)
                set_correlation_id(None)

    # -- /health ---------------------------------------------------------------------

    def health(self, *, detail: bool = True) -> dict[str, Any]:
        """ok, or down (503) when the store or the state database does not answer within
        :data:`PROBE_TIMEOUT_S`; the error texts only for ``metrics_allow`` clients."""
        problems: dict[str, str | None] = {}
        if self._store_probe is not None:
            problems["store"] = probe(self._store_probe, PROBE_TIMEOUT_S)
        if self._state_engine is not None:
            problems["state_db"] = probe(self._select_one, PROBE_TIMEOUT_S)
        checks = {name: "down" if problem else "ok" for name, problem in problems.items()}
        payload: dict[str, Any] = {"status": worst(*checks.values()), "checks": checks}
        errors = {name: problem for name, problem in problems.items() if problem}
        if detail and errors:
            payload["errors"] = errors
        return payload

    def _select_one(self) -> None:
        assert self._state_engine is not None
        with self._state_engine.connect() as connection:
            connection.execute(text("SELECT 1"))
