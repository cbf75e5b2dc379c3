"""`cityops alerts silence|silences|unsilence|audit|roster|outbox`: the operator's standing
business next to single alerts: silences, the audit log, who is on duty, the e-mail outbox.

Registered on ``alerts_app`` of core/cli_alerts.py (which imports this module at its
bottom) and run through its ``session``, helpers and conventions: --by names the author,
times are local dd/mm/yyyy HH:MM, exit 0 done, 1 refused or not found, 2 a usage error.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from alerts.action_records import local_time, silence_duration
from alerts.actions import Silence
from alerts.facts import Person
from core.cli import ConfigOption
from core.cli_alerts import (
    By,
    Env,
    alerts_app,
    check_rule,
    check_unit,
    has_table,
    print_table,
    session,
)
from core.settings_base import Label

OUTBOX_LABELS = {
    "pending": "chờ gửi/waiting",
    "sending": "đang gửi/sending",
    "sent": "đã gửi/sent",
    "failed": "lỗi/failed",
    "deliveries_pending": "chờ gộp thư/to be grouped",
}


# ---------------------------------------------------------------------------- silences


def registered(env: Env, device_id: str) -> bool:
    """Whether the device registry lists ``device_id`` (True when there is no registry)."""
    path = env.settings.path(env.settings.devices.registry)
    if not path.exists():
        return True
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return any(row.get("device_id") == device_id for row in csv.DictReader(handle))


@alerts_app.command("silence")
def alerts_silence(
    reason: Annotated[str, typer.Option(help="Lý do / why, e.g. bảo trì trạm.")],
    by: By,
    unit: Annotated[str | None, typer.Option(help="Đơn vị / a unit and inside it.")] = None,
    device: Annotated[str | None, typer.Option(help="Thiết bị / a device id.")] = None,
    rule: Annotated[str | None, typer.Option(help="Quy tắc / a rule, everywhere.")] = None,
    duration: Annotated[
        str | None, typer.Option("--for", help="Trong / for 30m, 2h, 1d (90 days at most).")
    ] = None,
    until: Annotated[str | None, typer.Option(help='Đến / until "30/11/2026 07:00".')] = None,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Tạm tắt / silence a unit, a device or a rule --for a time or --until a local time.

    Its e-mails are held, then sent (or dropped) when the silence ends."""
    given = [(k, v) for k, v in (("unit", unit), ("device", device), ("rule", rule)) if v]
    if len(given) != 1:
        raise typer.BadParameter("cần một trong / give one of --unit, --device, --rule")
    if (duration is None) == (until is None):
        raise typer.BadParameter("cần --for hoặc --until / give --for or --until")
    kind, target = given[0]
    with session(config) as env:
        if kind == "unit":
            check_unit(env, target)
        elif kind == "rule":
            check_rule(env, target)
        elif not registered(env, target):
            typer.echo(f"chú ý / note: {target!r} is not in devices.registry", err=True)
        if duration is not None:
            end = datetime.now(UTC) + silence_duration(duration)
        else:
            end = local_time(str(until), env.tz)
        made = env.actions.silence(kind, target, end, reason, by)
        name = env.target_name(kind, target)
        typer.echo(
            f"đã tạm tắt / silenced ({made.id}): {kind} {target} ({name}) "
            f"→ {env.local(made.ends_at)}"
        )


@alerts_app.command("silences")
def alerts_silences(
    config: ConfigOption = Path("config.yaml"),
    every: Annotated[bool, typer.Option("--all", help="Cả đã hết / the latest 100.")] = False,
) -> None:
    """Lệnh tạm tắt / silences in force (--all: the latest 100, ended ones too)."""
    with session(config) as env:
        found = env.actions.recent_silences(100) if every else env.actions.active_silences()
        if not found:
            typer.echo("không có lệnh tạm tắt / no silences")
            return
        now = datetime.now(UTC)

        def status(silence: Silence) -> str:
            if silence.cancelled_at is not None:
                return f"đã huỷ/cancelled {silence.cancelled_by} {env.local(silence.cancelled_at)}"
            if silence.active(now):
                return "hiệu lực/in force"
            return "sắp tới/later" if silence.starts_at > now else "đã hết/over"

        print_table(
            "số/id|loại/kind|đối tượng/target|tên/name|từ/from|đến/until|lý do/reason|người/by|"
            "tình trạng/status",
            [
                (
                    *(str(s.id), s.kind, s.target, env.target_name(s.kind, s.target)),
                    *(env.local(s.starts_at), env.local(s.ends_at), s.reason, s.author),
                    status(s),
                )
                for s in found
            ],
        )


@alerts_app.command("unsilence")
def alerts_unsilence(
    silence_id: Annotated[int, typer.Argument(metavar="ID", help="Số lệnh / the silence id.")],
    by: By,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Huỷ tạm tắt / end a silence now."""
    with session(config) as env:
        done = env.actions.cancel_silence(silence_id, by)
        typer.echo(f"đã huỷ tạm tắt / silence {done.id} cancelled: {done.kind} {done.target}")


# ---------------------------------------------------------------------------- audit, duty, mail


def detail_text(env: Env, detail: dict[str, Any]) -> str:
    parts = [f"đợt/ep. {detail['episode']}"] if "episode" in detail else []
    if "silence_id" in detail:
        parts.append(f"#{detail['silence_id']}")
    if "ends_at" in detail:
        parts.append(f"→ {env.local(datetime.fromisoformat(detail['ends_at']))}")
    parts.extend(str(detail[name]) for name in ("comment", "text", "reason") if detail.get(name))
    return " · ".join(parts)


@alerts_app.command("audit")
def alerts_audit(
    config: ConfigOption = Path("config.yaml"),
    limit: Annotated[int, typer.Option(help="Bao nhiêu / how many, newest first.")] = 50,
    actor: Annotated[str | None, typer.Option(help="Chỉ người này / only this person.")] = None,
) -> None:
    """Nhật ký / the audit log: who acknowledged, noted, silenced what, when (newest first)."""
    with session(config) as env:
        entries = env.actions.audit(limit, actor=actor)
        if not entries:
            typer.echo("nhật ký trống / the audit log is empty")
            return
        print_table(
            "lúc/at|người/actor|việc/action|đối tượng/target|chi tiết/detail",
            [
                (env.local(e.at), e.actor, e.action, e.target, detail_text(env, e.detail))
                for e in entries
            ],
        )


def people_text(people: Sequence[Person]) -> str:
    return ", ".join(f"{person.name} <{person.email}>" for person in people) or "—"


@alerts_app.command("roster")
def alerts_roster(
    config: ConfigOption = Path("config.yaml"),
    at: Annotated[str | None, typer.Option(help='Lúc / at local "30/11/2026 02:00".')] = None,
    unit: Annotated[str | None, typer.Option(help="Chuỗi trực / this unit's duty chain.")] = None,
) -> None:
    """Ai đang trực / who is on duty now (or --at a local time), and a unit's duty chain.

    Without --unit: every unit of the roster. With --unit: that unit and those above it,
    then the chain an unacknowledged alert climbs (the unit, the units above, the desk)."""
    from alerts.roster import Roster

    with session(config) as env:
        units = env.hierarchy
        when = datetime.now(UTC) if at is None else local_time(at, env.tz)
        roster = Roster.from_settings(env.settings, known_unit=lambda c: units.get(c) is not None)
        codes = sorted({entry.unit for entry in roster.entries()})
        if unit is not None:
            check_unit(env, unit)
            codes = [found.code for found in units.ancestors(unit) if found.code in codes]
        typer.echo(f"trực lúc / on duty at {env.local(when)} ({env.settings.site.timezone}):")
        if not codes:
            typer.echo("  không có ai trong lịch trực / nobody in the roster")
        else:
            print_table(
                "mã/code|đơn vị/unit|đang trực/on duty",
                [(c, env.unit_name(c), people_text(roster.on_duty(c, when))) for c in codes],
            )
        if unit is None:
            return
        chain = roster.chain(
            unit,
            [found.code for found in units.ancestors(unit)[-2::-1]],  # nearest first
            when,
            desk=env.settings.alerts.recipients,
            unit_name=lambda code: Label(vi=env.unit_name(code), en=env.unit_name(code, "en")),
        )
        typer.echo(f"chuỗi trực / duty chain of {unit} ({env.unit_name(unit)}):")
        for step in chain:
            typer.echo(f"  {step.step}. {step.unit_name.vi}: {people_text(step.people)}")
        if not chain:
            typer.echo("  không ai được báo / nobody is told (no roster, no alerts.recipients)")


@alerts_app.command("outbox")
def alerts_outbox(
    config: ConfigOption = Path("config.yaml"),
    failed: Annotated[bool, typer.Option(help="Thư lỗi / the failed e-mails too.")] = False,
    limit: Annotated[int, typer.Option(help="Bao nhiêu thư lỗi / how many failed.")] = 20,
) -> None:
    """Thư cảnh báo / alert e-mails: how many wait, are sending, were sent, failed.

    --failed lists the failed ones, newest first, with the mail server's answer."""
    from alerts.delivery_tables import alert_emails
    from alerts.outbox import Outbox

    with session(config) as env:
        if not has_table(env.engine, alert_emails.name):
            typer.echo("chưa có thư / no e-mails yet (the alert engine has not run)")
            return
        outbox = Outbox(env.engine)
        counts = outbox.counts()
        print_table(
            "thư/e-mails|số/count", [(OUTBOX_LABELS.get(k, k), str(n)) for k, n in counts.items()]
        )
        for email in outbox.failed_emails(limit) if failed else []:
            rules = ", ".join(email["rules"]) or "—"
            typer.echo(
                f"\n#{email['id']}  {env.local(email['created_at'])}  → {email['recipient']}  "
                f"({rules}; {email['attempts']} lần/tries)\n    {email['subject']}\n"
                f"    lỗi/error: {email['last_error'] or '—'}"
            )
