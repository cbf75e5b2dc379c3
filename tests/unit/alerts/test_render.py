"""Alert e-mails: Vietnamese first, the unit's full name, value, threshold, local time, link."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.evaluate import Result
from alerts.render import AlertContext, format_number, format_threshold, render
from alerts.state import AlertKey, Transition, transition
from core.settings import Label, Settings, load_settings

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội / Đà Nẵng
HAI_VAN = Label(vi="Phường Hải Vân, Thành phố Đà Nẵng", en="Hai Van Ward, Da Nang City")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", environ={})


def context(settings: Settings, rule_id: str = "pm25-bad", unit: Label = HAI_VAN) -> AlertContext:
    rule = next(r for r in settings.alerts.rules if r.id == rule_id)
    return AlertContext(
        rule=rule,
        metric_id=rule.metric,
        metric=settings.metrics[rule.metric],
        unit_name=unit,
        public_url="https://ioc.danang.gov.vn/",
        recipients=("truc-ban@example.gov.vn",),
        sender="cityops@danang.gov.vn",
        site_name=settings.site.name,
    )


def episode(
    code: str = "20194", rule_id: str = "pm25-bad", breach: float = 92.44, ok: float = 41.0
) -> tuple[Transition, Transition]:
    """Breach at T0 (pending), still at T0+60 s (firing), back under at T0+10 min."""
    key = AlertKey(rule_id, code)
    pending = transition(None, Result("breach", breach, T0), T0, 60, key=key)
    firing = transition(pending.current, Result("breach", breach), T0 + timedelta(seconds=60), 60)
    resolved = transition(firing.current, Result("ok", ok), T0 + timedelta(minutes=10), 60)
    assert (firing.notify, resolved.notify) == ("firing", "resolved")
    return firing, resolved


def test_firing_subject_and_body(settings: Settings) -> None:
    firing, _ = episode()
    note = render(firing, context(settings))
    assert note.subject == (
        "[CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 ở mức Xấu — Phường Hải Vân, Thành phố Đà Nẵng"
    )
    assert note.reason == "first"
    assert note.recipients == ("truc-ban@example.gov.vn",)
    text = note.body_text
    # Vietnamese (decimal comma, decimals from the catalogue), then English.
    assert "Giá trị:     92,4 µg/m³, vượt ngưỡng 80 µg/m³" in text
    assert "Value:       92.4 µg/m³, above the threshold of 80 µg/m³" in text
    assert "Phường Hải Vân, Thành phố Đà Nẵng (mã 20194)" in text
    assert "Hai Van Ward, Da Nang City (code 20194)" in text
    # Since when the breach was first seen (not when for_s ran out), in local time.
    assert "Từ lúc:      02/11/2026 08:00 (giờ Việt Nam)" in text
    assert "02/11/2026 08:00 (Vietnam time)" in text
    assert "https://ioc.danang.gov.vn/?unit=20194&metric=pm25" in text
    assert "lần báo đầu tiên" in text
    assert text.index("Ở đâu") < text.index("Where")
    assert note.body_html is not None
    assert "92,4 µg/m³" in note.body_html
    assert 'href="https://ioc.danang.gov.vn/?unit=20194&amp;metric=pm25"' in note.body_html


def test_resolved_subject_body_and_threading(settings: Settings) -> None:
    firing, resolved = episode()
    first = render(firing, context(settings))
    note = render(resolved, context(settings))
    assert (
        note.subject == "[ĐÃ KHÔI PHỤC] Bụi mịn PM2.5 ở mức Xấu — Phường Hải Vân, Thành phố Đà Nẵng"
    )
    assert note.reason == "resolved"
    assert "41,0 µg/m³, không còn vượt ngưỡng 80 µg/m³" in note.body_text
    assert (
        "02/11/2026 08:10 (giờ Việt Nam); cảnh báo bắt đầu lúc 02/11/2026 08:00" in note.body_text
    )
    assert "02/11/2026 08:10 (Vietnam time); the alert began at 02/11/2026 08:00" in note.body_text
    assert note.headers["In-Reply-To"] == first.headers["Message-ID"]
    assert note.headers["Message-ID"] != first.headers["Message-ID"]


def test_headers_are_stable_per_email(settings: Settings) -> None:
    firing, _ = episode()
    once, again = render(firing, context(settings)), render(firing, context(settings))
    assert once.headers == again.headers
    assert once.headers["X-CityOps-Alert"] == "pm25-bad/20194"
    assert once.headers["Message-ID"] == (
        "<cityops.pm25-bad.20194.20261102T010100Z.firing@danang.gov.vn>"
    )
    assert once.headers["Date"] == "Mon, 02 Nov 2026 01:01:00 +0000"
    other_unit, _ = episode(code="20197")
    assert render(other_unit, context(settings)).headers["X-CityOps-Alert"] == "pm25-bad/20197"


def test_water_level_uses_its_decimals_and_threshold(settings: Settings) -> None:
    key = AlertKey("water-cam-le-alarm3", "20260")
    firing = transition(None, Result("breach", 2.634), T0, 0, key=key)
    unit = Label(vi="Phường Cẩm Lệ, Thành phố Đà Nẵng", en="Cam Le Ward, Da Nang City")
    flood = context(settings, "flood-alarm-3", unit)
    rule = flood.rule.model_copy(
        update={"id": "water-cam-le-alarm3", "metric": "water_level", "threshold": 2.5}
    )
    ctx = replace(flood, rule=rule, metric_id="water_level", metric=settings.metrics["water_level"])
    note = render(firing, ctx)
    assert note.subject.startswith("[CẢNH BÁO][Nghiêm trọng] Mực nước trên báo động III")
    assert "2,63 m, vượt ngưỡng 2,5 m" in note.body_text
    assert "2.63 m, above the threshold of 2.5 m" in note.body_text
    assert "báo ngay" in note.body_text


def test_rule_without_title_is_named_from_the_metric(settings: Settings) -> None:
    ctx = context(settings)
    untitled = replace(ctx, rule=ctx.rule.model_copy(update={"title": None}))
    firing, _ = episode()
    note = render(firing, untitled)
    assert note.subject == (
        "[CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 vượt 80 µg/m³ — Phường Hải Vân, Thành phố Đà Nẵng"
    )


def test_text_is_nfc_and_html_is_escaped(settings: Settings) -> None:
    decomposed = unicodedata.normalize("NFD", "Phường <Hải Vân> & Co")
    firing, _ = episode()
    note = render(firing, context(settings, unit=Label(vi=decomposed, en="Hai Van")))
    assert unicodedata.is_normalized("NFC", note.subject)
    assert unicodedata.is_normalized("NFC", note.body_text)
    assert "Phường <Hải Vân> & Co" in note.subject
    assert note.body_html is not None
    assert "Phường &lt;Hải Vân&gt; &amp; Co" in note.body_html
    assert "<Hải Vân>" not in note.body_html


def test_a_transition_without_email_is_refused(settings: Settings) -> None:
    pending = transition(None, Result("breach", 90.0), T0, 60, key=AlertKey("pm25-bad", "20194"))
    with pytest.raises(ValueError, match="no e-mail"):
        render(pending, context(settings))


@pytest.mark.parametrize(
    ("number", "decimals", "lang", "shown"),
    [
        (92.44, 1, "vi", "92,4"),
        (92.44, 1, "en", "92.4"),
        (1234.5, 1, "vi", "1.234,5"),
        (1234.5, 1, "en", "1,234.5"),
        (2.0, 2, "vi", "2,00"),
    ],
)
def test_numbers(number: float, decimals: int, lang: str, shown: str) -> None:
    assert format_number(number, decimals, lang) == shown


def test_thresholds_show_only_needed_decimals() -> None:
    assert [format_threshold(v, "vi") for v in (80.0, 2.5, 0.125)] == ["80", "2,5", "0,125"]
