"""Adapters behind the Store port: :class:`SqliteStore` (embedded default) and
:class:`InfluxStore`. :func:`make_store` picks one from the settings."""

from __future__ import annotations

from pathlib import Path

from core.ports import Store
from core.settings import StoreSettings
from core.store.influx import InfluxStore
from core.store.sqlite import SqliteStore

__all__ = ["InfluxStore", "SqliteStore", "make_store"]


def make_store(settings: StoreSettings, base_dir: Path) -> Store:
    """The configured store; a relative SQLite path is resolved against ``base_dir`` (the
    config file's folder). Builds the adapter only: InfluxDB is first contacted on use.
    With ``settings.retention`` the adapter keeps hourly roll-ups (design 017)."""
    if settings.backend == "influxdb":
        return InfluxStore(settings.influxdb, retention=settings.retention)
    path = settings.sqlite.path
    if path == ":memory:" or Path(path).is_absolute():
        return SqliteStore(path, retention=settings.retention)
    return SqliteStore(base_dir / path, retention=settings.retention)
