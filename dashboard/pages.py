"""The pages around the map: each its own Dash app on the main app's Flask server, inside
one shell (navigation, language, user, sign-out), so every page has the same header and
the map page keeps its single layout.

``mount_page`` mounts a page at ``<prefix><path>`` (``…/devices`` redirects to
``…/devices/``); the shell gives every page ``ids.URL``, ``ids.REFRESH`` (the dashboard's
refresh beat) and ``ids.LANG`` for its callbacks. Choosing a language sets a cookie, so
every page (and the next visit) opens in it; ``?lang=`` in a link wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dash
from dash import Input, Output, State, dcc, html
from flask import redirect, session

from dashboard import ids
from dashboard.auth import LANG_COOKIE, current_access, remembered_lang
from dashboard.context import DashboardContext
from dashboard.i18n import add_texts, as_lang, text
from dashboard.routes import parse_location
from dashboard.views.nav import aria
from dashboard.views.page import lang_control

add_texts(
    {
        "nav_overview": ("Tổng quan", "Overview"),
        "nav_devices": ("Thiết bị", "Devices"),
        "nav_alerts": ("Cảnh báo", "Alerts"),
        "nav_health": ("Thu nhận dữ liệu", "Pipeline"),
        "nav_review": ("Báo cáo tuần", "Weekly review"),
        "nav_label": ("Các trang", "Pages"),
        "nav_sign_out": ("Đăng xuất", "Sign out"),
        "role_admin": ("quản trị", "admin"),
        "role_operator": ("trực vận hành", "operator"),
        "role_leader": ("lãnh đạo", "leader"),
        "role_viewer": ("xem", "viewer"),
    }
)

NAV_LINKS = ids.NAV_LINKS
USER_BOX = ids.USER_BOX

# (text key, path below the prefix). The pipeline page is for admins and operators only.
PAGES: tuple[tuple[str, str], ...] = (
    ("nav_overview", ""),
    ("nav_devices", "devices/"),
    ("nav_alerts", "alerts/"),
    ("nav_review", "review/"),
    ("nav_health", "pipeline/"),
)


def nav_links(prefix: str, lang: str, active: str, *, pipeline: bool = True) -> list[Any]:
    """The links between pages, ``active`` (a path of PAGES) marked as the current one."""
    base = prefix if prefix.endswith("/") else prefix + "/"
    links = []
    for key, path in PAGES:
        if path == "pipeline/" and not pipeline:
            continue
        current = path == active
        links.append(
            html.A(
                text(key, lang),
                href=base + path,
                className="nav-link nav-current" if current else "nav-link",
                **(aria(current="page") if current else {}),
            )
        )
    return links


def user_box(prefix: str, lang: str) -> Any:
    """Who is signed in, and the sign-out button (a POST form with the CSRF token)."""
    try:
        access = current_access()
    except PermissionError:
        return None
    base = prefix if prefix.endswith("/") else prefix + "/"
    token = session.get("csrf", "")
    return html.Form(
        [
            html.Span(
                f"{access.username} · {text('role_' + access.role, lang)}", className="user-name"
            ),
            dcc.Input(type="hidden", name="csrf_token", value=token),
            html.Button(text("nav_sign_out", lang), type="submit", className="sign-out"),
        ],
        method="post",
        action=base + "logout",
        className="user-box",
    )


def shell(
    ctx: DashboardContext, *, lang: str, active: str, title: str, body: Any, prefix: str
) -> html.Div:
    """The page: header (title, page links, language, user), then ``body``."""
    try:
        pipeline = current_access().sees_pipeline
    except PermissionError:
        pipeline = False
    header = html.Header(
        [
            html.H1(title, id=ids.SITE_TITLE, className="site-title"),
            html.Nav(
                nav_links(prefix, lang, active, pipeline=pipeline),
                id=NAV_LINKS,
                className="nav-links",
                **aria(label=text("nav_label", lang)),
            ),
            lang_control(lang),
            html.Div(user_box(prefix, lang), id=USER_BOX),
        ],
        className="header",
    )
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh=False),
            dcc.Interval(id=ids.REFRESH, interval=int(ctx.settings.dashboard.refresh_s * 1000)),
            header,
            html.Main(body, className="page-main"),
        ],
        className="page page-scroll",
        lang=lang,
    )


def page_lang(ctx: DashboardContext, search: str | None = None) -> str:
    """``?lang=`` of the URL, else the remembered language, else the site's."""
    chosen = parse_location(None, search).lang if search else None
    return chosen or remembered_lang(ctx.settings.site.language)


def remember_lang(lang_value: object) -> str:
    """Store the chosen language in a cookie (a year) for every page; returns it."""
    lang = as_lang(lang_value)
    response = dash.callback_context.response
    if response is not None:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax")
    return lang


def mount_page(
    main: dash.Dash,
    ctx: DashboardContext,
    *,
    path: str,
    title_key: str,
    layout: Callable[[str], Any],
    register: Callable[[dash.Dash], None],
) -> dash.Dash:
    """Serve a page at ``<main's prefix><path>`` on ``main``'s server: ``layout(lang)`` in
    the shell; ``register(app)`` binds the page's callbacks."""
    routes = (main.config.routes_pathname_prefix or "/") + path
    requests = (main.config.requests_pathname_prefix or "/") + path
    prefix = main.config.requests_pathname_prefix or "/"
    app = dash.Dash(
        f"cityops_{path.strip('/').replace('/', '_')}",
        server=main.server,
        routes_pathname_prefix=routes,
        requests_pathname_prefix=requests,
        assets_folder=main.config.assets_folder,
        assets_ignore=r"^wall\.",  # the wall screens' dark theme is theirs alone
        serve_locally=True,
        compress=False,  # the main app's Flask-Compress already covers the shared server
        title=text(title_key, ctx.settings.site.language),
        update_title="",
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    main.server.add_url_rule(
        routes.rstrip("/"),
        f"cityops_{path.strip('/')}_slash",
        lambda: redirect(requests, code=308),
    )

    def page() -> Any:
        lang = page_lang(ctx)
        return shell(
            ctx,
            lang=lang,
            active=path,
            title=text(title_key, lang),
            body=layout(lang),
            prefix=prefix,
        )

    app.layout = page
    register_shell(app, prefix, path, title_key)
    register(app)
    return app


def register_shell(app: dash.Dash, prefix: str, active: str, title_key: str) -> None:
    """The shell's own callbacks: ``?lang=`` in the URL, and remembering a choice."""

    @app.callback(
        Output(ids.LANG, "value"),
        Input(ids.URL, "search"),
        State(ids.LANG, "value"),
    )
    def _lang_from_url(search: str | None, current: object) -> Any:
        chosen = parse_location(None, search).lang
        return chosen if chosen else dash.no_update

    @app.callback(
        Output(ids.SITE_TITLE, "children"),
        Output(NAV_LINKS, "children"),
        Output(ids.LANG_LABEL, "children"),
        Output(USER_BOX, "children"),
        Input(ids.LANG, "value"),
        prevent_initial_call=True,
    )
    def _relabel(lang_value: object) -> Any:
        lang = remember_lang(lang_value)
        return (text(title_key, lang), *relabel_shell(prefix, lang, active))


def relabel_shell(prefix: str, lang: str, active: str) -> tuple[Any, Any, Any]:
    """The shell's texts in ``lang``: page links, language label, user box."""
    pipeline = current_access().sees_pipeline
    return (
        nav_links(prefix, lang, active, pipeline=pipeline),
        text("lang_label", lang),
        user_box(prefix, lang),
    )
