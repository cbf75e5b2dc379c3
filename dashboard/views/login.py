"""The sign-in page: plain HTML from the server (no script needed to sign in), in the
dashboard's style, Vietnamese or English."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from dashboard.i18n import add_texts, text

add_texts(
    {
        "login_title": ("Đăng nhập", "Sign in"),
        "login_username": ("Tên đăng nhập", "Username"),
        "login_password": ("Mật khẩu", "Password"),
        "login_submit": ("Đăng nhập", "Sign in"),
        "login_bad_password": (
            "Sai tên đăng nhập hoặc mật khẩu",
            "Wrong username or password",
        ),
        "login_locked": (
            "Đăng nhập sai quá nhiều lần. Thử lại sau {minutes} phút",
            "Too many failed attempts. Try again in {minutes} min",
        ),
        "login_form_expired": (
            "Biểu mẫu đã hết hạn, vui lòng đăng nhập lại",
            "The form expired, please sign in again",
        ),
        "login_expired": (
            "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại",
            "Your session has ended, please sign in again",
        ),
        "login_help": (
            "Tài khoản do quản trị viên cấp (cityops users add)",
            "Accounts are created by the administrator (cityops users add)",
        ),
        "login_other_lang": ("English", "Tiếng Việt"),
    }
)


def login_page(
    *,
    lang: str,
    site_name: str,
    action: str,
    next_url: str,
    csrf_token: str,
    assets: str,
    error: str | None = None,
    notice: str | None = None,
    username: str = "",
    minutes: int = 0,
) -> str:
    """The whole HTML document of the sign-in page."""
    other = "en" if lang == "vi" else "vi"
    other_href = f"{action}?{urlencode({'lang': other, 'next': next_url})}"
    message = ""
    if error is not None:
        words = text(f"login_{error}", lang, minutes=minutes)
        message = f'<p class="login-error" role="alert">{escape(words)}</p>'
    elif notice is not None:
        words = text(f"login_{notice}", lang)
        message = f'<p class="login-notice" role="status">{escape(words)}</p>'
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(text("login_title", lang))} · {escape(site_name)}</title>
<link rel="stylesheet" href="{escape(assets)}style.css">
</head>
<body class="login-body">
<main class="login-box">
<h1 class="site-title">{escape(site_name)}</h1>
<h2>{escape(text("login_title", lang))}</h2>
{message}
<form method="post" action="{escape(action)}?lang={lang}" class="login-form">
<input type="hidden" name="csrf_token" value="{escape(csrf_token)}">
<input type="hidden" name="next" value="{escape(next_url)}">
<label for="username">{escape(text("login_username", lang))}</label>
<input id="username" name="username" autocomplete="username" required autofocus
 value="{escape(username)}">
<label for="password">{escape(text("login_password", lang))}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{escape(text("login_submit", lang))}</button>
</form>
<p class="login-help">{escape(text("login_help", lang))}</p>
<p><a href="{escape(other_href)}">{escape(text("login_other_lang", lang))}</a></p>
</main>
</body>
</html>
"""
