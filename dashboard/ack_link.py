"""The acknowledge link of an alert e-mail, ``/ack/<token>``: a small page on the dashboard's
server, in the sign-in page's style, Vietnamese (English when the e-mail was English).

No sign-in: the signed token (alerts/links.py) is the credential, so dashboard/auth.py lets
``/ack/`` through its gate and its CSRF check (the token in the path is the secret; this
page is the only form that posts it).

GET shows which alert the link is about (rule, unit, episode, its state now and any
acknowledgement) with ONE button, and **never changes anything**: mail scanners (Outlook
Safe Links, antivirus gateways) open every link of an e-mail before the person does, and
such a prefetch must not acknowledge an alert nobody has read. POST (the button)
acknowledges through :class:`alerts.actions.AlertActions` as "<e-mail> (e-mail)", which
writes the audit log in the same transaction. An episode that has ended since can still be
acknowledged (the page says so): it tells the duty desk the e-mail reached someone.

Answers: 200 (the page, or "Đã xác nhận"), 400 a cut or forged link, 404 a rule no longer
configured, 410 an expired link (with the way to the unit page), 503 the state database is
down. Never a traceback.
"""

from __future__ import annotations

import logging
from html import escape

from flask import Flask, Response, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from alerts.actions import Ack, AckKey, InvalidAction
from alerts.links import AckClaim, AckSigner, LinkExpired, LinkTampered
from alerts.repository import alert_states
from core.errors import CityOpsError
from dashboard.alerts_data import AlertSource
from dashboard.context import DashboardContext
from dashboard.i18n import add_texts, text
from dashboard.routes import area_href

log = logging.getLogger("cityops.dashboard")

ACK_ROUTE = "ack/<token>"

add_texts(
    {
        "ack_title": ("Xác nhận đã nhận cảnh báo", "Acknowledge an alert"),
        "ack_button": ("Xác nhận đã nhận cảnh báo", "Acknowledge this alert"),
        "ack_comment": ("Ghi chú (không bắt buộc)", "Comment (optional)"),
        "ack_alert": ("Cảnh báo", "Alert"),
        "ack_where": ("Ở đâu", "Where"),
        "ack_episode": ("Đợt", "Episode"),
        "ack_state": ("Tình trạng", "State"),
        "ack_acked": ("Đã xác nhận", "Acknowledged"),
        "ack_sent_to": ("Gửi tới", "Sent to"),
        "ack_acked_by": ("bởi {who} lúc {time}", "by {who} at {time}"),
        "ack_not_yet": ("chưa ai xác nhận", "not yet"),
        "ack_state_open": ("Đang mở: {state}", "Open: {state}"),
        "ack_state_ended": ("Đã kết thúc", "Ended"),
        "ack_state_unknown": ("Không rõ", "Unknown"),
        "ack_firing": ("đang cảnh báo", "firing"),
        "ack_no_data": ("mất dữ liệu", "no data"),
        "ack_error": ("lỗi đánh giá", "evaluation error"),
        "ack_pending": ("đang theo dõi", "pending"),
        "ack_ended_note": (
            "Đợt cảnh báo này đã kết thúc; bạn vẫn có thể xác nhận là đã nhận được thư.",
            "This alert has ended; you can still acknowledge that you received the e-mail.",
        ),
        "ack_done": ("Đã xác nhận", "Acknowledged"),
        "ack_done_note": (
            "Đã ghi nhận: {who} đã nhận cảnh báo này lúc {time}.",
            "Recorded: {who} received this alert at {time}.",
        ),
        "ack_expired": (
            "Liên kết đã hết hạn — hãy mở bảng điều khiển",
            "This link has expired — open the dashboard",
        ),
        "ack_expired_note": (
            "Liên kết xác nhận trong thư chỉ dùng được {hours}. Hãy đăng nhập bảng điều "
            "khiển để xác nhận cảnh báo.",
            "The e-mail's link works for a limited time ({hours}). Sign in to the dashboard "
            "to acknowledge the alert.",
        ),
        "ack_bad_link": ("Liên kết không hợp lệ", "This link is not valid"),
        "ack_bad_link_note": (
            "Liên kết bị cắt hoặc bị sửa. Hãy mở lại liên kết đầy đủ trong thư, hoặc mở "
            "bảng điều khiển.",
            "The link was cut or changed. Open the whole link from the e-mail again, or "
            "open the dashboard.",
        ),
        "ack_no_rule": ("Không còn quy tắc cảnh báo này", "This alert rule no longer exists"),
        "ack_no_rule_note": (
            "Quy tắc {rule} đã bị gỡ khỏi cấu hình; không còn gì để xác nhận.",
            "The rule {rule} was taken out of the configuration; nothing to acknowledge.",
        ),
        "ack_unavailable": ("Tạm thời không xác nhận được", "Cannot acknowledge right now"),
        "ack_unavailable_note": (
            "Cơ sở dữ liệu đang bận hoặc không kết nối được. Hãy thử lại sau ít phút.",
            "The database is busy or unreachable. Try again in a few minutes.",
        ),
        "ack_open_dashboard": ("Mở bảng điều khiển", "Open the dashboard"),
        "ack_open_unit": ("Mở trang đơn vị", "Open the unit page"),
    }
)


class AckPages:
    """The GET and POST of ``/ack/<token>`` for one dashboard server."""

    def __init__(self, source: AlertSource, signer: AckSigner, prefix: str) -> None:
        self.source = source
        self.signer = signer
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"

    def handle(self, token: str) -> Response:
        try:
            return self._handle(token)
        except CityOpsError as exc:  # RetryableError: the state database is down or busy
            log.warning("acknowledge link: %s", exc)
            return self._message("vi", "ack_unavailable", "ack_unavailable_note", status=503)
        except Exception:  # the last line: a page, never a traceback
            log.exception("acknowledge link failed")
            return self._message("vi", "ack_unavailable", "ack_unavailable_note", status=500)

    def _handle(self, token: str) -> Response:
        now = self.source.clock.now()
        try:
            claim = self.signer.verify(token, now)
        except LinkExpired as expired:
            lang = expired.claim.lang
            hours = self.source.settings.alerts.ack_link_hours
            shown = f"{hours:g} giờ" if lang == "vi" else f"{hours:g} h"
            note = text("ack_expired_note", lang, hours=shown)
            return self._page(
                lang, text("ack_expired", lang), note, claim=expired.claim, status=410
            )
        except LinkTampered as tampered:
            log.info("acknowledge link refused: %s", tampered)
            return self._message("vi", "ack_bad_link", "ack_bad_link_note", status=400)
        lang = claim.lang
        if claim.rule_id not in self.source.rules:
            note = text("ack_no_rule_note", lang, rule=claim.rule_id)
            return self._page(lang, text("ack_no_rule", lang), note, status=404)
        if request.method == "POST":
            return self._acknowledge(claim)
        return self._page(lang, text("ack_title", lang), None, claim=claim)

    def _acknowledge(self, claim: AckClaim) -> Response:
        lang = claim.lang
        try:
            ack = self.source.actions.acknowledge(
                claim.rule_id,
                claim.unit_code,
                claim.episode,
                actor=f"{claim.email} (e-mail)",
                comment=request.form.get("comment", ""),
            )
        except InvalidAction as exc:
            return self._page(
                lang, text("ack_title", lang), exc.in_lang(lang), claim=claim, status=400
            )
        log.info(
            "%s acknowledged %s/%s episode %s by e-mail link",
            claim.email,
            claim.rule_id,
            claim.unit_code,
            claim.episode,
        )
        note = text("ack_done_note", lang, who=ack.acked_by, time=self._time(ack, lang))
        return self._page(lang, text("ack_done", lang), note, claim=claim, form=False)

    # ------------------------------------------------------------------ reading
    def _state(self, claim: AckClaim, lang: str) -> tuple[str, bool | None]:
        """The episode's state now in words, and whether it is still open (None: not
        known, e.g. the alert engine has not written its state yet)."""
        query = select(alert_states.c.state, alert_states.c.episode, alert_states.c.fired_at).where(
            alert_states.c.rule_id == claim.rule_id,
            alert_states.c.unit_code == claim.unit_code,
        )
        try:
            with self.source.engine.connect() as connection:
                row = connection.execute(query).one_or_none()
        except SQLAlchemyError as exc:  # the engine may not have made its tables yet
            log.warning("acknowledge link: alert state not read: %s", exc)
            return text("ack_state_unknown", lang), None
        if row is None:
            return text("ack_state_unknown", lang), None
        if row.episode == claim.episode and row.fired_at is not None:
            words = f"ack_{row.state}" if row.state in ("firing", "no_data", "error") else None
            state = text(words or "ack_pending", lang)
            return text("ack_state_open", lang, state=state), True
        return text("ack_state_ended", lang), False

    def _current_ack(self, claim: AckClaim) -> Ack | None:
        key = AckKey(claim.rule_id, claim.unit_code, claim.episode)
        return self.source.actions.acks([key]).get(key)

    def _time(self, ack: Ack, lang: str) -> str:
        return ack.acked_at.astimezone(self.source.tz).strftime("%d/%m/%Y %H:%M")

    def _title(self, rule_id: str, lang: str) -> str:
        rule = self.source.rules[rule_id]
        if rule.title is not None:
            return rule.title.get(lang)
        metric = self.source.settings.metrics.get(rule.metric)
        return f"{metric.label.get(lang)} ({rule_id})" if metric else rule_id

    def _unit_href(self, code: str) -> str:
        """The unit page; a device's unit for a device alert; the map otherwise."""
        hierarchy = self.source.hierarchy
        unit_code = code if hierarchy.get(code) else self.source.device_units().get(code)
        unit = hierarchy.get(unit_code) if unit_code else None
        return area_href(self.prefix, unit.level, unit.code) if unit else self.prefix

    # ------------------------------------------------------------------ pages
    def _message(self, lang: str, title_key: str, note_key: str, *, status: int) -> Response:
        """A page without a readable claim: Vietnamese, then English."""
        note = f"{text(note_key, 'vi')} / {text(note_key, 'en')}"
        title = f"{text(title_key, 'vi')} / {text(title_key, 'en')}"
        return self._page(lang, title, note, status=status)

    def _page(
        self,
        lang: str,
        heading: str,
        note: str | None,
        *,
        claim: AckClaim | None = None,
        form: bool = True,
        status: int = 200,
    ) -> Response:
        """The page; ``note`` None: say whether the alert has ended (a GET)."""
        site = self.source.settings.site.name.get(lang)
        parts: list[str] = []
        href = self.prefix
        if claim is not None and claim.rule_id in self.source.rules:
            details, still_open = self._details(claim, lang)
            if note is None and still_open is False:
                note = text("ack_ended_note", lang)
            parts.append(details)
            href = self._unit_href(claim.unit_code)
            if form and status in (200, 400):
                parts.append(self._form(lang))
        if note:
            parts.insert(0, f'<p class="login-notice" role="status">{escape(note)}</p>')
        link_key = "ack_open_unit" if href != self.prefix else "ack_open_dashboard"
        parts.append(f'<p><a href="{escape(href)}">{escape(text(link_key, lang))}</a></p>')
        body = "\n".join(parts)
        page = f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{escape(heading)} · {escape(site)}</title>
<link rel="stylesheet" href="{escape(self.prefix)}assets/style.css">
</head>
<body class="login-body">
<main class="login-box">
<h1 class="site-title">{escape(site)}</h1>
<h2>{escape(heading)}</h2>
{body}
</main>
</body>
</html>
"""
        response = Response(page, status=status, mimetype="text/html; charset=utf-8")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        # The token is in the URL: the unit link must not hand it on as a Referer.
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex"
        return response

    def _details(self, claim: AckClaim, lang: str) -> tuple[str, bool | None]:
        """The alert as a table, and whether its episode is still open."""
        where = self.source.unit_name(claim.unit_code, lang)
        state, still_open = self._state(claim, lang)
        ack = self._current_ack(claim)
        acked = (
            text("ack_acked_by", lang, who=ack.acked_by, time=self._time(ack, lang))
            if ack is not None
            else text("ack_not_yet", lang)
        )
        rows = [
            ("ack_alert", self._title(claim.rule_id, lang)),
            ("ack_where", f"{where} ({claim.unit_code})"),
            ("ack_episode", str(claim.episode)),
            ("ack_state", state),
            ("ack_acked", acked),
            ("ack_sent_to", claim.email),
        ]
        cells = "\n".join(
            f'<tr><th style="text-align: left; padding: 0.2rem 0.8rem 0.2rem 0;">'
            f"{escape(text(key, lang))}</th><td>{escape(value)}</td></tr>"
            for key, value in rows
        )
        return f'<table class="ack-details">\n{cells}\n</table>', still_open

    def _form(self, lang: str) -> str:
        # Posts to this same URL (the token is in the path); no CSRF field (see above).
        return (
            f'<form method="post" action="{escape(request.path)}" class="login-form">\n'
            f'<label for="comment">{escape(text("ack_comment", lang))}</label>\n'
            '<textarea id="comment" name="comment" rows="3" maxlength="1000" '
            'style="font: inherit; padding: 0.5rem 0.6rem; margin-bottom: 0.6rem;">'
            "</textarea>\n"
            f'<button type="submit">{escape(text("ack_button", lang))}</button>\n'
            "</form>"
        )


def mount_ack_link(
    server: Flask, ctx: DashboardContext, secret: bytes, *, routes_prefix: str = "/"
) -> None:
    """Serve ``<routes_prefix>ack/<token>`` (GET shows, POST acknowledges) on ``server``.
    ``secret`` is the dashboard's key (core/secrets.py), which the alert engine signs with;
    links on the page start with the app's requests prefix (``ctx.url_prefix``)."""
    pages = AckPages(AlertSource.from_context(ctx), AckSigner(secret), ctx.url_prefix)
    routes = routes_prefix if routes_prefix.endswith("/") else routes_prefix + "/"
    server.add_url_rule(
        f"{routes}{ACK_ROUTE}", "cityops_ack", pages.handle, methods=["GET", "POST"]
    )
