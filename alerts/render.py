"""Alert e-mails: a transition → a Notification, Vietnamese first, English second.

The layout lives in ``templates/alert.txt`` and ``templates/alert.html`` (string.Template:
no template engine to install); the words that change with the event are in the tables
below. Numbers use the metric's decimals from the catalogue, with a decimal comma in
Vietnamese; times are shown in the site's zone as "dd/mm/yyyy HH:MM (giờ Việt Nam)".
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from string import Template
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from alerts.state import NotifyKind, Transition
from core.settings import AlertRule, Label, MetricSettings
from core.text import format_number
from core.text import format_shortest as format_threshold
from core.types import Notification

LOCAL_ZONE = "Asia/Ho_Chi_Minh"
TEMPLATES = Path(__file__).resolve().parent / "templates"

SEVERITY = {
    "info": Label(vi="Thông tin", en="Info"),
    "warning": Label(vi="Cảnh báo", en="Warning"),
    "critical": Label(vi="Nghiêm trọng", en="Critical"),
}
SEVERITY_COLOR = {"info": "#2C7BB6", "warning": "#FF7E00", "critical": "#D7191C"}
RESOLVED_COLOR = "#1A9641"

# Subject prefixes; the subject is Vietnamese only (phones cut long subjects).
SUBJECT_FIRING = "[CẢNH BÁO][{severity}] {title} — {where}"
SUBJECT_RESOLVED = "[ĐÃ KHÔI PHỤC] {title} — {where}"

HEADLINE = {
    "firing": Label(vi="CẢNH BÁO — {severity}", en="ALERT — {severity}"),
    "resolved": Label(vi="ĐÃ KHÔI PHỤC", en="RESOLVED"),
}
# Why this e-mail is sent (Alertmanager's notify reason), per kind.
REASON = {
    "firing": Label(
        vi="lần báo đầu tiên của đợt cảnh báo này",
        en="first notification of this alert",
    ),
    "resolved": Label(
        vi="giá trị đã trở lại bình thường, cảnh báo kết thúc",
        en="the value is back to normal, the alert has ended",
    ),
}
COMPARISON = {
    ("firing", "above"): Label(
        vi="vượt ngưỡng {threshold}", en="above the threshold of {threshold}"
    ),
    ("firing", "below"): Label(
        vi="dưới ngưỡng {threshold}", en="below the threshold of {threshold}"
    ),
    ("resolved", "above"): Label(
        vi="không còn vượt ngưỡng {threshold}", en="no longer above {threshold}"
    ),
    ("resolved", "below"): Label(
        vi="không còn dưới ngưỡng {threshold}", en="no longer below {threshold}"
    ),
}
RULE_OP = {"above": Label(vi="vượt", en="above"), "below": Label(vi="dưới", en="below")}
HOLD = Label(vi="kéo dài ít nhất {seconds} giây", en="lasting at least {seconds} s")
IMMEDIATE = Label(vi="báo ngay", en="immediately")
SINCE_RESOLVED = Label(
    vi="{resolved}; cảnh báo bắt đầu lúc {started}", en="{resolved}; the alert began at {started}"
)
ZONE_NAME = {LOCAL_ZONE: Label(vi="giờ Việt Nam", en="Vietnam time")}


@dataclass(frozen=True, slots=True)
class AlertContext:
    """What an e-mail needs besides the transition: the rule, its metric from the catalogue,
    the unit's names, where the dashboard is and who receives it."""

    rule: AlertRule
    metric_id: str
    metric: MetricSettings
    unit_name: Label  # full names, e.g. "Phường Hải Vân, Thành phố Đà Nẵng"
    public_url: str
    recipients: tuple[str, ...]
    sender: str
    site_name: Label
    timezone: str = LOCAL_ZONE


def format_local_time(ts: datetime, timezone: str, lang: str, *, zone_label: bool = True) -> str:
    """ "02/11/2026 08:00 (giờ Việt Nam)" — day first, as written in Vietnam."""
    shown = f"{ts.astimezone(ZoneInfo(timezone)):%d/%m/%Y %H:%M}"
    if not zone_label:
        return shown
    label = ZONE_NAME[timezone].get(lang) if timezone in ZONE_NAME else timezone
    return f"{shown} ({label})"


def alert_header(rule_id: str, unit_code: str) -> str:
    """The stable ``X-CityOps-Alert`` value: mail filters and replies can key on it."""
    return f"{rule_id}/{unit_code}"


def message_id(
    rule_id: str, unit_code: str, episode_start: datetime, kind: str, sender: str
) -> str:
    """Stable per e-mail: a re-send after a crash carries the same Message-ID, so mail
    clients show it once. The episode's start time (not its number) keeps ids unique
    when the state database is reset and episode numbers start again at 1."""
    domain = sender.rpartition("@")[2] or "localhost"
    stamp = f"{episode_start.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"<cityops.{rule_id}.{unit_code}.{stamp}.{kind}@{domain}>"


def episode_start(transition: Transition) -> datetime:
    """When the episode an e-mail belongs to started firing (a resolved state has closed
    it, so that time is on the previous state)."""
    previous = transition.previous
    current = transition.current
    return current.fired_at or (previous.fired_at if previous else None) or current.last_eval


def link(public_url: str, unit_code: str, metric_id: str) -> str:
    return f"{public_url.rstrip('/')}/?{urlencode({'unit': unit_code, 'metric': metric_id})}"


def render(transition: Transition, context: AlertContext) -> Notification:
    """The e-mail for a transition that calls for one (``transition.notify`` set)."""
    kind = transition.notify
    if kind is None:
        raise ValueError(f"transition to {transition.current.state} sends no e-mail")
    fields = _fields(transition, kind, context)
    subject_format = SUBJECT_FIRING if kind == "firing" else SUBJECT_RESOLVED
    subject = subject_format.format(
        severity=SEVERITY[context.rule.severity].vi,
        title=fields["vi_title"],
        where=fields["vi_where"],
    )
    fields["subject"] = subject
    rule_id, unit_code = transition.current.rule_id, transition.current.unit_code
    started = episode_start(transition)
    headers = {
        "Message-ID": message_id(rule_id, unit_code, started, kind, context.sender),
        "Date": format_datetime(transition.current.last_eval.astimezone(UTC)),
        "X-CityOps-Alert": alert_header(rule_id, unit_code),
        "X-CityOps-Event": f"{kind} episode={transition.current.episode}",
        "Auto-Submitted": "auto-generated",  # RFC 3834: no vacation auto-replies
    }
    if kind == "resolved":
        # Thread the resolved e-mail under its firing e-mail.
        firing_id = message_id(rule_id, unit_code, started, "firing", context.sender)
        headers["In-Reply-To"] = firing_id
        headers["References"] = firing_id
    return Notification(
        recipients=context.recipients,
        subject=_nfc(subject),
        body_text=_nfc(_template("alert.txt").substitute(fields)),
        body_html=_nfc(_template("alert.html").substitute(_escaped(fields))),
        reason="first" if kind == "firing" else "resolved",
        headers=headers,
    )


def _fields(transition: Transition, kind: NotifyKind, context: AlertContext) -> dict[str, str]:
    rule, metric, current = context.rule, context.metric, transition.current
    color = RESOLVED_COLOR if kind == "resolved" else SEVERITY_COLOR[rule.severity]
    fields = {
        "unit_code": current.unit_code,
        "rule_id": rule.id,
        "link": link(context.public_url, current.unit_code, context.metric_id),
        "color": color,
    }
    for lang in ("vi", "en"):
        threshold = f"{format_threshold(rule.threshold, lang)} {metric.unit}".strip()
        value = (
            "—"
            if current.value is None
            else f"{format_number(current.value, metric.decimals, lang)} {metric.unit}".strip()
        )
        comparison = COMPARISON[(kind, rule.op)].get(lang).format(threshold=threshold)
        started = current.active_at or current.since
        since = format_local_time(started, context.timezone, lang)
        if kind == "resolved":
            since = SINCE_RESOLVED.get(lang).format(
                resolved=format_local_time(current.since, context.timezone, lang),
                started=format_local_time(started, context.timezone, lang, zone_label=False),
            )
        hold = HOLD.get(lang).format(seconds=rule.for_s) if rule.for_s > 0 else IMMEDIATE.get(lang)
        fields |= {
            f"{lang}_headline": HEADLINE[kind]
            .get(lang)
            .format(severity=SEVERITY[rule.severity].get(lang)),
            f"{lang}_title": _title(rule, metric, lang),
            f"{lang}_where": context.unit_name.get(lang),
            f"{lang}_value": f"{value}, {comparison}",
            f"{lang}_since": since,
            f"{lang}_reason": REASON[kind].get(lang),
            f"{lang}_rule": (
                f"{metric.label.get(lang)} {RULE_OP[rule.op].get(lang)} {threshold}, {hold}"
            ),
            f"{lang}_site": context.site_name.get(lang),
        }
    return fields


def _title(rule: AlertRule, metric: MetricSettings, lang: str) -> str:
    if rule.title is not None:
        return rule.title.get(lang)
    threshold = f"{format_threshold(rule.threshold, lang)} {metric.unit}".strip()
    return f"{metric.label.get(lang)} {RULE_OP[rule.op].get(lang)} {threshold}"


def _escaped(fields: Mapping[str, str]) -> dict[str, str]:
    return {key: html.escape(value, quote=True) for key, value in fields.items()}


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@cache
def _template(name: str) -> Template:
    # Next to this file, not importlib.resources: an editable install made before alerts/
    # had its __init__.py maps the package as a namespace, which resources cannot read.
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))
