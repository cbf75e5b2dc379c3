"""The dashboard as a WSGI application, for several worker processes under gunicorn.

    CITYOPS_CONFIG=/etc/cityops/config.yaml \\
        gunicorn -c python:dashboard.gunicorn_conf dashboard.wsgi:application

``application`` is built from the file named by ``CITYOPS_CONFIG`` (default
``config.yaml`` in the working folder; environment overrides apply as for every command)
when it is first read, not when the module is imported: gunicorn reads it in each worker
as the worker boots, so each worker has its own store client, SQLAlchemy engine, Redis
connections and refresh threads. Nothing of these may cross a fork — a pooled database or
Redis socket used by two processes mixes their conversations, and threads do not survive
a fork at all — so gunicorn must run WITHOUT ``--preload``: the app would then be built
once in the master and forked into every worker. ``dashboard/gunicorn_conf.py`` pins
``preload_app = False`` and stops a worker that finds the app built before its fork.

The workers share what must be shared through the config: the session key
(``dashboard.auth.secret_key_file``, created race-free by the first worker, or
``CITYOPS_DASHBOARD__AUTH__SECRET_KEY``), the state database (``database.url``) and the
query cache (``dashboard.cache_url``: with Redis one store query per refresh beat serves
every worker; without it each worker queries for itself).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask

from core.errors import ConfigError
from core.logs import configure_logging
from core.settings import check_settings, load_settings

CONFIG_ENV = "CITYOPS_CONFIG"
DEFAULT_CONFIG = "config.yaml"

log = logging.getLogger("cityops.dashboard")

_built: dict[int, Flask] = {}  # the app of each process that built one (by pid)


def config_path(environ: dict[str, str] | None = None) -> Path:
    """The config file of the workers: ``CITYOPS_CONFIG``, else ``config.yaml``."""
    env = os.environ if environ is None else environ
    return Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG)


def create_application(config: Path | str | None = None) -> Flask:
    """A new dashboard (its Flask server) wired as ``cityops dashboard`` wires it. A bad
    config raises ConfigError after logging every problem, naming each key."""
    configure_logging(service="dashboard")  # text until the settings are read
    path = Path(config) if config is not None else config_path()
    try:
        settings = load_settings(path)
    except ConfigError:
        for problem in check_settings(path):
            log.error("config error in %s (%s=%s): %s", path, CONFIG_ENV, path, problem)
        raise
    # logging.format (text | json, with the request's correlation id) and logging.level
    configure_logging(
        log_format=settings.logging.format, level=settings.logging.level, service="dashboard"
    )
    from core.db import make_engine
    from core.store import make_store
    from dashboard.app import create_app
    from ingest.deadletter import SqlDeadLetterStore
    from layers.geography import Geography

    engine = make_engine(settings.database.url, settings.base_dir)
    app = create_app(
        settings,
        make_store(settings.store, settings.base_dir),
        Geography.from_settings(settings),
        dead_letters=SqlDeadLetterStore(engine),
        state_engine=engine,
    )
    log.info("dashboard worker %d ready (config %s)", os.getpid(), path.resolve())
    server: Flask = app.server
    return server


def built_before_fork() -> int | None:
    """The pid of another process that built the app this process inherited (a fork after
    the build: ``--preload``), else None."""
    others = [pid for pid in _built if pid != os.getpid()]
    return others[0] if others else None


def __getattr__(name: str) -> Any:
    """``application``: this process's app, built on first access (PEP 562)."""
    if name != "application":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    pid = os.getpid()
    if pid not in _built:
        _built[pid] = create_application()
    return _built[pid]
