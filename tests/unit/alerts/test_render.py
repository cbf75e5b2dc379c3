"""Alert e-mails for one person: subjects per kind and for groups, both languages, the duty
chain, the acknowledge link, inline charts, escaping and stable Message-IDs."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.facts import AlertFacts, DutyStep, Person
from alerts.links import AckSigner, ack_url
from alerts.render import (
    SEVERITY,
    SEVERITY_COLOR,
    EmailContext,
    EmailItem,
    format_local_time,
    render_email,
)
from core.settings_base import Label
from core.types import Notification, SeriesPoint

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 08:00 in Đà Nẵng
FIRED = T0 + timedelta(seconds=60)
PUBLIC = "https://ioc.danang.gov.vn"
AN = Person("an.nguyen@danang.gov.vn", "Nguyễn Văn An", "vi", "20194")
JOHN = Person("john@danang.gov.vn", "John Smith", "en", "48")
DESK = Person("trucban@danang.gov.vn", "Trực ban", "vi", None)
CONTEXT = EmailContext(
    sender="cityops@danang.gov.vn",
    site_name=Label(vi="Trung tâm IOC Đà Nẵng", en="Da Nang IOC"),
    timezone="Asia/Ho_Chi_Minh",
    public_url=PUBLIC,
)
UNITS = {
    "20194": (Label(vi="Phường Hải Vân", en="Hai Van Ward"), ("48",)),
    "20260": (Label(vi="Phường Cẩm Lệ", en="Cam Le Ward"), ("48",)),
    "00004": (Label(vi="Phường Ba Đình", en="Ba Dinh Ward"), ("01",)),
    "26734": (Label(vi="Phường Sài Gòn", en="Sai Gon Ward"), ("79",)),
}
CITY = {
    "48": Label(vi="Thành phố Đà Nẵng", en="Da Nang City"),
    "01": Label(vi="Thành phố Hà Nội", en="Ha Noi City"),
    "79": Label(vi="Thành phố Hồ Chí Minh", en="Ho Chi Minh City"),
}


def facts(kind: str = "firing", unit: str = "20194", step: int = 0, **changes: Any) -> AlertFacts:
    name, parents = UNITS[unit]
    city = CITY[parents[0]]
    resolved = kind == "resolved"
    made = AlertFacts(
        rule_id="pm25-bad",
        unit_code=unit,
        level="commune",
        episode=3,
        kind=kind,  # type: ignore[arg-type]
        step=step,
        severity="critical",
        rule_type="threshold",
        metric_id="pm25",
        title=Label(vi="Bụi mịn PM2.5 ở mức Xấu", en="PM2.5 fine dust at the Bad level"),
        metric_label=Label(vi="Bụi mịn PM2.5", en="PM2.5 fine dust"),
        value=41.0 if resolved else 92.44,
        value_text=Label(vi="41,0 µg/m³", en="41.0 µg/m³")
        if resolved
        else Label(vi="92,4 µg/m³", en="92.4 µg/m³"),
        condition=Label(vi="không còn vượt ngưỡng 80 µg/m³", en="no longer above 80 µg/m³")
        if resolved
        else Label(vi="vượt ngưỡng 80 µg/m³", en="above the threshold of 80 µg/m³"),
        rule_text=Label(
            vi="Bụi mịn PM2.5 vượt 80 µg/m³, kéo dài ít nhất 60 giây",
            en="PM2.5 fine dust above 80 µg/m³, lasting at least 60 s",
        ),
        unit_name=Label(vi=f"{name.vi}, {city.vi}", en=f"{name.en}, {city.en}"),
        unit_page=f"/area/commune/{unit}",
        since=T0,
        fired_at=FIRED,
        resolved_at=T0 + timedelta(minutes=40) if resolved else None,
        evaluated_at=T0 + timedelta(minutes=40) if resolved else FIRED,
        threshold=80.0,
        parents=parents,
    )
    return replace(made, **changes)


def chain() -> list[DutyStep]:
    return [
        DutyStep(0, "20194", Label(vi="Phường Hải Vân", en="Hai Van Ward"), (AN,), FIRED, True),
        DutyStep(
            1,
            None,
            Label(vi="Trực ban", en="Duty desk"),
            (DESK,),
            FIRED + timedelta(minutes=15),
            False,
        ),
    ]


def series(end: datetime = FIRED) -> list[SeriesPoint]:
    return [SeriesPoint(end - timedelta(minutes=15 * (24 - i)), 20.0 + 3.0 * i) for i in range(25)]


def link(person: Person = AN, hours: float = 24) -> str:
    token = AckSigner(b"test-only-secret-0123456789abcdef").token(
        "pm25-bad", "20194", 3, person.email, person.lang, FIRED + timedelta(hours=hours)
    )
    return ack_url(PUBLIC, token)


def item(alert: AlertFacts | None = None, **changes: Any) -> EmailItem:
    alert = alert or facts()
    made = EmailItem(
        facts=alert,
        chain=chain(),
        series=series(),
        ack_url=link(),
        unit_url=PUBLIC + alert.unit_page,
    )
    return replace(made, **changes)


def render(*items: EmailItem, person: Person = AN) -> Notification:
    return render_email(person, list(items) or [item()], CONTEXT)


# -- subjects ------------------------------------------------------------------------------

HAI_VAN_VI = "Phường Hải Vân, Thành phố Đà Nẵng"


@pytest.mark.parametrize(
    ("alert", "subject"),
    [
        (
            facts(),
            f"[CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 92,4 µg/m³ — {HAI_VAN_VI}",
        ),
        (
            facts("reminder", step=2),
            f"[NHẮC LẠI lần 2][CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 92,4 µg/m³ — {HAI_VAN_VI}",
        ),
        (
            facts("escalation", step=1),
            f"[CHUYỂN CẤP][CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 92,4 µg/m³ — {HAI_VAN_VI}",
        ),
        (facts("resolved"), f"[ĐÃ KHÔI PHỤC] Bụi mịn PM2.5 — {HAI_VAN_VI}"),
        (
            facts(severity="warning"),
            f"[CẢNH BÁO][Cảnh báo] Bụi mịn PM2.5 92,4 µg/m³ — {HAI_VAN_VI}",
        ),
    ],
)
def test_subject_of_one_alert(alert: AlertFacts, subject: str) -> None:
    note = render(item(alert), person=AN)
    assert note.subject == subject
    assert note.recipients == (AN.email,)


def test_subject_of_a_group_names_the_unit_holding_them_all() -> None:
    two_wards = render(
        item(facts(unit="20194", severity="warning")),
        item(facts(unit="20260")),
    )
    assert two_wards.subject == "[CẢNH BÁO][Nghiêm trọng] 2 cảnh báo — Thành phố Đà Nẵng"
    one_ward = render(item(facts()), item(facts(rule_id="pm10-bad", severity="info")))
    assert one_ward.subject == f"[CẢNH BÁO][Nghiêm trọng] 2 cảnh báo — {HAI_VAN_VI}"
    device = facts(
        rule_id="aq-silent",
        unit_code="aq-0007",
        level="device",
        severity="warning",
        unit_name=Label(vi=f"Thiết bị aq-0007 (Trạm Hải Vân), {HAI_VAN_VI}", en="Device aq-0007"),
        parents=("20194", "48"),
    )
    with_device = render(item(device), item(facts(severity="info")))
    assert with_device.subject == f"[CẢNH BÁO][Cảnh báo] 2 cảnh báo — {HAI_VAN_VI}"


def test_subject_of_a_group_across_cities_names_the_first_and_the_others() -> None:
    note = render(
        item(facts(unit="20194", severity="warning")),
        item(facts(unit="00004", severity="warning")),
        item(facts(unit="26734", severity="info")),
    )
    assert note.subject == f"[CẢNH BÁO][Cảnh báo] 3 cảnh báo — {HAI_VAN_VI} và 2 nơi khác"


def test_subject_of_a_group_that_has_all_ended() -> None:
    note = render(item(facts("resolved", unit="20194")), item(facts("resolved", unit="20260")))
    assert note.subject == "[ĐÃ KHÔI PHỤC] 2 cảnh báo — Thành phố Đà Nẵng"
    mixed = render(
        item(facts("resolved", severity="critical")), item(facts(unit="20260", severity="info"))
    )
    assert mixed.subject == "[CẢNH BÁO][Thông tin] 2 cảnh báo — Thành phố Đà Nẵng"


# -- body ----------------------------------------------------------------------------------


def test_vietnamese_first_then_a_short_english_version() -> None:
    note = render()
    text = note.body_text
    assert text.index("Ở đâu:") < text.index("English") < text.index("Where:")
    for words in (
        "CẢNH BÁO — Nghiêm trọng",
        "Bụi mịn PM2.5 ở mức Xấu",
        f"{HAI_VAN_VI} (mã 20194)",
        "92,4 µg/m³, vượt ngưỡng 80 µg/m³",
        "02/11/2026 08:00 (giờ Việt Nam)",
        "lần báo đầu tiên của cảnh báo này",
        "pm25-bad — Bụi mịn PM2.5 vượt 80 µg/m³, kéo dài ít nhất 60 giây",
        "ALERT — Critical",
        "Hai Van Ward, Da Nang City (code 20194)",
        "92.4 µg/m³, above the threshold of 80 µg/m³",
        "02/11/2026 08:00 (Vietnam time)",
        "Thư tự động, vui lòng không trả lời.",
    ):
        assert words in text, words
    english = text[text.index("English") :]
    assert "Rule" not in english
    assert "On duty" not in english
    html = note.body_html or ""
    assert html.index("Ở đâu") < html.index("Where")
    assert '<html lang="vi">' in html
    assert '<div lang="en"' in html


def test_english_reader_gets_english_first() -> None:
    note = render(item(ack_url=link(JOHN)), person=JOHN)
    assert note.body_text.index("Where:") < note.body_text.index("Tiếng Việt")
    assert note.body_text.index("Tiếng Việt") < note.body_text.index("Ở đâu:")
    assert "first notice of this alert" in note.body_text
    assert note.subject.startswith("[CẢNH BÁO][Nghiêm trọng]")  # the subject stays Vietnamese
    assert '<html lang="en">' in (note.body_html or "")


def test_everything_is_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", HAI_VAN_VI)
    assert decomposed != HAI_VAN_VI
    alert = facts(unit_name=Label(vi=decomposed, en="Hai Van Ward, Da Nang City"))
    note = render(item(alert))
    for part in (note.subject, note.body_text, note.body_html or ""):
        assert unicodedata.is_normalized("NFC", part)
        assert HAI_VAN_VI in part


def test_html_escapes_every_value_and_loads_nothing_from_outside() -> None:
    evil = facts(
        title=Label(vi='Bụi <script>alert("x")</script> & khói', en="<b>bold</b>"),
        unit_name=Label(vi='Phường "A" <B>, Thành phố Đà Nẵng', en="A & B"),
    )
    html = render(item(evil)).body_html or ""
    assert "<script>" not in html
    assert "<b>bold</b>" not in html
    assert "Bụi &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; khói" in html
    assert "Phường &quot;A&quot; &lt;B&gt;" in html
    assert "&lt;an.nguyen@danang.gov.vn&gt;" in html  # the chain's "name <e-mail>"
    sources = re.findall(r'src="([^"]+)"', html)
    assert sources
    assert all(source.startswith("cid:") for source in sources)
    assert "<link" not in html
    assert "<script" not in html


def test_duty_chain_says_who_was_told_and_who_is_next() -> None:
    text = render().body_text
    assert "Người trực:" in text
    assert (
        "Bước 1 — Phường Hải Vân: Nguyễn Văn An <an.nguyen@danang.gov.vn> (bạn) — "
        "đã báo lúc 08:01" in text
    )
    assert (
        "Bước 2 — Trực ban: Trực ban <trucban@danang.gov.vn> — "
        "sẽ báo lúc 08:16 nếu chưa ai xác nhận" in text
    )
    html = render(person=JOHN).body_html or ""
    assert "to be told at 08:16 if nobody acknowledges" in html
    # An alert that has ended: who was told, nobody "to be told".
    ended = render(item(facts("resolved"))).body_text
    assert "Bước 1 — Phường Hải Vân" in ended
    assert "sẽ báo lúc" not in ended


def test_escalation_says_nobody_acknowledged() -> None:
    alert = facts("escalation", step=1, evaluated_at=FIRED + timedelta(minutes=15))
    note = render(item(alert))
    assert "chưa ai xác nhận sau 15 phút" in note.body_text
    assert note.reason == "escalation"
    assert "CHUYỂN CẤP — Nghiêm trọng" in note.body_text


def test_ack_link_for_open_alerts_only() -> None:
    url = link()
    for kind, step in (("firing", 0), ("reminder", 1), ("escalation", 1)):
        note = render(item(facts(kind, step=step), ack_url=url))
        assert f"Xác nhận đã nhận (liên kết hết hạn lúc 03/11/2026 08:01): {url}" in note.body_text
        assert f'href="{url}"' in (note.body_html or "")
    resolved = render(item(facts("resolved"), ack_url=url))
    assert url not in resolved.body_text
    assert url not in (resolved.body_html or "")
    assert "Xác nhận đã nhận" not in resolved.body_text
    assert "Kết thúc lúc:" in resolved.body_text
    assert "02/11/2026 08:40" in resolved.body_text
    assert "giá trị đã trở lại bình thường" in resolved.body_text
    without = render(item(ack_url=None))
    assert "Xác nhận đã nhận" not in without.body_text


def test_a_resolved_alert_that_was_never_sent_says_so() -> None:
    alert = facts("resolved", extra={"was_not_sent": True})
    note = render(item(alert))
    assert "cảnh báo này đã tự kết thúc trước khi kịp gửi" in note.body_text
    assert "this alert ended by itself before it could be sent" in note.body_text


def test_charts_inline_for_the_first_five_and_numbers_for_all() -> None:
    items = [item(facts(unit="20194", rule_id=f"rule-{n}")) for n in range(7)]
    note = render(*items)
    html = note.body_html or ""
    assert len(note.images) == 5
    for content_id, png in note.images.items():
        assert f'src="cid:{content_id}"' in html
        assert png.startswith(b"\x89PNG")
    assert len(re.findall(r'src="cid:', html)) == 5
    # Every alert's trend in numbers (min, max, last, span), charts or not.
    line = "từ 02/11 02:01 đến 02/11 08:01: thấp nhất 20,0 µg/m³, cao nhất 92,0 µg/m³"
    assert note.body_text.count(line) == 7
    assert "Thư này có 7 cảnh báo: 7 nghiêm trọng." in note.body_text


def test_no_series_no_chart() -> None:
    note = render(item(series=None), item(facts(unit="20260"), series=[]))
    assert note.images == {}
    assert "cid:" not in (note.body_html or "")
    assert "Xu hướng" not in note.body_text


def test_past_twenty_alerts_a_compact_table() -> None:
    items = [item(facts(unit="20194", rule_id=f"rule-{n:02d}")) for n in range(24)]
    note = render(*items)
    assert "Các cảnh báo khác (4)" in note.body_text
    assert "More alerts (4)" in note.body_text
    assert note.body_text.count("Lý do gửi:") == 20
    assert f"- [Nghiêm trọng] Bụi mịn PM2.5 ở mức Xấu — {HAI_VAN_VI}: 92,4 µg/m³" in note.body_text
    assert note.headers["X-CityOps-Alerts"] == "24"


# -- headers -------------------------------------------------------------------------------


def test_headers_of_one_alert() -> None:
    note = render()
    headers = note.headers
    assert re.fullmatch(r"<cityops\.[0-9a-f]{16}@danang\.gov\.vn>", headers["Message-ID"])
    assert headers["Date"] == "Mon, 02 Nov 2026 01:01:00 +0000"
    assert headers["Auto-Submitted"] == "auto-generated"
    assert headers["X-CityOps-Alert"] == "pm25-bad/20194"
    assert headers["X-CityOps-Alerts"] == "1"
    assert "In-Reply-To" not in headers
    assert note.reason == "first"


def test_message_id_is_stable_per_person_and_alerts() -> None:
    a, b = item(facts(unit="20194")), item(facts(unit="20260"))
    first = render(a, b).headers["Message-ID"]
    assert render(a, b).headers["Message-ID"] == first
    assert render(b, a).headers["Message-ID"] == first  # the same set, another order
    assert render(a, b, person=DESK).headers["Message-ID"] != first
    assert render(a).headers["Message-ID"] != first
    again = item(facts(unit="20194", kind="reminder", step=1))
    assert render(again).headers["Message-ID"] != render(a).headers["Message-ID"]
    # The same numbers after the state database was reset: another episode, another id.
    reset = item(facts(fired_at=FIRED + timedelta(days=30)))
    assert render(reset).headers["Message-ID"] != render(a).headers["Message-ID"]


@pytest.mark.parametrize(("kind", "step"), [("resolved", 0), ("reminder", 2), ("escalation", 1)])
def test_follow_ups_thread_under_the_firing_email(kind: str, step: int) -> None:
    firing_id = render(item(facts()), person=AN).headers["Message-ID"]
    follow_up = render(item(facts(kind, step=step)), person=AN).headers
    assert follow_up["In-Reply-To"] == follow_up["References"] == firing_id
    assert follow_up["Message-ID"] != firing_id
    other_person = render(item(facts(kind, step=step)), person=DESK).headers
    assert other_person["In-Reply-To"] != firing_id


def test_a_group_email_is_not_threaded() -> None:
    headers = render(item(facts("resolved")), item(facts("resolved", unit="20260"))).headers
    assert "In-Reply-To" not in headers
    assert "X-CityOps-Alert" not in headers
    assert headers["X-CityOps-Alerts"] == "2"


def test_reason_of_a_group_is_its_most_urgent_alert() -> None:
    assert render(item(facts("resolved")), item(facts("reminder", step=1))).reason == "repeat"
    assert render(item(facts("reminder", step=1)), item(facts("escalation", step=1))).reason == (
        "escalation"
    )
    assert render(item(facts("resolved"))).reason == "resolved"


def test_nothing_to_send_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_email(AN, [], CONTEXT)


def test_shared_names_stay_importable() -> None:
    assert SEVERITY["critical"].vi == "Nghiêm trọng"
    assert SEVERITY_COLOR["warning"] == "#FF7E00"
    assert format_local_time(T0, "Asia/Ho_Chi_Minh", "vi") == "02/11/2026 08:00 (giờ Việt Nam)"
    assert format_local_time(T0, "Asia/Ho_Chi_Minh", "en", zone_label=False) == "02/11/2026 08:00"
