"""The SQL state database (dead letters, alert state, notification log): engine factory.

SQLite by default, PostgreSQL in production, through SQLAlchemy Core. Each package
declares its own tables on its own ``MetaData`` and creates them with
``metadata.create_all(engine)`` when its service starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event


def make_engine(url: str, base_dir: Path = Path(".")) -> Engine:
    """Build an engine; relative SQLite paths resolve against ``base_dir`` and their
    folder is created. SQLite runs in WAL mode with a busy timeout so the ingest
    worker, the alert engine and the dashboard can share one file."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_absolute():
            path = base_dir / path
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine
