"""`cityops store …`: the time-series store from the server.

``cityops store setup`` makes what the services may not make themselves when they run as
least-privilege InfluxDB users (design 017, "Least privilege"): the database, the raw and
``rollup`` retention policies and the roll-up continuous query. Run it once as an InfluxDB
admin (CITYOPS_STORE__INFLUXDB__USERNAME / __PASSWORD), and again after changing
``store.retention``. Exit 0 done, 1 InfluxDB refused or is unreachable, 2 a config error.
"""

from __future__ import annotations

from pathlib import Path

import typer

from core.cli import ConfigOption, build_store, settings_or_exit, setup_logging
from core.errors import CityOpsError
from core.store.influx import InfluxStore
from core.store.influx_rollup import CQ_NAME
from core.store.influx_setup import SetupState

store_app: typer.Typer = typer.Typer(
    help="Kho chuỗi thời gian / the time-series store.",
    no_args_is_help=True,
)


@store_app.callback()
def store_main() -> None:
    """Kho chuỗi thời gian / the time-series store (store.backend)."""


def describe_setup(state: SetupState) -> list[str]:
    """The lines ``cityops store setup`` prints: the database, its policies, its CQs."""
    if not state.exists:
        return [f"Cơ sở dữ liệu / database {state.database}: chưa có / missing"]
    lines = [f"Cơ sở dữ liệu / database {state.database}: có / exists"]
    for policy in state.policies:
        kept = "mãi mãi / forever" if policy.duration == "0s" else policy.duration
        default = " (mặc định / default)" if policy.default else ""
        lines.append(f"  chính sách lưu / retention policy {policy.name}: {kept}{default}")
    for name, query in state.queries:
        lines.append(f"  truy vấn liên tục / continuous query {name}: {query}")
    if not any(name == CQ_NAME for name, _ in state.queries):
        lines.append(f"  truy vấn liên tục / continuous query {CQ_NAME}: không có / none")
    return lines


@store_app.command("setup")
def store_setup(config: ConfigOption = Path("config.yaml")) -> None:
    """Tạo CSDL, chính sách lưu và truy vấn liên tục (quyền admin InfluxDB) / create the
    database, retention policies and roll-up CQ, as an InfluxDB admin."""
    settings = settings_or_exit(config)
    setup_logging(settings=settings, service="cityops-store")
    store = build_store(settings)
    try:
        if not isinstance(store, InfluxStore):
            typer.echo(
                "SQLite: không cần thiết lập / nothing to set up (the store makes its tables)"
            )
            return
        try:
            store.setup()
            state = store.describe()
        except CityOpsError as exc:
            typer.echo(f"lỗi / error: {exc}", err=True)
            raise typer.Exit(code=1) from None
        for line in describe_setup(state):
            typer.echo(line)
        if settings.store.retention is None:
            typer.echo("store.retention: không đặt / not set (no roll-up policies needed)")
    finally:
        store.close()
