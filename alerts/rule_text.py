"""The words an alert e-mail and the alerts console use for a rule, Vietnamese and English.

    title       "Bụi mịn PM2.5 vượt 80 µg/m³" (or the rule's own title)
    condition   "trung bình 1 giờ vượt ngưỡng 80 µg/m³" / "không còn vượt ngưỡng 80 µg/m³"
    value_text  "92,4 µg/m³", "im lặng 35 phút", "+0,62 m trong 60 phút", "83,5 %"
    describe    "Bụi mịn PM2.5 trung bình 1 giờ > 80 µg/m³, kéo dài ít nhất 60 giây"

Numbers use a decimal comma in Vietnamese (core/text.py): limits with only the decimals
they need, measured values with the metric's decimals. A ratio metric whose unit is "%"
is shown ×100 (0.9 → "90 %"). Pure; the tables below are the only wording.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from core.settings import AlertRule, Label, MetricSettings
from core.text import format_number, format_shortest

TextKind = Literal["firing", "resolved"]
LANGS = ("vi", "en")

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
SYMBOL = {"above": ">", "below": "<"}
CLEAR_SYMBOL = {"above": "≤", "below": "≥"}  # where an alert of each op ends
HOLD = Label(vi="kéo dài ít nhất {seconds} giây", en="lasting at least {seconds} s")
IMMEDIATE = Label(vi="báo ngay", en="immediately")
CLEARED_AT = {
    "above": Label(vi="về mức {clear} trở xuống", en="back to {clear} or less"),
    "below": Label(vi="về mức {clear} trở lên", en="back to {clear} or more"),
}
ENDS_AT = Label(vi="hết khi {symbol} {clear}", en="ends at {symbol} {clear}")
AGGREGATION = {
    "mean": Label(vi="trung bình", en="mean"),
    "max": Label(vi="cao nhất", en="maximum"),
    "min": Label(vi="thấp nhất", en="minimum"),
    "last": Label(vi="mới nhất", en="latest"),
    "sum": Label(vi="tổng", en="total"),
}
WINDOW = Label(vi="{aggregation} {span}", en="{aggregation} over {span}")
NO_DATA = {
    "firing": Label(vi="không có dữ liệu quá {silent}", en="no data for more than {silent}"),
    "resolved": Label(vi="có dữ liệu trở lại", en="data is arriving again"),
}
SILENT_FOR = Label(vi="im lặng {elapsed}", en="silent for {elapsed}")
RATE = {
    ("firing", "rise"): Label(
        vi="tăng quá {change} trong {over}", en="rising more than {change} in {over}"
    ),
    ("firing", "fall"): Label(
        vi="giảm quá {change} trong {over}", en="falling more than {change} in {over}"
    ),
    ("resolved", "rise"): Label(
        vi="không còn tăng quá {change} trong {over}",
        en="no longer rising more than {change} in {over}",
    ),
    ("resolved", "fall"): Label(
        vi="không còn giảm quá {change} trong {over}",
        en="no longer falling more than {change} in {over}",
    ),
}
CHANGE_IN = Label(vi="{change} trong {over}", en="{change} in {over}")
KPI = {
    ("firing", "below"): Label(
        vi="dưới chỉ tiêu {target} ({period})", en="below the {target} target ({period})"
    ),
    ("firing", "above"): Label(vi="vượt mức {target} ({period})", en="above {target} ({period})"),
    ("resolved", "below"): Label(
        vi="đạt chỉ tiêu {target} ({period})", en="meets the {target} target ({period})"
    ),
    ("resolved", "above"): Label(
        vi="không còn vượt mức {target} ({period})", en="no longer above {target} ({period})"
    ),
}
KPI_TITLE = {
    "below": Label(vi="dưới chỉ tiêu {target}", en="below the {target} target"),
    "above": Label(vi="vượt mức {target}", en="above {target}"),
}
PERIOD = {
    "day": Label(vi="hôm nay", en="today"),
    "week": Label(vi="tuần này", en="this week"),
    "month": Label(vi="tháng này", en="this month"),
}
LAST_SPAN = Label(vi="trong {span} qua", en="in the last {span}")
UNITS = {
    "s": Label(vi="{n} giây", en="{n} s"),
    "min": Label(vi="{n} phút", en="{n} min"),
    "h": Label(vi="{n} giờ", en="{n} h"),
    "h_min": Label(vi="{h} giờ {m} phút", en="{h} h {m} min"),
    "d_h": Label(vi="{d} ngày {h} giờ", en="{d} days {h} h"),
    "d": Label(vi="{d} ngày", en="{d} days"),
}
NO_VALUE = "—"


def _label(make: Callable[[str], str]) -> Label:
    return Label(vi=make("vi"), en=make("en"))


# -- numbers and durations -----------------------------------------------------------------


def _with_unit(number: str, unit: str) -> str:
    return f"{number} {unit}".strip()


def _limit(value: float, metric: MetricSettings, lang: str) -> str:
    """A configured limit: "80 µg/m³", "0,5 m"."""
    return _with_unit(format_shortest(value, lang), metric.unit)


def _ratio_limit(value: float, metric: MetricSettings, lang: str) -> str:
    shown = value * 100 if metric.unit == "%" else value
    return _with_unit(format_shortest(shown, lang), metric.unit)


def duration(seconds: float, lang: str) -> str:
    """A configured duration, exactly: 900 → "15 phút", 3600 → "60 phút", 7200 → "2 giờ",
    90 → "90 giây"."""
    whole = int(seconds)
    if whole == seconds and whole >= 7200 and whole % 3600 == 0:
        return UNITS["h"].get(lang).format(n=whole // 3600)
    if whole == seconds and whole >= 60 and whole % 60 == 0:
        return UNITS["min"].get(lang).format(n=whole // 60)
    return UNITS["s"].get(lang).format(n=format_shortest(seconds, lang))


def span(seconds: float, lang: str) -> str:
    """A window in whole hours when it is some: 3600 → "1 giờ", 86400 → "24 giờ"."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return UNITS["h"].get(lang).format(n=int(seconds // 3600))
    return duration(seconds, lang)


def elapsed(seconds: float, lang: str) -> str:
    """A measured time, rounded down: "45 giây", "35 phút", "3 giờ 5 phút", "2 ngày 4 giờ"."""
    whole = max(0, int(seconds))
    if whole < 120:
        return UNITS["s"].get(lang).format(n=whole)
    if whole < 7200:
        return UNITS["min"].get(lang).format(n=whole // 60)
    if whole < 2 * 86400:
        hours, minutes = divmod(whole // 60, 60)
        if minutes == 0:
            return UNITS["h"].get(lang).format(n=hours)
        return UNITS["h_min"].get(lang).format(h=hours, m=minutes)
    days, hours = divmod(whole // 3600, 24)
    if hours == 0:
        return UNITS["d"].get(lang).format(d=days)
    return UNITS["d_h"].get(lang).format(d=days, h=hours)


# -- pieces --------------------------------------------------------------------------------


def _window(rule: AlertRule, metric: MetricSettings, lang: str) -> str:
    """ "trung bình 1 giờ " for a window rule, "" for the latest values."""
    if rule.window_s <= 0:
        return ""
    aggregation = AGGREGATION[rule.aggregation or metric.aggregation].get(lang)
    return WINDOW.get(lang).format(aggregation=aggregation, span=span(rule.window_s, lang)) + " "


def _period(rule: AlertRule, lang: str) -> str:
    if rule.period is not None:
        return PERIOD[rule.period].get(lang)
    return LAST_SPAN.get(lang).format(span=span(rule.window_s, lang))


def _target(rule: AlertRule, metric: MetricSettings) -> float:
    target = rule.target if rule.target is not None else metric.target
    return 0.0 if target is None else target


def _hold(rule: AlertRule, lang: str) -> str:
    return HOLD.get(lang).format(seconds=rule.for_s) if rule.for_s > 0 else IMMEDIATE.get(lang)


def _line(rule: AlertRule) -> tuple[Literal["above", "below"], float]:
    """A threshold rule's op and threshold (both set once the settings are validated)."""
    if rule.op is None or rule.threshold is None:
        raise ValueError(f"alert rule {rule.id} has no op and threshold")
    return rule.op, rule.threshold


def _rate_words(rule: AlertRule, metric: MetricSettings, kind: TextKind, lang: str) -> str:
    if rule.change is None or rule.over_s is None or rule.direction is None:
        raise ValueError(f"alert rule {rule.id} has no direction, change and over_s")
    change, over = _limit(rule.change, metric, lang), duration(rule.over_s, lang)
    return RATE[(kind, rule.direction)].get(lang).format(change=change, over=over)


def _kpi_words(rule: AlertRule, metric: MetricSettings, kind: TextKind, lang: str) -> str:
    target = _ratio_limit(_target(rule, metric), metric, lang)
    return (
        KPI[(kind, rule.op or "below")].get(lang).format(target=target, period=_period(rule, lang))
    )


# -- the four texts ------------------------------------------------------------------------


def title(rule: AlertRule, metric: MetricSettings) -> Label:
    """The rule's own title, or one made from the rule: "Bụi mịn PM2.5 vượt 80 µg/m³"."""
    if rule.title is not None:
        return rule.title

    def make(lang: str) -> str:
        name = metric.label.get(lang)
        if rule.type == "no_data":
            return f"{name}: {condition(rule, metric, 'firing').get(lang)}"
        if rule.type == "rate":
            return f"{name} {_rate_words(rule, metric, 'firing', lang)}"
        if rule.type == "kpi":
            target = _ratio_limit(_target(rule, metric), metric, lang)
            return f"{name} {KPI_TITLE[rule.op or 'below'].get(lang).format(target=target)}"
        op, line = _line(rule)
        return f"{name} {RULE_OP[op].get(lang)} {_limit(line, metric, lang)}"

    return _label(make)


def condition(rule: AlertRule, metric: MetricSettings, kind: TextKind) -> Label:
    """What is wrong (``firing``) or what ended (``resolved``)."""

    def make(lang: str) -> str:
        if rule.type == "no_data":
            silent = duration(rule.silent_s or 0, lang)
            return NO_DATA[kind].get(lang).format(silent=silent)
        if rule.type == "rate":
            return _rate_words(rule, metric, kind, lang)
        if rule.type == "kpi":
            return _kpi_words(rule, metric, kind, lang)
        op, line = _line(rule)
        words = COMPARISON[(kind, op)].get(lang).format(threshold=_limit(line, metric, lang))
        text = _window(rule, metric, lang) + words
        if kind == "resolved" and rule.clear is not None and rule.clear != line:
            clear = _limit(rule.clear, metric, lang)
            text += f" ({CLEARED_AT[op].get(lang).format(clear=clear)})"
        return text

    return _label(make)


def value_text(rule: AlertRule, metric: MetricSettings, value: float | None) -> Label:
    """A result's value as the rule means it: a reading, a silence, a change or a rate."""

    def make(lang: str) -> str:
        if value is None:
            return NO_VALUE
        if rule.type == "no_data":
            return SILENT_FOR.get(lang).format(elapsed=elapsed(value, lang))
        number = format_number(value, metric.decimals, lang)
        if rule.type == "rate":
            assert rule.over_s is not None
            change = _with_unit(("+" if value >= 0 else "") + number, metric.unit)
            return CHANGE_IN.get(lang).format(change=change, over=duration(rule.over_s, lang))
        if rule.type == "kpi" and metric.unit == "%":
            return _with_unit(format_number(value * 100, metric.decimals, lang), "%")
        return _with_unit(number, metric.unit)

    return _label(make)


def describe(rule: AlertRule, metric: MetricSettings) -> Label:
    """The whole rule in one line: "Bụi mịn PM2.5 trung bình 1 giờ > 80 µg/m³, kéo dài
    ít nhất 60 giây" (a clear line that differs is added: "; hết khi ≤ 70 µg/m³")."""

    def make(lang: str) -> str:
        name = metric.label.get(lang)
        if rule.type != "threshold":
            words = condition(rule, metric, "firing").get(lang)
            separator = ": " if rule.type == "no_data" else " "
            return f"{name}{separator}{words}, {_hold(rule, lang)}"
        op, line = _line(rule)
        text = f"{name} {_window(rule, metric, lang)}{SYMBOL[op]} {_limit(line, metric, lang)}"
        text += f", {_hold(rule, lang)}"
        if rule.clear is not None and rule.clear != line:
            clear = _limit(rule.clear, metric, lang)
            text += "; " + ENDS_AT.get(lang).format(symbol=CLEAR_SYMBOL[op], clear=clear)
        return text

    return _label(make)
