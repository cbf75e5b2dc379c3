"""The Notifier port over SMTP (smtplib): one connection per e-mail.

Errors say what to do next (Alertmanager's recoverable flag): server unreachable, timed
out, or a 4xx reply → RetryableError (the e-mail stays in the outbox); a 5xx reply, a
refused recipient, a failed login or a missing STARTTLS → PermanentError (retrying
cannot help; an operator must fix the configuration or the address).
"""

from __future__ import annotations

import base64
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from core.errors import PermanentError, RetryableError
from core.settings import SmtpSettings
from core.types import Notification

SmtpFactory = Callable[..., smtplib.SMTP]

# Headers the message builds itself; a notification cannot override them.
_OWN_HEADERS = {"from", "to", "subject", "content-type", "mime-version"}


def build_message(notification: Notification, sender: str) -> EmailMessage:
    """UTF-8 text, plus an HTML alternative when there is one; the notification's headers
    (Message-ID, Date, X-CityOps-Alert ...) are copied as given. With images the HTML
    alternative becomes multipart/related: the HTML, then each PNG as an inline part with
    its Content-ID (the HTML shows it as ``src="cid:<id>"``); the text part is unchanged.
    Attachments follow as parts of a multipart/mixed message, with their file names."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(notification.recipients)
    message["Subject"] = notification.subject
    for name, value in notification.headers.items():
        if name.lower() not in _OWN_HEADERS:
            message[name] = value
    if "Message-ID" not in message:
        message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    message.set_content(notification.body_text, charset="utf-8")
    if notification.body_html is not None:
        message.add_alternative(notification.body_html, subtype="html", charset="utf-8")
        html_part = message.get_body(("html",))
        assert html_part is not None  # just added
        for content_id, png in notification.images.items():
            html_part.add_related(
                png,
                maintype="image",
                subtype="png",
                cid=f"<{content_id}>",
                disposition="inline",
                filename=f"{content_id.partition('@')[0]}.png",
            )
    for attachment in notification.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return message


class SmtpNotifier:
    """core.ports.Notifier. ``smtp_factory`` (plain/STARTTLS) and ``ssl_factory`` (implicit
    TLS) build the connection; tests and the demo pass smtplib's own classes."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        smtp_factory: SmtpFactory = smtplib.SMTP,
        ssl_factory: SmtpFactory = smtplib.SMTP_SSL,
        tls_context: Callable[[], ssl.SSLContext] = ssl.create_default_context,
    ) -> None:
        if settings.ssl and settings.starttls:
            raise PermanentError("smtp.ssl and smtp.starttls cannot both be true")
        self._settings = settings
        self._smtp_factory = smtp_factory
        self._ssl_factory = ssl_factory
        self._tls_context = tls_context

    def send(self, notification: Notification) -> None:
        if not notification.recipients:
            raise PermanentError(
                f"no recipients for {notification.subject!r}: set alerts.recipients"
            )
        message = build_message(notification, self._settings.sender)
        where = f"{self._settings.host}:{self._settings.port}"
        try:
            with self._connect() as smtp:
                self._prepare(smtp)
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _refused_error(exc.recipients, where) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(f"SMTP server {where} does not support it: {exc}") from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise RetryableError(f"SMTP server {where} closed the connection: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            raise _reply_error(exc.smtp_code, exc.smtp_error, where) from exc
        except smtplib.SMTPException as exc:
            raise PermanentError(f"SMTP to {where} failed: {exc}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(f"SMTP server {where}: TLS certificate refused: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            raise RetryableError(f"SMTP server {where} unreachable: {exc}") from exc
        if refused:
            # Delivered to the others: a retry would send them a second copy.
            raise _refused_error(refused, where, partial=True)

    def _connect(self) -> smtplib.SMTP:
        settings = self._settings
        if settings.ssl:
            return self._ssl_factory(
                settings.host,
                settings.port,
                timeout=settings.timeout_s,
                context=self._tls_context(),
            )
        return self._smtp_factory(settings.host, settings.port, timeout=settings.timeout_s)

    def _prepare(self, smtp: smtplib.SMTP) -> None:
        settings = self._settings
        if settings.starttls:
            smtp.ehlo()
            smtp.starttls(context=self._tls_context())
            smtp.ehlo()
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else ""
            _login(smtp, settings.username, password)


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """smtplib's login() only takes ASCII; a Vietnamese password ("mật khẩu") goes as
    AUTH PLAIN in UTF-8 (RFC 4616) instead."""
    if (username + password).isascii():
        smtp.login(username, password)
        return
    smtp.ehlo_or_helo_if_needed()
    mechanisms = smtp.esmtp_features.get("auth", "").upper().split()
    if not smtp.has_extn("auth") or "PLAIN" not in mechanisms:
        raise PermanentError(
            "the SMTP password has non-ASCII characters, which needs AUTH PLAIN; "
            f"the server offers {mechanisms or 'no AUTH'}"
        )
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, reply = smtp.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _reply_error(code: int, reply: Any, where: str) -> RetryableError | PermanentError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    message = f"SMTP server {where} replied {code} {text}"
    if 400 <= code < 500:
        return RetryableError(message)
    return PermanentError(message)


def _refused_error(
    refused: dict[str, tuple[int, bytes]], where: str, *, partial: bool = False
) -> RetryableError | PermanentError:
    shown = "; ".join(
        f"{address}: {code} {reply.decode('utf-8', 'replace')}"
        for address, (code, reply) in sorted(refused.items())
    )
    message = f"SMTP server {where} refused recipients ({shown})"
    if not partial and all(400 <= code < 500 for code, _ in refused.values()):
        return RetryableError(message)  # every recipient only deferred: nobody got it yet
    return PermanentError(message)
