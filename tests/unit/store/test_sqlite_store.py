"""What only the SQLite adapter has: the file, WAL, locks, threads and processes.
(Behaviour shared with InfluxDB is in tests/integration/test_store_contract.py.)"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import PermanentError, RetryableError
from core.settings import InfluxSettings, SqliteStoreSettings, StoreSettings
from core.store import InfluxStore, SqliteStore, make_store
from core.types import MetricRef, Point, UnitRef, UnitValue

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
PM25 = MetricRef("air", "pm25")
REPO = Path(__file__).resolve().parents[3]


def air(device: str, commune: str, seconds: float, value: float) -> Point:
    tags = {"device": device, "commune": commune}
    return Point("air", tags, {"pm25": value}, T0 + timedelta(seconds=seconds))


def by_code(store: SqliteStore) -> dict[str, tuple[float, int]]:
    return {
        unit.code: (unit.value, unit.devices)
        for unit in store.latest_by_unit(PM25, "commune", since=T0)
    }


def test_creates_its_folder_in_wal_mode_with_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "var" / "deep" / "ts.sqlite"
    store = SqliteStore(path)
    store.write([air("aq-1", "20194", 1, 10.0)])
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert {"series", "series_tags", "points", "series_tags_by_value"} <= tables
        assert db.execute("SELECT count(*) FROM points").fetchone() == (1,)
    db.close()


def test_in_memory_store_is_one_database_for_every_thread() -> None:
    store = SqliteStore(":memory:")
    writer = threading.Thread(target=store.write, args=([air("aq-1", "20194", 1, 10.0)],))
    writer.start()
    writer.join(timeout=10)
    assert by_code(store) == {"20194": (10.0, 1)}
    store.close()


def test_a_locked_database_is_retryable_and_nothing_is_half_written(tmp_path: Path) -> None:
    path = tmp_path / "ts.sqlite"
    store = SqliteStore(path, busy_timeout_s=0.1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        with pytest.raises(RetryableError, match="database is locked") as caught:
            store.write([air("aq-1", "20194", 1, 10.0)])
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert by_code(store) == {}  # readers are not blocked by a writer in WAL mode
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.write([air("aq-1", "20194", 1, 10.0)])  # the caller's retry
    assert by_code(store) == {"20194": (10.0, 1)}
    store.close()


def test_a_rolled_back_batch_does_not_leave_a_wrong_series_id_cached(tmp_path: Path) -> None:
    path = tmp_path / "ts.sqlite"
    store = SqliteStore(path)
    with sqlite3.connect(path) as db:  # a failure after the new series row was inserted
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON points WHEN NEW.value = 666"
            " BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
        )
    db.close()
    with pytest.raises(PermanentError, match="refused by test trigger"):
        store.write([air("aq-1", "20194", 1, 666.0)])
    store.write([air("aq-2", "20260", 1, 20.0)])  # takes the rolled-back series id
    store.write([air("aq-1", "20194", 2, 10.0)])
    assert by_code(store) == {"20194": (10.0, 1), "20260": (20.0, 1)}
    store.close()


def test_one_writer_and_readers_in_other_threads(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ts.sqlite")
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            for batch in range(40):
                store.write([air(f"aq-{n}", "20194", batch, float(batch)) for n in range(25)])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def read() -> None:
        try:
            while not done.is_set():
                for unit in store.latest_by_unit(PM25, "commune", since=T0):
                    assert unit.devices <= 25
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert by_code(store) == {"20194": (39.0, 25)}
    store.close()


def test_another_process_writes_to_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "ts.sqlite"
    store = SqliteStore(path)
    store.write([air("aq-1", "20194", 1, 10.0)])
    script = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from core.store import SqliteStore\n"
        "from core.types import Point\n"
        "store = SqliteStore(sys.argv[1])\n"
        "at = datetime(2026, 11, 2, 1, 0, 5, tzinfo=UTC)\n"
        "store.write([Point('air', {'device': 'aq-2', 'commune': '20260'}, {'pm25': 30.0}, at),\n"
        "             Point('air', {'device': 'aq-1', 'commune': '20194'}, {'pm25': 11.0}, at)])\n"
        "store.close()\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert by_code(store) == {"20194": (11.0, 1), "20260": (30.0, 1)}
    store.write([air("aq-2", "20260", 9, 31.0)])  # a series the other process created
    assert by_code(store) == {"20194": (11.0, 1), "20260": (31.0, 1)}
    store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ts.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(PermanentError, match="schema version 99"):
        SqliteStore(path)


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ts.sqlite")
    store.close()
    with pytest.raises(PermanentError, match="closed"):
        store.latest_by_unit(PM25, "commune", since=T0)
    with pytest.raises(PermanentError, match="closed"):
        store.series(PM25, UnitRef("commune", "1"), start=T0, end=T0, every=timedelta(hours=1))


def test_make_store_resolves_sqlite_paths_against_the_config_folder(tmp_path: Path) -> None:
    relative = make_store(StoreSettings(sqlite=SqliteStoreSettings(path="var/ts.sqlite")), tmp_path)
    assert isinstance(relative, SqliteStore)
    assert Path(relative.path) == tmp_path / "var" / "ts.sqlite"
    assert (tmp_path / "var" / "ts.sqlite").exists()
    relative.close()
    absolute_path = tmp_path / "abs.sqlite"
    absolute = make_store(
        StoreSettings(sqlite=SqliteStoreSettings(path=str(absolute_path))), tmp_path / "elsewhere"
    )
    assert Path(absolute.path) == absolute_path  # type: ignore[attr-defined]
    absolute.close()
    memory = make_store(StoreSettings(sqlite=SqliteStoreSettings(path=":memory:")), tmp_path)
    memory.write([air("aq-1", "20194", 1, 10.0)])
    assert memory.latest_by_unit(PM25, "commune", since=T0) == [
        UnitValue("20194", 10.0, T0 + timedelta(seconds=1), 1)
    ]
    memory.close()
    assert not (tmp_path / ":memory:").exists()


def test_make_store_builds_influx_without_contacting_it() -> None:
    settings = StoreSettings(
        backend="influxdb", influxdb=InfluxSettings(url="http://127.0.0.1:9", database="x")
    )
    store = make_store(settings, Path("."))
    assert isinstance(store, InfluxStore)
    assert store.settings.database == "x"
    store.close()
