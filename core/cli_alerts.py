"""`cityops alerts …`: the alert engine, and what people do about alerts from the server.

``cityops alerts`` alone (or ``cityops alerts run``) runs the engine, as the systemd unit
does. The other commands act as an operator on the server: each change names its author
with ``--by`` and is audited in the same transaction, like the dashboard's. Times are read
and shown in the site's time zone (``site.timezone``) as dd/mm/yyyy HH:MM. Exit 0 done,
1 refused or not found (the message says why), 2 a configuration or usage error.

Here: the engine, the session and helpers every command shares, and the commands on one
alert (list, ack, unack, note); silences, the audit log, the duty roster and the e-mail
outbox are core/cli_alerts_duty.py, on the same ``alerts_app``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import Engine, RowMapping, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from alerts.action_records import LOCAL_TIME_FORMAT
from alerts.actions import AckKey, ActionError, AlertActions
from core.cli import ConfigOption, build_engine, settings_or_exit, setup_logging, stop_on_signals
from core.errors import CityOpsError, ConfigError, RetryableError
from core.settings import AlertRule, Settings
from core.text import format_number
from layers.levels import Hierarchy

alerts_app: typer.Typer = typer.Typer(
    help="Cảnh báo / alerts. Without a command: run the alert engine. The commands act as "
    "an operator on the server: --by names who, in the audit log.",
    invoke_without_command=True,
)

ACTIVE_STATES = ("firing", "no_data", "error", "pending")  # listed in this order
By = Annotated[
    str,
    typer.Option(
        help="Người thực hiện / who does it (the CLI acts as an operator on the server; audit log)."
    ),
]
Episode = Annotated[int | None, typer.Option(help="Đợt / episode; default: the current one.")]
Rule = Annotated[str, typer.Argument(help="Mã quy tắc / rule id of alerts.rules: pm25-bad.")]
UnitArg = Annotated[str, typer.Argument(help="Mã đơn vị / unit code, e.g. 20194.")]
Comment = Annotated[str, typer.Option(help="Ghi chú / comment.")]


class NotFound(ActionError, LookupError):
    """No such rule, unit, alert or episode."""


@dataclass(frozen=True, slots=True)
class Env:
    """What the commands read: settings, the state database, the units, the time zone."""

    settings: Settings
    engine: Engine
    hierarchy: Hierarchy
    tz: ZoneInfo
    actions: AlertActions

    @property
    def rules(self) -> dict[str, AlertRule]:
        return {rule.id: rule for rule in self.settings.alerts.rules}

    def unit_name(self, code: str, lang: str = "vi") -> str:
        return self.hierarchy.full_name(code, lang) if self.hierarchy.get(code) else code

    def local(self, at: datetime | None) -> str:
        return "—" if at is None else at.astimezone(self.tz).strftime(LOCAL_TIME_FORMAT)

    def target_name(self, kind: str, target: str) -> str:
        rule = self.rules.get(target) if kind == "rule" else None
        if rule is not None and rule.title is not None:
            return rule.title.vi
        return self.unit_name(target) if kind == "unit" else target


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"lỗi / error: {message}", err=True)
    return typer.Exit(code=code)


@contextmanager
def session(config: Path) -> Iterator[Env]:
    """The command's settings, units and state database (the action tables migrated),
    closed at the end. A bad configuration exits 2; a refused action or an unreachable
    database exits 1 with its message."""
    settings = settings_or_exit(config)
    engine = build_engine(settings)
    try:
        units = Hierarchy.from_csv(
            settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
        )
        actions = AlertActions(engine)
        actions.migrate()
        yield Env(settings, engine, units, ZoneInfo(settings.site.timezone), actions)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    except (ActionError, CityOpsError) as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()


def print_table(header: str, rows: Sequence[Sequence[str]]) -> None:
    """``header``: the column titles separated by "|"."""
    table = [header.split("|"), *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())


def has_table(engine: Engine, name: str) -> bool:
    """Whether the alert engine has made this table (the CLI does not create its tables)."""
    try:
        return inspect(engine).has_table(name)
    except SQLAlchemyError as exc:
        raise RetryableError(f"the state database could not be read: {exc}") from exc


# ---------------------------------------------------------------------------- the engine


def run_engine(config: Path, verbose: bool) -> None:
    setup_logging(verbose)
    settings = settings_or_exit(config)
    setup_logging(verbose, settings, "alerts")
    from alerts.wiring import build_alert_service, build_alerts_exporter
    from core.cli import build_geography, build_store

    geography = build_geography(settings)
    store = build_store(settings)
    exporter = None
    try:
        try:
            engine = build_engine(settings)
            service = build_alert_service(settings, store, engine, geography)
        except ConfigError as exc:  # the roster, the registry or the link key
            typer.echo(f"config error: {exc}", err=True)
            raise typer.Exit(code=2) from None
        exporter = build_alerts_exporter(settings, service, engine)
        if exporter is not None:
            try:
                exporter.start()
            except ConfigError as exc:
                # A second evaluator on this host (a standby) finds the port taken: alerts
                # must still go out, so it runs without /metrics and /health, said loudly.
                logging.getLogger("cityops.alerts").error("%s; running without them", exc)
                exporter = None
        service.run_forever(stop_on_signals())
    finally:
        if exporter is not None:
            exporter.stop()
        store.close()


@alerts_app.callback()
def alerts_main(
    ctx: typer.Context, config: ConfigOption = Path("config.yaml"), verbose: bool = False
) -> None:
    """Cảnh báo / alerts. Without a command: run the alert engine."""
    if ctx.invoked_subcommand is None:
        run_engine(config, verbose)


@alerts_app.command("run")
def alerts_run(config: ConfigOption = Path("config.yaml"), verbose: bool = False) -> None:
    """Chạy bộ cảnh báo / run the alert engine (the same as `cityops alerts`)."""
    run_engine(config, verbose)


# ---------------------------------------------------------------------------- alerts


def read_states(
    env: Env, *, every: bool = False, of: tuple[str, str] | None = None
) -> list[RowMapping]:
    """alert_states rows: the active ones (``every``: all), of one (rule, unit) ``of`` or
    of all; [] before the alert engine has run."""
    from alerts.repository import alert_states

    if not has_table(env.engine, alert_states.name):
        return []
    columns = alert_states.c
    query = select(alert_states)
    if not every:
        query = query.where(columns.state.in_(ACTIVE_STATES))
    if of is not None:
        query = query.where(columns.rule_id == of[0], columns.unit_code == of[1])
    try:
        with env.engine.connect() as connection:
            return list(connection.execute(query).mappings())
    except SQLAlchemyError as exc:
        raise RetryableError(f"alert states could not be read: {exc}") from exc


def check_unit(env: Env, code: str) -> None:
    if env.hierarchy.get(code) is None:
        raise NotFound(
            f"không có đơn vị hành chính mã {code!r}", f"no administrative unit with code {code!r}"
        )


def check_rule(env: Env, rule_id: str) -> None:
    if rule_id not in env.rules:
        known = ", ".join(env.rules) or "—"
        raise NotFound(
            f"không có quy tắc {rule_id!r} trong alerts.rules ({known})",
            f"no rule {rule_id!r} in alerts.rules ({known})",
        )


def find_episode(env: Env, rule_id: str, unit_code: str, episode: int | None) -> AckKey:
    """The episode ``episode`` (default: the latest) of a rule on a unit, which must have
    fired: NotFound otherwise, naming what is missing."""
    check_rule(env, rule_id)
    found = read_states(env, every=True, of=(rule_id, unit_code))
    if not found:
        check_unit(env, unit_code)  # a device rule's "unit" is a device id: known by its row
    latest = int(found[0]["episode"]) if found else 0
    where = f"{rule_id} / {unit_code} ({env.unit_name(unit_code)})"
    if latest < 1:
        raise NotFound(f"{where} chưa từng phát cảnh báo", f"{where} has not fired yet")
    if episode is not None and not 1 <= episode <= latest:
        raise NotFound(
            f"không có đợt {episode} của {where}: các đợt 1–{latest}",
            f"no episode {episode} of {where}: episodes 1–{latest}",
        )
    return AckKey(rule_id, unit_code, latest if episode is None else episode)


def value_text(env: Env, rule_id: str, value: float | None) -> str:
    rule = env.rules.get(rule_id)
    metric = env.settings.metrics.get(rule.metric) if rule is not None else None
    if value is None:
        return "—"
    if metric is None:
        return format_number(value, 2, "vi")
    return f"{format_number(value, metric.decimals, 'vi')} {metric.unit}"


def iso(env: Env, at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(env.tz).isoformat()


@alerts_app.command("list")
def alerts_list(
    config: ConfigOption = Path("config.yaml"),
    every: Annotated[bool, typer.Option("--all", help="Mọi trạng thái / every state.")] = False,
    unit: Annotated[str | None, typer.Option(help="Đơn vị / this unit and inside it.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON, ISO times.")] = False,
) -> None:
    """Cảnh báo đang có / active alerts: rule, unit, state, value, since, who acknowledged.

    Active: firing, no data, error, pending (--all: every state). Times are local."""
    with session(config) as env:
        if unit is not None:
            check_unit(env, unit)
        rows = read_states(env, every=every)
        if unit is not None:
            inside = {r["unit_code"] for r in rows if env.hierarchy.get(r["unit_code"])}
            inside = {code for code in inside if env.hierarchy.is_within(code, unit)}
            rows = [r for r in rows if r["unit_code"] in inside]
        acks = env.actions.acks((r["rule_id"], r["unit_code"], r["episode"]) for r in rows)
        rank = {state: index for index, state in enumerate(ACTIVE_STATES)}
        rows.sort(key=lambda r: r["since"], reverse=True)
        rows.sort(key=lambda r: rank.get(r["state"], len(rank)))
        found = [(r, acks.get(AckKey(r["rule_id"], r["unit_code"], r["episode"]))) for r in rows]
        if as_json:
            records = [
                {
                    **{name: row[name] for name in ("rule_id", "unit_code", "state", "value")},
                    "unit_name": env.unit_name(row["unit_code"]),
                    "unit_name_en": env.unit_name(row["unit_code"], "en"),
                    "since": iso(env, row["since"]),
                    "episode": row["episode"],
                    "acked_by": ack.acked_by if ack else None,
                    "acked_at": iso(env, ack.acked_at if ack else None),
                }
                for row, ack in found
            ]
            typer.echo(json.dumps(records, ensure_ascii=False, indent=2))
            return
        if not rows:
            typer.echo("không có cảnh báo / no alerts")
            return
        print_table(
            "quy tắc/rule|mã/code|đơn vị/unit|trạng thái/state|giá trị/value|từ/since|đợt/ep.|"
            "xác nhận/ack",
            [
                (
                    *(row["rule_id"], row["unit_code"], env.unit_name(row["unit_code"])),
                    row["state"],
                    value_text(env, row["rule_id"], row["value"]),
                    env.local(row["since"]),
                    str(row["episode"] or "—"),
                    f"{ack.acked_by} {env.local(ack.acked_at)}" if ack else "—",
                )
                for row, ack in found
            ],
        )
        typer.echo(f"{len(rows)} cảnh báo / alerts (giờ / times: {env.settings.site.timezone})")


def describe(env: Env, key: AckKey) -> str:
    unit = f"{key.unit_code} ({env.unit_name(key.unit_code)})"
    return f"{key.rule_id} / {unit}, đợt/episode {key.episode}"


@alerts_app.command("ack")
def alerts_ack(
    rule: Rule,
    unit: UnitArg,
    by: By,
    comment: Comment = "",
    episode: Episode = None,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Xác nhận cảnh báo / acknowledge an alert: someone is on it (escalation stops)."""
    with session(config) as env:
        key = find_episode(env, rule, unit, episode)
        made = env.actions.acknowledge(*key, actor=by, comment=comment)
        typer.echo(f"đã xác nhận / acknowledged: {describe(env, key)}, {env.local(made.acked_at)}")


@alerts_app.command("unack")
def alerts_unack(
    rule: Rule,
    unit: UnitArg,
    by: By,
    comment: Comment = "",
    episode: Episode = None,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Rút xác nhận / withdraw an acknowledgement (kept in the history, marked withdrawn)."""
    with session(config) as env:
        key = find_episode(env, rule, unit, episode)
        if not env.actions.unacknowledge(*key, actor=by, comment=comment):
            what = describe(env, key)
            raise NotFound(f"{what} chưa được xác nhận", f"{what} is not acknowledged")
        typer.echo(f"đã rút xác nhận / acknowledgement withdrawn: {describe(env, key)}")


@alerts_app.command("note")
def alerts_note(
    rule: Rule,
    unit: UnitArg,
    by: By,
    text: Annotated[str, typer.Option(help="Nội dung / what was done, how it was resolved.")],
    episode: Episode = None,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Ghi chú một đợt cảnh báo / a note on an episode, e.g. how it was resolved."""
    with session(config) as env:
        key = find_episode(env, rule, unit, episode)
        note = env.actions.add_note(*key, actor=by, text=text)
        typer.echo(f"đã ghi chú / note {note.id} added: {describe(env, key)}")


# Silences, the audit log, the roster and the outbox: core/cli_alerts_duty.py, on this
# typer group. Imported at the bottom because it imports the helpers above.
import core.cli_alerts_duty  # noqa: E402, F401
