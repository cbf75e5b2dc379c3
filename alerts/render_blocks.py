"""The body of an alert e-mail, one language at a time (alerts/render.py assembles it).

Per alert a block: what, where (the unit with its parents), the value against the rule,
since when, why this e-mail (first, reminder, escalation, resolved), the rule, the trend of
the last hours (an inline PNG for the first :data:`~alerts.render.CHARTS` alerts,
alerts/chart.py; a line of numbers for the others), the duty chain, a link to the unit
page and the signed acknowledge link (alerts/links.py). Past
:data:`~alerts.render.DETAILED` alerts the rest is a compact table, one line each.

Every value is escaped (the fragments of ``templates/fragments.html`` through
:func:`alerts.render._html`); the words come from ``templates/words.toml``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from alerts.chart import chart_for
from alerts.facts import AlertFacts, Person
from alerts.links import unverified_claim
from alerts.render import (
    CHARTS,
    DETAILED,
    RESOLVED_COLOR,
    SEVERITY,
    SEVERITY_COLOR,
    SEVERITY_RANK,
    _e,
    _html,
    _word,
    format_local_time,
)
from core.text import format_number

if TYPE_CHECKING:
    from alerts.render import EmailContext, EmailItem

CHART_LINE = "#333333"  # the threshold line takes the alert's colour


def section(
    person: Person,
    items: Sequence[EmailItem],
    context: EmailContext,
    lang: str,
    images: dict[str, bytes] | None,
) -> tuple[str, str]:
    """One language's part, (html, text). ``images`` given: the whole version (charts go
    there); None: the short one (no chart, chain, rule or trend)."""
    htmls: list[str] = []
    texts: list[str] = []
    if len(items) > 1:
        line = _summary([item.facts for item in items], lang)
        htmls.append(_html("summary", text=line))
        texts.append(line)
    for index, item in enumerate(items[:DETAILED]):
        block_html, block_text = _block(item, index, person, context, lang, images)
        htmls.append(block_html)
        texts.append(block_text)
    if items[DETAILED:]:
        table_html, table_text = _compact(items[DETAILED:], context, lang)
        htmls.append(table_html)
        texts.append(table_text)
    return "\n".join(htmls), "\n\n".join(texts)


def _summary(alerts: Sequence[AlertFacts], lang: str) -> str:
    counts = [
        f"{n} {SEVERITY[severity].get(lang).lower()}"
        for severity in SEVERITY_RANK
        if (n := sum(1 for f in alerts if f.kind != "resolved" and f.severity == severity))
    ]
    if resolved := sum(1 for f in alerts if f.kind == "resolved"):
        counts.append(_word("summary_resolved", lang, count=resolved))
    return _word("summary", lang, count=len(alerts), counts=", ".join(counts))


def _block(
    item: EmailItem,
    index: int,
    person: Person,
    context: EmailContext,
    lang: str,
    images: dict[str, bytes] | None,
) -> tuple[str, str]:
    facts, tz = item.facts, context.timezone
    color = RESOLVED_COLOR if facts.kind == "resolved" else SEVERITY_COLOR[facts.severity]
    value, condition = facts.value_text.get(lang), facts.condition.get(lang)
    code = _word("code", lang, code=facts.unit_code)
    rows = [  # label, text, html
        _row(_word("where", lang), f"{facts.unit_name.get(lang)} ({code})"),
        (
            _word("value", lang),
            f"{value}, {condition}",
            _html("value", value=value, condition=condition),
        ),
        _row(_word("since", lang), format_local_time(facts.since, tz, lang)),
    ]
    if facts.kind == "resolved":
        ended = facts.resolved_at or facts.evaluated_at
        rows.append(_row(_word("ended", lang), format_local_time(ended, tz, lang)))
    chain: list[tuple[str, str]] = []
    chart = ""
    if images is not None:  # the whole version
        rows.append(_row(_word("reason", lang), _reason(facts, lang)))
        rows.append(_row(_word("rule", lang), f"{facts.rule_id} — {facts.rule_text.get(lang)}"))
        if (trend := _trend(item, lang, tz)) is not None:
            rows.append(_row(_word("trend", lang), trend))
        chart = _chart(item, index, color, lang, tz, images)
        chain = _chain(item, person, lang, tz)
    note = _word("not_sent", lang) if facts.extra.get("was_not_sent") else ""
    unit_url = _absolute(item.unit_url, context.public_url)
    ack = item.ack_url if facts.kind != "resolved" else None
    ack_note = ""
    if ack and (claim := unverified_claim(ack)) is not None:
        expires = format_local_time(claim.expires_at, tz, lang, zone_label=False)
        ack_note = f"({_word('ack_expires', lang, time=expires)})"
    headline, title = _headline(facts, lang), facts.title.get(lang)

    width = max(len(label) for label, _, _ in rows) + 2
    text = [headline, title, *([note] if note else []), ""]
    text += [f"{label + ':':<{width}}{shown}" for label, shown, _ in rows]
    if chain:
        text += [f"{_word('chain', lang)}:", *(f"  {line}" for line, _ in chain)]
    text.append(f"{_word('unit_link', lang)}: {unit_url}")
    if ack:
        text.append(f"{_word('ack_link', lang)} {ack_note}: {ack}".replace(" :", ":"))

    rows_html = "\n".join(_html("row", label=label, raw={"value": cell}) for label, _, cell in rows)
    chain_html = (
        _html("chain", title=_word("chain", lang), raw={"rows": "\n".join(r for _, r in chain)})
        if chain
        else ""
    )
    pieces = {
        "note": _html("note", text=note) if note else "",
        "rows": rows_html,
        "chart": chart,
        "chain": chain_html,
        "ack": _html("ack", url=ack, color=color, label=_word("ack_link", lang), note=ack_note)
        if ack
        else "",
    }
    block = _html(
        "block",
        color=color,
        headline=headline,
        title=title,
        unit_url=unit_url,
        unit_link=_word("unit_link", lang),
        raw=pieces,
    )
    return block, "\n".join(text)


def _row(label: str, shown: str) -> tuple[str, str, str]:
    return label, shown, _e(shown)


def _headline(facts: AlertFacts, lang: str) -> str:
    severity = SEVERITY[facts.severity].get(lang)
    return _word(f"headline_{facts.kind}", lang, severity=severity, step=facts.step)


def _reason(facts: AlertFacts, lang: str) -> str:
    if facts.kind != "escalation":
        return _word(f"reason_{facts.kind}", lang, step=facts.step)
    minutes = facts.extra.get("unacked_min")
    if not isinstance(minutes, int | float):
        since = facts.fired_at or facts.since
        minutes = (facts.evaluated_at - since).total_seconds() / 60
    shown = format_number(max(float(minutes), 0.0), 0, lang)
    return _word("reason_escalation", lang, minutes=shown)


def _trend(item: EmailItem, lang: str, tz: str) -> str | None:
    """ "từ 02/11 02:00 đến 02/11 08:00: thấp nhất 20,0 µg/m³, cao nhất 95,3 µg/m³, mới
    nhất 92,4 µg/m³" (the HTML of a chart says what the image cannot)."""
    points = sorted(
        (point for point in item.series or () if math.isfinite(point.value)),
        key=lambda point: point.ts,
    )
    if not points:
        return None
    decimals, unit = _number_style(item.facts)
    values = [point.value for point in points]

    def shown(value: float) -> str:
        return f"{format_number(value, decimals, lang)} {unit}".strip()

    return _word(
        "trend_summary",
        lang,
        start=_short_time(points[0].ts, tz),
        end=_short_time(points[-1].ts, tz),
        low=shown(min(values)),
        high=shown(max(values)),
        last=shown(values[-1]),
    )


_VALUE_TEXT = re.compile(r"[+-]?[\d.]+(?:,(\d+))?(?: (\S+))?")


def _number_style(facts: AlertFacts) -> tuple[int, str]:
    """Decimals and unit of the metric: from the facts' extra ("decimals", "metric_unit")
    when the engine put them there, else read off the Vietnamese value ("92,4 µg/m³")."""
    decimals, unit = facts.extra.get("decimals"), facts.extra.get("metric_unit")
    if isinstance(decimals, int) and isinstance(unit, str):
        return decimals, unit
    found = _VALUE_TEXT.fullmatch(facts.value_text.vi)
    return (len(found[1] or ""), found[2] or "") if found else (1, "")


def _chart(
    item: EmailItem, index: int, color: str, lang: str, tz: str, images: dict[str, bytes]
) -> str:
    facts = item.facts
    if index >= CHARTS or not item.series:
        return ""
    png = chart_for(
        item.series,
        threshold=facts.threshold,
        color=CHART_LINE,
        threshold_color=color,
        now=facts.evaluated_at,
    )
    if png is None:
        return ""
    key = f"{facts.rule_id}|{facts.unit_code}|{facts.episode}|{facts.kind}|{facts.step}"
    cid = f"trend{index + 1}.{hashlib.sha256(key.encode()).hexdigest()[:12]}@cityops"
    images[cid] = png
    times = sorted(point.ts for point in item.series)
    start, end = _short_time(times[0], tz), _short_time(times[-1], tz)
    alt = _word("trend_alt", lang, metric=facts.metric_label.get(lang), start=start, end=end)
    return _html("chart", cid=cid, width="480", height="120", alt=alt)


def _chain(item: EmailItem, person: Person, lang: str, tz: str) -> list[tuple[str, str]]:
    """(text line, HTML row) per step of the duty chain; for an alert that has ended, only
    the steps that were told (nobody is to be told any more)."""
    lines: list[tuple[str, str]] = []
    now = item.facts.evaluated_at
    you = f" ({_word('chain_you', lang)})"
    for step in item.chain:
        if item.facts.kind == "resolved" and not step.told:
            continue
        people = ", ".join(
            f"{someone.name} <{someone.email}>" + (you if someone.email == person.email else "")
            for someone in step.people
        )
        at = _clock(step.due, now, tz) if step.due is not None else ""
        if step.told:
            status = _word("chain_told", lang, time=at) if at else _word("chain_told_plain", lang)
        elif step.due is None:
            status = _word("chain_not_told", lang)
        else:
            status = _word("chain_due" if step.due > now else "chain_now", lang, time=at)
        cells = (_word("chain_step", lang, number=step.step + 1), step.unit_name.get(lang))
        row = "".join(_html("cell", text=cell) for cell in (*cells, people, status))
        lines.append((f"{cells[0]} — {cells[1]}: {people} — {status}", f"<tr>{row}</tr>"))
    return lines


def _compact(items: Sequence[EmailItem], context: EmailContext, lang: str) -> tuple[str, str]:
    """The alerts past :data:`DETAILED`: one line each."""
    heading = _word("more", lang, count=len(items))
    head = [_word(key, lang) for key in ("severity", "alert", "where", "value", "since")]
    rows = ["".join(_html("head", text=cell) for cell in (*head, ""))]
    text = [heading]
    for item in items:
        facts = item.facts
        severity = (
            _word("headline_resolved", lang)
            if facts.kind == "resolved"
            else SEVERITY[facts.severity].get(lang)
        )
        since = format_local_time(facts.since, context.timezone, lang, zone_label=False)
        url = _absolute(item.unit_url, context.public_url)
        cells = (severity, *(label.get(lang) for label in (facts.title, facts.unit_name)))
        cells += (facts.value_text.get(lang), since)
        link = _html("link", url=url, text=_word("unit_link", lang))
        rows.append("".join(_html("cell", text=cell) for cell in cells) + f"<td>{link}</td>")
        text.append(f"- [{severity}] {cells[1]} — {cells[2]}: {cells[3]} ({since}) {url}")
    table = "\n".join(f"<tr>{row}</tr>" for row in rows)
    return _html("compact", title=heading, raw={"rows": table}), "\n".join(text)


# -- helpers -------------------------------------------------------------------------------


def _short_time(ts: datetime, tz: str) -> str:
    return f"{ts.astimezone(ZoneInfo(tz)):%d/%m %H:%M}"


def _clock(ts: datetime, today: datetime, tz: str) -> str:
    """ "08:15", or "08:15 03/11" when it is not the alert's day."""
    zone = ZoneInfo(tz)
    local = ts.astimezone(zone)
    same_day = local.date() == today.astimezone(zone).date()
    return f"{local:%H:%M}" if same_day else f"{local:%H:%M %d/%m}"


def _absolute(url: str, public_url: str) -> str:
    return f"{public_url.rstrip('/')}{url}" if url.startswith("/") else url
