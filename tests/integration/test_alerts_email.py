"""SmtpNotifier against real aiosmtpd servers: what arrives (with its inline chart), and which
failures are retryable. Also the demo's MailboxServer writing .eml files."""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import SecretStr

from alerts.chart import sparkline_png
from alerts.email import SmtpNotifier
from alerts.facts import AlertFacts, Person
from alerts.mailbox import MailboxServer
from alerts.render import EmailContext, EmailItem, render_email
from core.errors import PermanentError, RetryableError
from core.settings import SmtpSettings
from core.settings_base import Label
from core.types import Notification, SeriesPoint
from tests.fixtures.smtp import SMTP_PASSWORD, SMTP_USER, SmtpTestServer, SmtpTlsServers

pytestmark = pytest.mark.integration

SUBJECT = "[CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 ở mức Xấu — Phường Hải Vân, Thành phố Đà Nẵng"


def notification(*recipients: str) -> Notification:
    return Notification(
        recipients=recipients or ("truc-ban@example.gov.vn",),
        subject=SUBJECT,
        body_text="Giá trị: 92,4 µg/m³, vượt ngưỡng 80 µg/m³\n\nValue: 92.4 µg/m³\n",
        body_html="<p>Giá trị: <strong>92,4 µg/m³</strong></p>",
        headers={
            "Message-ID": "<cityops.pm25-bad.20194.20261102T010100Z.firing@example.gov.vn>",
            "Date": "Mon, 02 Nov 2026 01:01:00 +0000",
            "X-CityOps-Alert": "pm25-bad/20194",
            "Subject": "must not replace the real subject",
        },
    )


def notifier(port: int, **changes: object) -> SmtpNotifier:
    fields: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "sender": "cityops@example.gov.vn",
        "timeout_s": 5,
    }
    fields.update(changes)
    return SmtpNotifier(SmtpSettings.model_validate(fields))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_email_arrives_whole_in_utf8(smtp_server: SmtpTestServer) -> None:
    notifier(smtp_server.port).send(notification("a@example.gov.vn", "b@example.gov.vn"))
    (message,) = smtp_server.wait_for(1)
    assert message["Subject"] == SUBJECT
    assert message["From"] == "cityops@example.gov.vn"
    assert message["To"] == "a@example.gov.vn, b@example.gov.vn"
    assert message["X-CityOps-Alert"] == "pm25-bad/20194"
    assert message["Message-ID"] == (
        "<cityops.pm25-bad.20194.20261102T010100Z.firing@example.gov.vn>"
    )
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    assert "92,4 µg/m³, vượt ngưỡng 80 µg/m³" in text.get_content()
    assert "<strong>92,4 µg/m³</strong>" in html.get_content()
    assert smtp_server.envelopes == [
        ("cityops@example.gov.vn", ["a@example.gov.vn", "b@example.gov.vn"])
    ]


T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
TREND = [SeriesPoint(T0 - timedelta(minutes=15 * (24 - i)), 20.0 + 3 * i) for i in range(25)]


def test_inline_images_arrive_as_related_parts_with_their_content_id(
    smtp_server: SmtpTestServer,
) -> None:
    png = sparkline_png(TREND, threshold=80.0, color="#333333", now=T0)
    other = sparkline_png(TREND[:5], threshold=None, color="#2C7BB6", now=T0)
    sent = Notification(
        recipients=("a@example.gov.vn",),
        subject=SUBJECT,
        body_text="Giá trị: 92,4 µg/m³\n",
        body_html=(
            '<p>Xu hướng</p><img src="cid:trend1.abc@cityops" alt="">'
            '<img src="cid:trend2.def@cityops" alt="">'
        ),
        images={"trend1.abc@cityops": png, "trend2.def@cityops": other},
    )
    notifier(smtp_server.port).send(sent)
    (message,) = smtp_server.wait_for(1)
    assert message.get_content_type() == "multipart/alternative"
    plain, related = message.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content().strip() == "Giá trị: 92,4 µg/m³"  # the text part as before
    assert related.get_content_type() == "multipart/related"
    html, *images = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert [image["Content-ID"] for image in images] == [
        "<trend1.abc@cityops>",
        "<trend2.def@cityops>",
    ]
    for image, expected in zip(images, (png, other), strict=True):
        assert image.get_content_type() == "image/png"
        assert image.get_content_disposition() == "inline"
        assert image.get_content() == expected  # base64 there and back, byte for byte


def test_a_rendered_alert_email_arrives_with_its_chart(smtp_server: SmtpTestServer) -> None:
    person = Person("an.nguyen@example.gov.vn", "Nguyễn Văn An")
    facts = AlertFacts(
        rule_id="pm25-bad",
        unit_code="20194",
        level="commune",
        episode=1,
        kind="firing",
        step=0,
        severity="critical",
        rule_type="threshold",
        metric_id="pm25",
        title=Label(vi="Bụi mịn PM2.5 ở mức Xấu", en="PM2.5 fine dust at the Bad level"),
        metric_label=Label(vi="Bụi mịn PM2.5", en="PM2.5 fine dust"),
        value=92.44,
        value_text=Label(vi="92,4 µg/m³", en="92.4 µg/m³"),
        condition=Label(vi="vượt ngưỡng 80 µg/m³", en="above 80 µg/m³"),
        rule_text=Label(vi="Bụi mịn PM2.5 vượt 80 µg/m³", en="PM2.5 above 80 µg/m³"),
        unit_name=Label(vi="Phường Hải Vân, Thành phố Đà Nẵng", en="Hai Van Ward, Da Nang City"),
        unit_page="/area/commune/20194",
        since=T0,
        fired_at=T0,
        resolved_at=None,
        evaluated_at=T0,
        threshold=80.0,
        parents=("48",),
    )
    context = EmailContext(
        "cityops@example.gov.vn", Label(vi="IOC", en="IOC"), "Asia/Ho_Chi_Minh", "https://ioc"
    )
    rendered = render_email(
        person, [EmailItem(facts, [], TREND, None, "https://ioc/area/commune/20194")], context
    )
    notifier(smtp_server.port).send(rendered)
    (message,) = smtp_server.wait_for(1)
    assert message["Subject"] == (
        "[CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 92,4 µg/m³ — Phường Hải Vân, Thành phố Đà Nẵng"
    )
    assert message["Message-ID"] == rendered.headers["Message-ID"]
    assert message["Auto-Submitted"] == "auto-generated"
    html = message.get_body(("html",))
    assert isinstance(html, EmailMessage)
    (cid,) = re.findall(r'src="cid:([^"]+)"', html.get_content())
    (image,) = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert image["Content-ID"] == f"<{cid}>"
    assert image.get_content() == rendered.images[cid]


def test_server_down_is_retryable() -> None:
    with pytest.raises(RetryableError, match="unreachable") as caught:
        notifier(free_port()).send(notification())
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("451 4.3.0 Mail server temporarily rejected message", RetryableError),
        ("452 4.3.1 Insufficient system storage", RetryableError),
        ("554 5.6.0 Message content rejected", PermanentError),
    ],
)
def test_data_replies_map_to_retryable_or_permanent(
    smtp_server: SmtpTestServer, reply: str, error: type[Exception]
) -> None:
    smtp_server.data_replies.append(reply)
    with pytest.raises(error, match=reply.split()[0]) as caught:
        notifier(smtp_server.port).send(notification())
    assert isinstance(caught.value.__cause__, smtplib.SMTPException)
    assert smtp_server.messages == []


def test_refused_recipient_is_permanent(smtp_server: SmtpTestServer) -> None:
    smtp_server.refuse["nobody@example.gov.vn"] = "550 5.1.1 No such user"
    with pytest.raises(PermanentError, match=r"nobody@example\.gov\.vn: 550"):
        notifier(smtp_server.port).send(notification("nobody@example.gov.vn"))


def test_recipients_only_deferred_is_retryable(smtp_server: SmtpTestServer) -> None:
    smtp_server.refuse["busy@example.gov.vn"] = "450 4.2.1 Mailbox busy"
    with pytest.raises(RetryableError, match="450"):
        notifier(smtp_server.port).send(notification("busy@example.gov.vn"))


def test_partly_refused_is_permanent_so_the_others_get_no_second_copy(
    smtp_server: SmtpTestServer,
) -> None:
    smtp_server.refuse["nobody@example.gov.vn"] = "550 5.1.1 No such user"
    with pytest.raises(PermanentError, match="nobody"):
        notifier(smtp_server.port).send(notification("a@example.gov.vn", "nobody@example.gov.vn"))
    assert smtp_server.envelopes == [("cityops@example.gov.vn", ["a@example.gov.vn"])]


def test_no_recipients_is_permanent_without_connecting() -> None:
    empty = Notification(recipients=(), subject="x", body_text="x")
    with pytest.raises(PermanentError, match=r"alerts\.recipients"):
        notifier(free_port()).send(empty)


def test_starttls_and_login(smtp_tls_servers: SmtpTlsServers) -> None:
    server = smtp_tls_servers.starttls
    server.clear()
    SmtpNotifier(
        SmtpSettings(
            port=server.port,
            starttls=True,
            username=SMTP_USER,
            password=SecretStr(SMTP_PASSWORD),
            sender="cityops@example.gov.vn",
            timeout_s=5,
        ),
        tls_context=smtp_tls_servers.client_context,
    ).send(notification())
    assert server.wait_for(1)[0]["Subject"] == SUBJECT


def test_implicit_tls_and_login(smtp_tls_servers: SmtpTlsServers) -> None:
    server = smtp_tls_servers.smtps
    server.clear()
    SmtpNotifier(
        SmtpSettings(
            port=server.port,
            ssl=True,
            username=SMTP_USER,
            password=SecretStr(SMTP_PASSWORD),
            timeout_s=5,
        ),
        tls_context=smtp_tls_servers.client_context,
    ).send(notification())
    assert server.wait_for(1)[0]["X-CityOps-Alert"] == "pm25-bad/20194"


def test_wrong_password_is_permanent(smtp_tls_servers: SmtpTlsServers) -> None:
    settings = SmtpSettings(
        port=smtp_tls_servers.starttls.port,
        starttls=True,
        username=SMTP_USER,
        password=SecretStr("sai"),
        timeout_s=5,
    )
    with pytest.raises(PermanentError, match="535"):
        SmtpNotifier(settings, tls_context=smtp_tls_servers.client_context).send(notification())


def test_untrusted_certificate_is_permanent(smtp_tls_servers: SmtpTlsServers) -> None:
    settings = SmtpSettings(port=smtp_tls_servers.starttls.port, starttls=True, timeout_s=5)
    with pytest.raises(PermanentError, match="certificate") as caught:
        SmtpNotifier(settings).send(notification())  # the system's CAs do not know it
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)


def test_server_requiring_starttls_refuses_plain_mail(smtp_tls_servers: SmtpTlsServers) -> None:
    with pytest.raises(PermanentError, match="530"):
        notifier(smtp_tls_servers.starttls.port).send(notification())


def test_mailbox_writes_each_email_as_an_eml_file(tmp_path: Path) -> None:
    folder = tmp_path / "mailbox"
    with MailboxServer(folder) as mailbox:
        assert mailbox.port > 0
        sender = notifier(mailbox.port)
        sender.send(notification())
        sender.send(notification("b@example.gov.vn"))
    files = sorted(folder.iterdir())
    assert [path.suffix for path in files] == [".eml", ".eml"]
    assert all(path.name.count("-") == 2 for path in files)  # YYYYmmdd-HHMMSS-n.eml
    first = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert first["Subject"] == SUBJECT
    assert first["X-CityOps-Alert"] == "pm25-bad/20194"
    with pytest.raises(RuntimeError, match="not running"):
        _ = mailbox.port


def test_mailbox_never_overwrites_earlier_files(tmp_path: Path) -> None:
    for _ in range(2):  # two runs of the demo, same folder
        with MailboxServer(tmp_path) as mailbox:
            notifier(mailbox.port).send(notification())
    assert len(list(tmp_path.glob("*.eml"))) == 2
    assert list(tmp_path.glob("*.part")) == []
