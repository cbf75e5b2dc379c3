"""The ``cityops`` command: the only place settings are built and adapters wired.

Each service command takes ``--config PATH`` (default ``config.yaml``), validates the
settings once, builds its adapters and runs until SIGINT/SIGTERM. Heavy imports happen
inside the commands so ``cityops check-config`` stays fast.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core.errors import ConfigError, RetryableError
from core.settings import Settings, check_settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from core.ports import Store
    from layers.geography import Geography

app = typer.Typer(
    name="cityops",
    help="cityops — Trung tâm điều hành thông minh / Intelligent Operations Centre dashboard.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Configuration file (YAML).", show_default=True)
]
log = logging.getLogger("cityops")


def setup_logging(
    verbose: bool = False, settings: Settings | None = None, service: str = "cityops"
) -> None:
    """Text lines on stderr until the settings are read; then ``logging.format`` (text or
    JSON lines) and ``logging.level`` (``--verbose``: DEBUG), records tagged ``service``."""
    from core.logs import configure_logging

    chosen = settings.logging if settings is not None else None
    configure_logging(
        log_format=chosen.format if chosen is not None else "text",
        level="DEBUG" if verbose else (chosen.level if chosen is not None else "INFO"),
        service=service,
        stream=sys.stderr,
    )


def settings_or_exit(path: Path) -> Settings:
    """Load settings; on a bad file print every problem and exit 2."""
    try:
        return load_settings(path)
    except ConfigError:
        for problem in check_settings(path):
            typer.echo(f"config error: {problem}", err=True)
        raise typer.Exit(code=2) from None


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so services shut down cleanly (flush, disconnect)."""
    stop = threading.Event()

    def _handler(signum: int, _frame: object) -> None:
        log.info("signal %s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def build_geography(settings: Settings) -> Geography:
    from layers.geography import Geography

    return Geography.from_settings(settings)


def build_store(settings: Settings) -> Store:
    from core.store import make_store

    return make_store(settings.store, settings.base_dir)


def build_engine(settings: Settings) -> Engine:
    from core.db import make_engine

    return make_engine(settings.database.url, settings.base_dir)


deadletter_app = typer.Typer(
    help="Dead letters: messages that could not be ingested, kept with their reason.",
    no_args_is_help=True,
)
app.add_typer(deadletter_app, name="deadletter")


@deadletter_app.command("list")
def deadletter_list(
    config: ConfigOption = Path("config.yaml"),
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """Show the newest dead letters: when (local time), topic, reason, payload."""
    settings = settings_or_exit(config)
    from core.clock import to_local
    from ingest.deadletter import SqlDeadLetterStore

    store = SqlDeadLetterStore(build_engine(settings))
    letters = store.recent(limit)
    typer.echo(f"{store.count()} dead letters; newest {len(letters)}:")
    for letter in letters:
        when = to_local(letter.received_at).strftime("%d/%m/%Y %H:%M:%S")
        payload = letter.payload[:120].decode("utf-8", errors="replace")
        typer.echo(f"{when}  {letter.topic}  {letter.reason}\n    {payload!r}")


@deadletter_app.command("replay")
def deadletter_replay(
    config: ConfigOption = Path("config.yaml"),
    limit: Annotated[int, typer.Option(help="Replay at most this many, oldest first.")] = 1000,
    topic: Annotated[str | None, typer.Option(help="Only topics starting with this.")] = None,
) -> None:
    """Publish dead letters to the broker again (after fixing their cause); each one is
    deleted once the broker has it. Those still bad come back with their reason."""
    settings = settings_or_exit(config)
    from ingest.deadletter import SqlDeadLetterStore
    from ingest.replay import replay

    store = SqlDeadLetterStore(build_engine(settings))
    try:
        count = replay(settings, store, store.oldest(limit, topic_prefix=topic))
    except RetryableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"replayed {count} dead letters to {settings.broker.host}:{settings.broker.port}")


devices_app = typer.Typer(help="Devices seen by the ingest worker.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")


@devices_app.command("unassigned")
def devices_unassigned(
    config: ConfigOption = Path("config.yaml"),
    limit: Annotated[int, typer.Option(help="How many, most recently seen first.")] = 100,
) -> None:
    """Devices stored under the "unassigned" unit (not registered and no position, or
    outside the map): register them in devices.registry to place them."""
    settings = settings_or_exit(config)
    from core.clock import to_local
    from ingest.unassigned import SqlUnassignedDevices

    try:
        devices = SqlUnassignedDevices(build_engine(settings)).recent(limit)
    except RetryableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if not devices:
        typer.echo("no unassigned devices")
        return
    rows = [("device", "kind", "why", "first seen", "last seen", "count")]
    for device in devices:
        rows.append(
            (
                device.device_id,
                device.kind,
                device.why,
                to_local(device.first_seen).strftime("%d/%m/%Y %H:%M:%S"),
                to_local(device.last_seen).strftime("%d/%m/%Y %H:%M:%S"),
                str(device.count),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1].rjust(widths[-1])]).rstrip())
    typer.echo(f"{len(devices)} unassigned devices (times in Asia/Ho_Chi_Minh)")


layers_app = typer.Typer(
    help="Ranh giới hành chính / administrative boundaries: import from a GIS office, check.",
    no_args_is_help=True,
)
app.add_typer(layers_app, name="layers")


@layers_app.command("import")
def layers_import(
    source: Annotated[Path, typer.Argument(help="GeoJSON, Shapefile (.shp) or GeoPackage.")],
    level: Annotated[str, typer.Option(help="Level of hierarchy.levels, e.g. commune.")],
    out: Annotated[Path, typer.Option(help="The prepared GeoJSON to write.")],
    config: ConfigOption = Path("config.yaml"),
    code_field: Annotated[str | None, typer.Option(help="Default layers.import_fields.")] = None,
    name_field: Annotated[str | None, typer.Option(help="Default layers.import_fields.")] = None,
    parent_field: Annotated[str | None, typer.Option(help="Default layers.import_fields.")] = None,
    layer: Annotated[str | None, typer.Option(help="Layer of a GeoPackage.")] = None,
    source_crs: Annotated[str | None, typer.Option(help="CRS of a file without one.")] = None,
) -> None:
    """Import boundaries: map fields, reproject to EPSG:4326, pad codes, repair geometry.
    Exit 0 written, 2 the file cannot be used (nothing written)."""
    settings = settings_or_exit(config)
    from layers.importer import FieldNames, LayerFileError, import_boundaries
    from layers.layer_report import import_lines

    defaults = settings.layers.import_fields
    fields = FieldNames(
        code=code_field or defaults.code,
        name=name_field or defaults.name,
        parent=parent_field or defaults.parent,
    )
    try:
        report = import_boundaries(
            source,
            out,
            level=level,
            levels=list(settings.hierarchy.levels),
            fields=fields,
            layer=layer,
            source_crs=source_crs,
        )
    except LayerFileError as exc:
        typer.echo(f"lỗi / error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    for line in import_lines(report, level):
        typer.echo(line)


@layers_app.command("check")
def layers_check(
    path: Annotated[Path, typer.Argument(help="A prepared boundary layer (property code).")],
    level: Annotated[str, typer.Option(help="Level of hierarchy.levels, e.g. commune.")],
    config: ConfigOption = Path("config.yaml"),
    parent_layer: Annotated[Path | None, typer.Option(help="Boundaries one level up.")] = None,
    min_area_m2: Annotated[float, typer.Option(help="Slivers, gaps, overlaps: m².")] = 100.0,
    scope: Annotated[
        str | None, typer.Option(help="Unit code, or 'all'; default layers.scope.")
    ] = None,
) -> None:
    """Check a boundary layer. Exit 0 usable (warnings are printed), 1 not usable (errors),
    2 the file cannot be read."""
    settings = settings_or_exit(config)
    from layers.check import check_layer
    from layers.importer import LayerFileError
    from layers.layer_report import check_lines
    from layers.levels import Hierarchy

    try:
        hierarchy = Hierarchy.from_csv(
            settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
        )
        report = check_layer(
            path,
            level,
            hierarchy,
            scope=settings.layers.scope if scope is None else (None if scope == "all" else scope),
            parent_layer=parent_layer,
            min_area_m2=min_area_m2,
        )
    except (LayerFileError, ConfigError) as exc:
        typer.echo(f"lỗi / error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    for line in check_lines(report, hierarchy):
        typer.echo(line)
    raise typer.Exit(code=report.exit_code)


@app.command("check-config")
def check_config(config: ConfigOption = Path("config.yaml")) -> None:
    """Check a configuration file: print every problem and exit non-zero if there is one."""
    problems = check_settings(config)
    if not problems:
        try:
            settings = load_settings(config)
            geography = build_geography(settings)
            devices_path = settings.path(settings.devices.registry)
            if devices_path.exists():
                from layers.registry import read_registry

                read_registry(devices_path, geography)
            from alerts.roster import Roster

            hierarchy = geography.hierarchy
            Roster.from_settings(settings, known_unit=lambda code: hierarchy.get(code) is not None)
        except ConfigError as exc:
            problems = [exc]
    for problem in problems:
        typer.echo(f"config error: {problem}", err=True)
    if problems:
        raise typer.Exit(code=1)
    typer.echo(f"{config}: OK")


@app.command()
def ingest(config: ConfigOption = Path("config.yaml"), verbose: bool = False) -> None:
    """Run the ingest worker: MQTT → decode → enrich → batch → store; bad input → dead-letter."""
    setup_logging(verbose)
    settings = settings_or_exit(config)
    setup_logging(verbose, settings, "ingest")
    from core.clock import SystemClock
    from ingest.deadletter import SqlDeadLetterStore
    from ingest.exporter import make_exporter
    from ingest.spool import SpoolInUseError, open_spool
    from ingest.unassigned import SqlUnassignedDevices
    from ingest.worker import IngestWorker
    from layers.registry import read_registry

    geography = build_geography(settings)
    devices = read_registry(settings.path(settings.devices.registry), geography)
    try:
        spool = open_spool(settings)
    except SpoolInUseError as exc:
        typer.echo(f"cityops ingest: {exc}", err=True)
        raise typer.Exit(code=1) from None
    store = build_store(settings)
    engine = build_engine(settings)
    limit = settings.ingest.unassigned_max_devices
    worker = IngestWorker(
        settings,
        store,
        devices,
        geography,
        SqlDeadLetterStore(engine),
        spool=spool,
        unassigned=SqlUnassignedDevices(engine, max_devices=limit) if limit else None,
    )
    exporter = make_exporter(settings.ingest, worker.metrics, SystemClock())
    try:
        if exporter is not None:
            try:
                exporter.start()
            except ConfigError as exc:  # the port is taken: say which setting to change
                typer.echo(f"cityops ingest: {exc}", err=True)
                raise typer.Exit(code=2) from None
        # Long-lived objects (geography, registry, imported modules) out of the collector's
        # way, and fewer collections: per-message objects are freed by reference counting,
        # and full collections over them cost ~10 % of the CPU (docs/design/006).
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        worker.run_forever(stop_on_signals())
    finally:
        if exporter is not None:
            exporter.stop()
        store.close()


@app.command()
def dashboard(
    config: ConfigOption = Path("config.yaml"),
    verbose: bool = False,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Worker processes under gunicorn (dashboard/gunicorn_conf.py); "
            "0: one process (waitress).",
        ),
    ] = 0,
) -> None:
    """Serve the dashboard (waitress, or gunicorn with --workers) at dashboard.host:port."""
    setup_logging(verbose)
    settings = settings_or_exit(config)
    if workers > 0:  # this process becomes the gunicorn master (same pid for systemd)
        import os

        os.environ["CITYOPS_CONFIG"] = str(config.resolve())
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:dashboard.gunicorn_conf"]
        where = f"{settings.dashboard.host}:{settings.dashboard.port}"
        typer.echo(f"dashboard: {workers} workers under gunicorn, http://{where}/")
        os.execv(sys.executable, [*gunicorn, "-w", str(workers), "dashboard.wsgi:application"])
    setup_logging(verbose, settings, "dashboard")
    from dashboard.app import create_app, serve
    from ingest.deadletter import SqlDeadLetterStore

    engine = build_engine(settings)
    app_ = create_app(
        settings,
        build_store(settings),
        build_geography(settings),
        dead_letters=SqlDeadLetterStore(engine),
        state_engine=engine,
    )
    typer.echo(f"dashboard: http://{settings.dashboard.host}:{settings.dashboard.port}/")
    serve(app_, settings.dashboard.host, settings.dashboard.port)


@app.command()
def simulate(
    config: ConfigOption = Path("config.yaml"),
    devices: Annotated[int | None, typer.Option(help="Air sensors (overrides config).")] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between rounds.")] = None,
    rounds: Annotated[int | None, typer.Option(help="Stop after this many rounds.")] = None,
    verbose: bool = False,
) -> None:
    """Publish realistic sensor readings for devices placed inside the communes."""
    setup_logging(verbose)
    settings = settings_or_exit(config)
    setup_logging(verbose, settings, "simulator")
    overrides: dict[str, float] = {}
    if devices is not None:
        overrides["air_devices"] = devices
    if interval is not None:
        overrides["interval_s"] = interval
    if overrides:
        settings = settings.model_copy(
            update={"simulator": settings.simulator.model_copy(update=overrides)}
        )
    from ingest.demo_devices import ensure_registry
    from ingest.simulate import Simulator

    geography = build_geography(settings)
    device_list = ensure_registry(settings, geography)
    typer.echo(
        f"simulating {len(device_list)} devices → mqtt://{settings.broker.host}:{settings.broker.port}"
    )
    try:
        Simulator(settings, device_list).run(stop_on_signals(), max_rounds=rounds)
    except RetryableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None


@app.command()
def demo(
    config: ConfigOption = Path("config.yaml"),
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its data.")] = Path(
        "var/demo"
    ),
    fresh: Annotated[bool, typer.Option(help="Delete the demo's data first.")] = False,
    verbose: bool = False,
) -> None:
    """Run the whole system on embedded defaults: no server to install."""
    setup_logging(verbose)
    from core.demo import run_demo

    try:
        code = run_demo(config, workdir, fresh=fresh)
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    raise typer.Exit(code=code)


def main() -> None:  # pragma: no cover - console entry point
    app()


# Sub-commands kept in their own modules (they import the helpers above from here).
from core.cli_alerts import alerts_app  # noqa: E402
from core.cli_report import report_app  # noqa: E402
from core.cli_state import state_app  # noqa: E402
from core.cli_store import store_app  # noqa: E402
from core.cli_users import users_app  # noqa: E402
from core.cli_wall import wall_app  # noqa: E402

app.add_typer(alerts_app, name="alerts")
app.add_typer(users_app, name="users")
app.add_typer(report_app, name="report")
app.add_typer(wall_app, name="wall")
app.add_typer(state_app, name="state")
app.add_typer(store_app, name="store")
