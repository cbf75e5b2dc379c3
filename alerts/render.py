"""Alert e-mails: the alerts grouped for one person → one Notification, in their language
first (Vietnamese: the whole e-mail, then a short English version below a rule; English:
the other way round).

Here: the subject, the headers (Message-ID, threading), the page around the body and the
words shared with the body. The body, one block per alert (what, where, the value against
the rule, since when in local time "dd/mm/yyyy HH:MM (giờ Việt Nam)", why this e-mail, the
rule, the trend, the duty chain, the links), is alerts/render_blocks.py; past
:data:`DETAILED` alerts the rest is a compact table, and the first :data:`CHARTS` alerts
get an inline chart. The words about the rule come from the facts (alerts/rule_text.py
words them), the words of the e-mail from ``templates/words.toml``, the page around them
from ``templates/email.{html,txt}``.

HTML for e-mail clients: inline styles, simple tables, no external resource, no script;
every value is escaped. Text is NFC. The Message-ID is stable for the same person and
alerts, so a re-send after a crash is shown once, and a reminder, escalation or resolved
e-mail about one alert threads under its firing e-mail.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from string import Template
from typing import Any
from zoneinfo import ZoneInfo

from alerts.facts import AlertFacts, DutyStep, Person, event_kind_key
from core.settings_base import Label
from core.types import Notification, SeriesPoint

LOCAL_ZONE = "Asia/Ho_Chi_Minh"
TEMPLATES = Path(__file__).resolve().parent / "templates"
DETAILED = 20  # alerts shown whole; the rest of an e-mail is a compact table
CHARTS = 5  # alerts with a trend chart; the next ones get a line of numbers

SEVERITY = {
    "info": Label(vi="Thông tin", en="Info"),
    "warning": Label(vi="Cảnh báo", en="Warning"),
    "critical": Label(vi="Nghiêm trọng", en="Critical"),
}
SEVERITY_COLOR = {"info": "#2C7BB6", "warning": "#FF7E00", "critical": "#D7191C"}
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
RESOLVED_COLOR = "#1A9641"
ZONE_NAME = {LOCAL_ZONE: Label(vi="giờ Việt Nam", en="Vietnam time")}

# The subject is Vietnamese only: phones cut long subjects.
SUBJECT_ONE = "[CẢNH BÁO][{severity}] {metric} {value} — {where}"
SUBJECT_PREFIX = {"reminder": "[NHẮC LẠI lần {step}]", "escalation": "[CHUYỂN CẤP]"}
SUBJECT_RESOLVED = "[ĐÃ KHÔI PHỤC] {metric} — {where}"
SUBJECT_MANY = "[CẢNH BÁO][{severity}] {count} cảnh báo — {where}"
SUBJECT_MANY_RESOLVED = "[ĐÃ KHÔI PHỤC] {count} cảnh báo — {where}"
ELSEWHERE = "{where} và {others} nơi khác"
# Notification.reason per kind; a group takes the most urgent of its alerts.
REASON = {
    "escalation": "escalation",
    "firing": "first",
    "reminder": "repeat",
    "resolved": "resolved",
}


@dataclass(frozen=True, slots=True)
class EmailItem:
    """One alert of an e-mail with what the renderer cannot know itself."""

    facts: AlertFacts
    chain: Sequence[DutyStep]  # the unit's duty chain, annotated (told, due)
    series: Sequence[SeriesPoint] | None  # the last hours, for the chart; None: no chart
    ack_url: str | None  # the signed acknowledge link; never shown for a resolved alert
    unit_url: str  # the unit page (absolute, or a path under public_url)


@dataclass(frozen=True, slots=True)
class EmailContext:
    sender: str
    site_name: Label
    timezone: str
    public_url: str


def format_local_time(ts: datetime, timezone: str, lang: str, *, zone_label: bool = True) -> str:
    """ "02/11/2026 08:00 (giờ Việt Nam)" — day first, as written in Vietnam."""
    shown = f"{ts.astimezone(ZoneInfo(timezone)):%d/%m/%Y %H:%M}"
    if not zone_label:
        return shown
    label = ZONE_NAME[timezone].get(lang) if timezone in ZONE_NAME else timezone
    return f"{shown} ({label})"


def render_email(person: Person, items: Sequence[EmailItem], context: EmailContext) -> Notification:
    """The one e-mail to ``person`` about ``items`` (in the order given)."""
    # Here, not at the top: render_blocks imports this module's words and constants.
    from alerts.render_blocks import section

    if not items:
        raise ValueError("an alert e-mail needs at least one alert")
    first, second = person.lang, ("vi" if person.lang == "en" else "en")
    images: dict[str, bytes] = {}
    first_html, first_text = section(person, items, context, first, images)
    second_html, second_text = section(person, items, context, second, None)
    subject = subject_for([item.facts for item in items])
    footer = [
        f"{context.site_name.get(first)} / {context.site_name.get(second)}",
        f"{_word('for_person', first, name=person.name)} <{person.email}>",
        f"{_word('footer', first)} / {_word('footer', second)}",
    ]
    body_text = _template("email.txt").substitute(
        first=first_text,
        second=second_text,
        other_name=_word("lang_name", second),
        footer="\n".join(footer),
    )
    body_html = _template("email.html").substitute(
        lang=first,
        other_lang=second,
        subject=_e(subject),
        first=first_html,
        second=second_html,
        footer="<br>".join(_e(line) for line in footer),
    )
    return Notification(
        recipients=(person.email,),
        subject=_nfc(subject),
        body_text=_nfc(body_text),
        body_html=_nfc(body_html),
        reason=min((REASON[item.facts.kind] for item in items), key=list(REASON.values()).index),
        headers=_headers(person, [item.facts for item in items], context.sender),
        images=images,
    )


def subject_for(alerts: Sequence[AlertFacts]) -> str:
    """ "[CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 92,4 µg/m³ — Phường Hải Vân, Thành phố Đà
    Nẵng"; several: "[CẢNH BÁO][Nghiêm trọng] 3 cảnh báo — Thành phố Đà Nẵng"."""
    if len(alerts) == 1:
        facts = alerts[0]
        where = facts.unit_name.vi
        if facts.kind == "resolved":
            return _nfc(SUBJECT_RESOLVED.format(metric=facts.metric_label.vi, where=where))
        main = SUBJECT_ONE.format(
            severity=SEVERITY[facts.severity].vi,
            metric=facts.metric_label.vi,
            value=facts.value_text.vi,
            where=where,
        )
        return _nfc(SUBJECT_PREFIX.get(facts.kind, "").format(step=facts.step) + main)
    where = common_place(alerts)
    still_open = [facts for facts in alerts if facts.kind != "resolved"]
    if not still_open:
        return _nfc(SUBJECT_MANY_RESOLVED.format(count=len(alerts), where=where))
    worst = min(still_open, key=lambda facts: SEVERITY_RANK[facts.severity]).severity
    return _nfc(SUBJECT_MANY.format(severity=SEVERITY[worst].vi, count=len(alerts), where=where))


def common_place(alerts: Sequence[AlertFacts], lang: str = "vi") -> str:
    """The nearest unit that holds every alert's unit ("Thành phố Đà Nẵng"), else the first
    unit "và k nơi khác". Parents' names are the tails of the full name (the unit's own
    name, then each parent's, comma-separated, as alerts/places.py writes them)."""
    chains = [_places(facts, lang) for facts in alerts]
    for code, name in chains[0]:
        if all(any(code == other for other, _ in chain) for chain in chains[1:]):
            return name
    others = len({facts.unit_code for facts in alerts} - {alerts[0].unit_code})
    return ELSEWHERE.format(where=alerts[0].unit_name.get(lang), others=others)


def message_id(person_email: str, alerts: Sequence[AlertFacts], sender: str) -> str:
    """<cityops.<16 hex>@<sender's domain>>: a hash of the person and the alerts (rule,
    unit, episode, kind, step, and when the episode began — episode numbers start again at
    1 when the state database is reset), in any order."""
    keys = sorted(
        (f.rule_id, f.unit_code, f.episode, f.kind, f.step, _episode_stamp(f)) for f in alerts
    )
    data = json.dumps([person_email.strip().lower(), keys], ensure_ascii=False)
    digest = hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]
    return f"<cityops.{digest}@{sender.rpartition('@')[2] or 'localhost'}>"


def _episode_stamp(facts: AlertFacts) -> str:
    return f"{(facts.fired_at or facts.since).astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _headers(person: Person, alerts: Sequence[AlertFacts], sender: str) -> dict[str, str]:
    headers = {
        "Message-ID": message_id(person.email, alerts, sender),
        "Date": format_datetime(max(facts.evaluated_at for facts in alerts).astimezone(UTC)),
        "Auto-Submitted": "auto-generated",  # RFC 3834: no vacation auto-replies
        "X-Auto-Response-Suppress": "All",  # the same for Exchange
        "X-CityOps-Alerts": str(len(alerts)),
    }
    if len(alerts) == 1:
        facts = alerts[0]
        headers["X-CityOps-Alert"] = f"{facts.rule_id}/{facts.unit_code}"
        kind = event_kind_key(facts.kind, facts.step)
        headers["X-CityOps-Event"] = f"{kind} episode={facts.episode}"
        if facts.kind != "firing":  # thread it under the firing e-mail to the same person
            firing = _as_firing(facts)
            headers["In-Reply-To"] = headers["References"] = message_id(
                person.email, [firing], sender
            )
    return headers


def _as_firing(facts: AlertFacts) -> AlertFacts:
    return replace(facts, kind="firing", step=0)


# -- helpers -------------------------------------------------------------------------------


def _places(facts: AlertFacts, lang: str) -> list[tuple[str, str]]:
    """(code, full name) of the unit and each unit above it, nearest first."""
    full = facts.unit_name.get(lang)
    parts = full.split(", ")
    codes = (facts.unit_code, *facts.parents)
    if len(parts) != len(codes):  # a name with a comma of its own: only the unit itself
        return [(facts.unit_code, full)]
    return [(code, ", ".join(parts[at:])) for at, code in enumerate(codes)]


def _html(name: str, *, raw: dict[str, str] | None = None, **text: str) -> str:
    """The fragment ``name`` of templates/fragments.html with ``text`` escaped and ``raw``
    (pieces made from fragments) as they are."""
    values = {key: _e(value) for key, value in text.items()} | (raw or {})
    return _fragments()[name].substitute(values)


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _word(key: str, lang: str, **values: Any) -> str:
    vi, en = _words()[key]
    return (en if lang == "en" else vi).format(**values)


@cache
def _words() -> dict[str, tuple[str, str]]:
    raw = tomllib.loads((TEMPLATES / "words.toml").read_text(encoding="utf-8"))
    words: dict[str, tuple[str, str]] = {}
    for key, pair in raw.items():
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            raise ValueError(f"templates/words.toml: {key} must be [Vietnamese, English]")
        words[key] = (pair[0], pair[1])
    return words


@cache
def _fragments() -> dict[str, Template]:
    text = (TEMPLATES / "fragments.html").read_text(encoding="utf-8")
    parts = re.split(r"^<!-- (\w+) -->\n", text, flags=re.MULTILINE)
    return {
        name: Template(body.rstrip("\n"))
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


@cache
def _template(name: str) -> Template:
    # Next to this file, not importlib.resources: an editable install made before alerts/
    # had its __init__.py maps the package as a namespace, which resources cannot read.
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))
