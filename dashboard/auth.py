"""Sign-in, sessions and CSRF for every page of the dashboard (docs/design/012-sign-in.md).

One gate (``before_request`` on the Flask server) runs before every page, callback, export
and geometry request: without a valid session a page view is sent to ``/login`` and
anything else answers 401, so no Dash callback or CSV export ever runs for nobody. With
one, the user and their :class:`~dashboard.access.Access` are put on ``flask.g`` for the
data layer (:func:`current_access`).

Sessions are Flask's signed cookies (HttpOnly, SameSite=Lax, Secure behind TLS) holding the
username, the sign-in time and the last request time: a session ends ``session_hours``
after sign-in or ``idle_minutes`` after the last request. The user is re-read from the
database at most every :data:`USER_TTL_S` seconds, so disabling a user (or changing their
units) takes effect within that time.

CSRF: every state-changing request must prove it comes from our pages. The sign-in and
sign-out forms carry a token field; Dash callbacks (the acknowledge and silence buttons are
callbacks) carry the ``X-CSRFToken`` header that Dash's renderer copies from the
``_csrf_token`` cookie, which another site can neither read nor set (double-submit with a
session-bound token).

Not gated: the sign-in form, the assets, and the acknowledge links of alert e-mails
(``/ack/<token>``, dashboard/ack_link.py), whose signed token in the path is the credential
and which need no CSRF token (a forged post would have to know the secret token already).
The session key itself comes from core/secrets.py (the alert engine signs those links with
a key derived from it).

Wall screens (dashboard/wall_links.py): ``/wall/<name>?key=<token>`` with a live wall link
starts a wall session (role viewer, the wall's units, no idle timeout), which may read only
its own wall's page, callbacks and the assets; anything else is 403, and a revoked link
answers 410 from the next re-check on (the wall page says the link was revoked).

Proxy mode: a reverse proxy with single sign-on names the user in ``proxy_header``; the
header is believed only from ``proxy_trusted`` addresses, and the user must exist here
(their role and units come from our database, not from the proxy).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, g, has_request_context, redirect, request, session
from flask.sessions import SecureCookieSessionInterface
from werkzeug.wrappers import Response as BaseResponse

from core.ports import Clock
from core.secrets import load_secret as load_secret  # importable from here too
from core.settings import AuthSettings, Settings
from dashboard.access import Access
from dashboard.forwarded import peer_address
from dashboard.i18n import as_lang
from dashboard.throttle import LoginThrottle, Throttle
from dashboard.users import User, UserStore
from dashboard.views.login import login_page
from dashboard.wall_links import WallGate, WallVerdict
from layers.levels import Hierarchy

log = logging.getLogger("cityops.dashboard")

USER_TTL_S = 30.0  # a user's role, units and "disabled" are re-read this often
SEEN_EVERY_S = 60.0  # the session's last-request time is rewritten at most this often
CSRF_COOKIE = "_csrf_token"  # the name Dash's renderer reads (X-CSRFToken header)
CSRF_HEADER = "X-CSRFToken"
LANG_COOKIE = "cityops_lang"
SESSION_COOKIE = "cityops_session"
_DASH_API = ("_dash-update-component", "_dash-layout", "_dash-dependencies")
ACK_PATH = "ack/"  # dashboard/ack_link.py


def current_access() -> Access:
    """The signed-in user's access (the gate set it); nobody's outside a request."""
    access = g.get("cityops_access") if has_request_context() else None
    if isinstance(access, Access):
        return access
    raise PermissionError("no signed-in user in this request")


def current_user() -> User | None:
    user = g.get("cityops_user") if has_request_context() else None
    return user if isinstance(user, User) else None


def remembered_lang(default: str) -> str:
    """The language the user last chose (cookie, then their profile), else ``default``."""
    cookie = request.cookies.get(LANG_COOKIE) if has_request_context() else None
    if cookie in ("vi", "en"):
        return cookie
    user = current_user()
    return as_lang(user.language if user else None, default=as_lang(default))


@dataclass
class _Cached:
    user: User | None
    until: float


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without ``Vary: Cookie`` on the immutable, versioned
    responses (geometry, scripts, assets): the session cookie is rewritten every minute,
    and a browser honouring the Vary would fetch 0.7 MiB of boundaries again each time.
    They hold nothing of the user's: everyone signed in gets the same bytes."""

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        super().save_session(app, session, response)
        if "/geo/" in request.path or "/_dash-component-suites/" in request.path:
            kept = [value for value in response.vary if value.lower() != "cookie"]
            response.headers["Vary"] = ", ".join(kept)  # HeaderSet.discard writes nothing back
            if not kept:
                del response.headers["Vary"]


def _wall_refused(verdict: WallVerdict) -> BaseResponse:
    if verdict.revoked:
        body = "Liên kết đã bị thu hồi / this wall link has been revoked\n"
    else:
        body = "Màn hình tường chỉ xem được trang của nó / a wall sees only its own page\n"
    return Response(body, status=verdict.refuse or 403, mimetype="text/plain; charset=utf-8")


class Auth:
    """The gate, the sign-in and sign-out routes, and the session rules of one server."""

    def __init__(
        self,
        settings: Settings,
        users: UserStore,
        hierarchy: Hierarchy,
        clock: Clock,
        *,
        routes_prefix: str = "/",
        requests_prefix: str = "/",
        throttle: Throttle | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.config: AuthSettings = settings.dashboard.auth
        self.users = users
        self.hierarchy = hierarchy
        self.clock = clock
        self.routes = routes_prefix if routes_prefix.endswith("/") else routes_prefix + "/"
        self.requests = requests_prefix if requests_prefix.endswith("/") else requests_prefix + "/"
        self.throttle: Throttle = throttle or LoginThrottle(clock=clock)
        self._monotonic = monotonic
        self._cache: dict[str, _Cached] = {}
        self.walls: WallGate | None = None  # set by dashboard/wall_page.py when walls exist

    # ------------------------------------------------------------------ wiring
    def install(self, server: Flask, secret: bytes) -> None:
        server.secret_key = secret
        server.session_interface = _SessionInterface()
        server.config.update(
            SESSION_COOKIE_NAME=SESSION_COOKIE,
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=self.config.cookie_secure,
            SESSION_COOKIE_PATH=self.requests,
            PERMANENT_SESSION_LIFETIME=int(self.config.session_hours * 3600),
        )
        server.before_request(self.gate)
        server.after_request(self.set_csrf_cookie)
        server.add_url_rule(
            f"{self.routes}login", "cityops_login", self.login, methods=["GET", "POST"]
        )
        server.add_url_rule(f"{self.routes}logout", "cityops_logout", self.logout, methods=["POST"])

    # ------------------------------------------------------------------ the gate
    def _public(self, path: str) -> bool:
        rest = path[len(self.routes) :] if path.startswith(self.routes) else None
        if rest is None:
            return False
        return (
            rest in ("login", "logout", "_favicon.ico")
            or rest.startswith("assets/")
            # The acknowledge links of alert e-mails: the signed token in the path is the
            # credential, and the page is the only form that posts it (no CSRF token).
            or rest.startswith(ACK_PATH)
        )

    def gate(self) -> BaseResponse | None:
        if self._public(request.path):
            return None
        if self.walls is not None:
            wall = self._wall_gate()
            if wall is not None:
                return wall if isinstance(wall, BaseResponse) else self._csrf_gate()
        user = self._proxy_user() if self.config.mode == "proxy" else self._session_user()
        if isinstance(user, Response):
            return user
        if user is None:
            return self._refuse()
        g.cityops_user = user
        g.cityops_access = Access.for_user(self.hierarchy, user)
        return self._csrf_gate()

    def _csrf_gate(self) -> BaseResponse | None:
        if request.method not in ("GET", "HEAD", "OPTIONS") and not self._csrf_ok():
            log.warning("refused a %s %s without a valid CSRF token", request.method, request.path)
            return Response("CSRF token missing or wrong\n", status=403, mimetype="text/plain")
        return None

    def _wall_gate(self) -> BaseResponse | bool | None:
        """A wall link opening (redirect to the wall without the key), a wall session's
        request (True: let in as the wall; or refused), or None: not a wall's business."""
        assert self.walls is not None
        rest = request.path[len(self.routes) :] if request.path.startswith(self.routes) else ""
        key = request.args.get("key")
        if key and request.method == "GET" and self.walls.start(rest, key, session):
            session.permanent = True  # the cookie outlives the browser's restarts
            return redirect(self.requests + rest.rstrip("/") + "/", code=303)
        verdict = self.walls.check(rest, session)
        if verdict is None:
            return None
        if verdict.refuse or verdict.wall is None:
            return _wall_refused(verdict)
        name = f"wall:{verdict.wall}"
        g.cityops_user = User(0, name, "viewer", verdict.units, "vi", False, self.clock.now())
        g.cityops_access = Access(self.hierarchy, verdict.units, role="viewer", username=name)
        return True

    def _refuse(self) -> BaseResponse:
        """Not signed in: a page view goes to the sign-in page, anything else gets 401 (the
        page's script reloads on a 401 from a callback, which lands on the sign-in page)."""
        wants_page = request.method == "GET" and not any(
            part in request.path for part in (*_DASH_API, "/export/", "/geo/")
        )
        if self.config.mode == "password" and wants_page:
            target = request.full_path.rstrip("?") if request.query_string else request.path
            return redirect(f"{self.requests}login?{urlencode({'next': target})}", code=303)
        return Response("sign in first\n", status=401, mimetype="text/plain")

    def _session_user(self) -> User | None:
        name = session.get("u")
        if not isinstance(name, str):
            return None
        now = self.clock.now().timestamp()
        started = float(session.get("t0", 0))
        seen = float(session.get("ts", 0))
        if (
            now - started > self.config.session_hours * 3600
            or now - seen > self.config.idle_minutes * 60
        ):
            session.clear()
            session["expired"] = True
            return None
        user = self._user(name)
        if user is None:
            session.clear()
            return None
        if now - seen > SEEN_EVERY_S:
            session["ts"] = now
        return user

    def _proxy_user(self) -> User | Response | None:
        peer = peer_address(request.environ)  # the proxy's own address, not X-Forwarded-For
        if peer not in self.config.proxy_trusted:
            log.warning("proxy mode: refused a request from %s", peer)
            return Response(
                "Truy cập phải đi qua cổng đăng nhập / requests must come through the "
                "single sign-on proxy\n",
                status=403,
                mimetype="text/plain; charset=utf-8",
            )
        name = request.headers.get(self.config.proxy_header, "").strip()
        if not name:
            return None
        user = self._user(name)
        if user is None:
            log.warning("proxy mode: user %r is not known here (cityops users add)", name)
            return Response(
                f"Người dùng {name!r} chưa được cấp quyền / user {name!r} has no access here\n",
                status=403,
                mimetype="text/plain; charset=utf-8",
            )
        if session.get("u") != user.username:
            session.clear()
            session["u"] = user.username
        return user

    def _user(self, name: str) -> User | None:
        """The enabled user called ``name``, re-read from the database every USER_TTL_S."""
        now = self._monotonic()
        hit = self._cache.get(name)
        if hit is not None and hit.until > now:
            return hit.user
        user = self.users.get(name)
        if user is not None and user.disabled:
            user = None
        self._cache[name] = _Cached(user, now + USER_TTL_S)
        return user

    # ------------------------------------------------------------------ CSRF
    def _token(self) -> str:
        token = session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            session["csrf"] = token
        return token

    def _form_token_ok(self) -> bool:
        expected = session.get("csrf")
        given = request.form.get("csrf_token", "")
        return isinstance(expected, str) and hmac.compare_digest(expected, given)

    def _csrf_ok(self) -> bool:
        expected = session.get("csrf")
        given = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token") or ""
        return isinstance(expected, str) and hmac.compare_digest(expected, given)

    def set_csrf_cookie(self, response: Response) -> Response:
        if g.get("cityops_user") is None:
            return response
        token = self._token()
        if request.cookies.get(CSRF_COOKIE) != token:
            self._csrf_cookie(response, token)
        return response

    def _csrf_cookie(self, response: BaseResponse, token: str) -> None:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path=self.requests,
            samesite="Strict",
            secure=self.config.cookie_secure,
            httponly=False,  # Dash's renderer reads it and sends it back as a header
        )

    # ------------------------------------------------------------------ routes
    def _lang(self) -> str:
        value = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
        return as_lang(value, default=as_lang(self.settings.site.language))

    def _next(self) -> str:
        """Where to go after signing in: a path of this app only (no open redirect)."""
        target = request.values.get("next", "")
        if target.startswith(self.requests) and not target.startswith("//") and "\\" not in target:
            return target
        return self.requests

    def login(self) -> Any:
        lang = self._lang()
        if self.config.mode == "proxy":
            return Response(status=404)
        if request.method == "GET":
            notice = "expired" if session.pop("expired", False) else None
            return self._page(lang, notice=notice)
        if not self._form_token_ok():
            return self._page(lang, error="form_expired", status=400)
        username = request.form.get("username", "").strip().lower()
        password = request.form.get("password", "")
        address = request.remote_addr or "?"
        locked = self.throttle.locked_for(username, address)
        if locked is not None:
            minutes = max(1, round(locked.total_seconds() / 60))
            return self._page(lang, error="locked", minutes=minutes, status=429)
        user = self.users.verify(username, password)
        if user is None:
            self.throttle.record_failure(username, address)
            log.info("failed sign-in for %r from %s", username, address)
            return self._page(lang, error="bad_password", username=username, status=401)
        self.throttle.record_success(username, address)
        now = self.clock.now().timestamp()
        target = self._next()
        session.clear()  # a new session: nothing from before signing in carries over
        session.permanent = True
        token = secrets.token_urlsafe(32)
        session.update(u=user.username, t0=now, ts=now, csrf=token)
        self._cache.pop(user.username, None)
        log.info("%s signed in from %s", user.username, address)
        response = redirect(target, code=303)
        self._csrf_cookie(response, token)
        return response

    def logout(self) -> Any:
        if self.config.mode == "proxy":
            return Response(status=404)
        if not self._form_token_ok():
            return Response("CSRF token missing or wrong\n", status=403, mimetype="text/plain")
        session.clear()
        response = redirect(f"{self.requests}login", code=303)
        response.delete_cookie(CSRF_COOKIE, path=self.requests)
        return response

    def _page(
        self,
        lang: str,
        *,
        error: str | None = None,
        notice: str | None = None,
        username: str = "",
        minutes: int = 0,
        status: int = 200,
    ) -> Response:
        html = login_page(
            lang=lang,
            site_name=self.settings.site.name.get(lang),
            action=f"{self.requests}login",
            next_url=self._next(),
            csrf_token=self._token(),
            assets=f"{self.requests}assets/",
            error=error,
            notice=notice,
            username=username,
            minutes=minutes,
        )
        response = Response(html, status=status, mimetype="text/html; charset=utf-8")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        return response
