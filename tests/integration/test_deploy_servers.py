"""The shipped deployment files for the data servers: a private influxd with auth gets
the shipped setup.sh (then ``cityops store setup`` and the services as their
least-privilege users), and the local PostgreSQL runs setup.sql and then the project's
migrations as the new role. Each server file is used as shipped except its file paths and
ports, rewritten to a temporary folder and free ports.
"""

from __future__ import annotations

import importlib
import os
import re
import secrets
import subprocess
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg import sql
from sqlalchemy import text
from typer.testing import CliRunner

from core.cli_store import store_app
from core.db import make_engine
from core.errors import PermanentError
from core.migrate import migrate
from core.settings import load_settings
from core.store import InfluxStore, make_store
from core.types import MetricRef, Point, UnitValue
from ingest.deadletter import SqlDeadLetterStore
from tests.fixtures.deploy import DEPLOY, PRODUCTION, read_env_file, run
from tests.fixtures.influxd import INFLUXD, influxd_config
from tests.fixtures.postgres import HOST as PG_HOST
from tests.fixtures.postgres import PORT as PG_PORT
from tests.fixtures.process import free_port, log_tail, stop_process
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- InfluxDB

INFLUX_PASSWORDS = {
    "INFLUX_ADMIN_PASSWORD": "pw-admin",
    "INFLUX_INGEST_PASSWORD": "pw-ingest",
    "INFLUX_DASHBOARD_PASSWORD": "pw-dashboard",
    "INFLUX_ALERTS_PASSWORD": "pw-alerts",
}


def influxd_auth_config(root: Path, http_port: int, rpc_port: int) -> str:
    """The fixture's influxd configuration with the shipped fragment in place of its
    top-level keys and [http] section (the bind address rewritten to the free port)."""
    shipped = (DEPLOY / "influxdb" / "influxdb.conf").read_text()
    shipped_top = set(tomllib.loads(shipped)) - {"http"}
    blocks = re.split(r"(?m)^(?=\[)", influxd_config(root, http_port, rpc_port))
    top = [line for line in blocks[0].splitlines() if line.split("=")[0].strip() not in shipped_top]
    rest = [block for block in blocks[1:] if not block.startswith("[http]")]
    fragment = shipped.replace('"127.0.0.1:8086"', f'"127.0.0.1:{http_port}"')
    return "\n".join(top) + "\n" + fragment + "\n" + "".join(rest)


@pytest.fixture(scope="module")
def influxd_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not INFLUXD.exists():
        pytest.fail("influxd not found: apt-get install influxdb")
    root = tmp_path_factory.mktemp("influxd-auth")
    http_port, rpc_port = free_port(), free_port()
    config = influxd_auth_config(root, http_port, rpc_port)
    assert tomllib.loads(config)["http"]["auth-enabled"] is True
    (root / "influxdb.conf").write_text(config)
    log_path = root / "influxd.log"
    url = f"http://127.0.0.1:{http_port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(INFLUXD), "run", "-config", str(root / "influxdb.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def pings() -> bool:
        assert process.poll() is None, f"influxd exited:\n{log_tail(log_path)}"
        try:
            return requests.get(f"{url}/ping", timeout=1).status_code == 204
        except requests.RequestException:
            return False

    try:
        eventually(pings, "influxd answers /ping", timeout_s=20)
        yield url
    finally:
        stop_process(process)


def influx_query(
    url: str, q: str, auth: tuple[str, str] | None, database: str = "cityops"
) -> requests.Response:
    return requests.post(f"{url}/query", params={"db": database}, data={"q": q}, auth=auth)


def influx_write(url: str, auth: tuple[str, str] | None) -> requests.Response:
    line = f"air,device=aq-0001 pm25=12.5 {time.time_ns()}"
    return requests.post(f"{url}/write", params={"db": "cityops"}, data=line, auth=auth)


def test_influxdb_setup_gives_each_service_only_what_it_needs(influxd_with_auth: str) -> None:
    url = influxd_with_auth
    env = os.environ | INFLUX_PASSWORDS | {"INFLUX_URL": url, "INFLUX_RETENTION": "400d"}
    for attempt in ("first run", "second run (nothing to change)"):
        done = run(["sh", str(DEPLOY / "influxdb" / "setup.sh")], env=env)
        assert done.returncode == 0, f"{attempt}: {done.stdout}{done.stderr}"
    ingest = ("cityops_ingest", "pw-ingest")
    dashboard = ("cityops_dashboard", "pw-dashboard")
    alerts = ("cityops_alerts", "pw-alerts")
    select = "SELECT * FROM air"

    assert influx_write(url, None).status_code == 401
    assert influx_query(url, select, None).status_code == 401
    assert influx_write(url, ingest).status_code == 204
    assert "not authorized" in influx_query(url, select, ingest).text
    assert influx_write(url, dashboard).status_code == 403
    answer = influx_query(url, select, dashboard).json()["results"][0]
    assert answer["series"][0]["values"][0][-1] == 12.5  # the ingest user's point
    assert influx_write(url, alerts).status_code == 204  # VN_AQI points
    assert "series" in influx_query(url, select, alerts).json()["results"][0]
    assert "not authorized" in influx_query(url, "SHOW USERS", alerts).text

    policies = influx_query(url, 'SHOW RETENTION POLICIES ON "cityops"', ("admin", "pw-admin"))
    rows = policies.json()["results"][0]["series"][0]["values"]
    assert [rows[-1][0], rows[-1][1]] == ["raw", "9600h0m0s"]
    assert rows[-1][-1] is True

    bad = run(["sh", str(DEPLOY / "influxdb" / "setup.sh")], env=env | {"INFLUX_RETENTION": "1y"})
    assert bad.returncode == 1
    assert "INFLUX_RETENTION must be like 400d" in bad.stderr


RETENTION_ENV = {
    "CITYOPS_STORE__RETENTION__RAW_DAYS": "30",
    "CITYOPS_STORE__RETENTION__ROLLUP_DAYS": "400",
}
PM25 = MetricRef("air", "pm25")
DEVICES = {"aq-1": "20194", "aq-2": "20194", "aq-3": "20260"}  # device -> commune (province 48)


def service_store(url: str, database: str, service: str, **extra: str) -> InfluxStore:
    """The store a service builds from the shipped production config, its env file's user
    and password, pointed at the private influxd, with ``store.retention`` set."""
    environ = read_env_file(DEPLOY / "env" / f"{service}.env.example")
    password = INFLUX_PASSWORDS[f"INFLUX_{service.upper()}_PASSWORD"]
    environ |= RETENTION_ENV | extra | {"CITYOPS_STORE__INFLUXDB__PASSWORD": password}
    environ |= {"CITYOPS_STORE__INFLUXDB__URL": url, "CITYOPS_STORE__INFLUXDB__DATABASE": database}
    settings = load_settings(PRODUCTION, environ=environ)
    assert not settings.store.influxdb.create_database
    store = make_store(settings.store, settings.base_dir)
    assert isinstance(store, InfluxStore)
    return store


def test_retention_with_least_privilege_users(influxd_with_auth: str) -> None:
    """setup.sh, then ``cityops store setup`` once as the admin; then each service as its
    own user: ingest (WRITE) writes, alerts (READ+WRITE) rolls up and prunes, the dashboard
    (READ) reads a multi-day window equal to the readings. Where the setup was not run,
    a service with retention stops with the fix in its message."""
    url, database = influxd_with_auth, "cityops_rt"
    env = os.environ | INFLUX_PASSWORDS | {"INFLUX_URL": url}
    for name in (database, "cityops_nosetup"):
        done = run(
            ["sh", str(DEPLOY / "influxdb" / "setup.sh")], env=env | {"INFLUX_DATABASE": name}
        )
        assert done.returncode == 0, done.stdout + done.stderr
    target = {"CITYOPS_STORE__INFLUXDB__URL": url, "CITYOPS_STORE__INFLUXDB__DATABASE": database}
    admin = {"CITYOPS_STORE__INFLUXDB__USERNAME": "admin"} | target | RETENTION_ENV
    admin |= {"CITYOPS_STORE__INFLUXDB__PASSWORD": "pw-admin"}
    setup = ["setup", "--config", str(PRODUCTION)]
    refused = CliRunner().invoke(
        store_app,
        setup,
        env=admin
        | {
            "CITYOPS_STORE__INFLUXDB__USERNAME": "cityops_alerts",
            "CITYOPS_STORE__INFLUXDB__PASSWORD": "pw-alerts",
        },
    )
    assert refused.exit_code == 1
    assert "requires admin privilege" in refused.output
    for attempt in ("first", "again"):
        done_cli = CliRunner().invoke(store_app, setup, env=admin)
        assert done_cli.exit_code == 0, f"{attempt}: {done_cli.output}"
    lines = done_cli.output.splitlines()
    assert "retention policy raw: 720h0m0s (mặc định / default)" in "\n".join(lines)
    assert any(line.endswith("retention policy rollup: 9600h0m0s") for line in lines)
    assert any(
        "continuous query cityops_rollup_1h: CREATE CONTINUOUS QUERY" in line for line in lines
    )

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=4)
    readings = [
        (device, start + timedelta(minutes=20 * k + 7 * i), (k * 7 + i) % 400 * 0.25)
        for i, device in enumerate(DEVICES)
        for k in range(4 * 72)
    ]
    ingest = service_store(url, database, "ingest")
    alerts = service_store(url, database, "alerts")
    dashboard = service_store(url, database, "dashboard")
    try:
        ingest.write(
            [
                Point(
                    "air", {"device": d, "province": "48", "commune": DEVICES[d]}, {"pm25": v}, ts
                )
                for d, ts, v in readings
            ]
        )
        hours = 0
        for _ in range(10):  # a bounded catch-up: raw_days back, a week per run
            done_hours = alerts.downsample(now)
            hours += done_hours
            if done_hours < 7 * 24:
                break
        assert hours >= 30 * 24
        assert alerts.prune(now) == 0  # no admin: InfluxDB's retention service prunes
        rolled = influx_query_as_admin(
            url, database, 'SELECT sum("count_pm25") FROM "rollup"."air"'
        )
        assert rolled == len(readings)  # SELECT … INTO by the alerts user
        window = (start - timedelta(hours=1), now - timedelta(minutes=13))
        for aggregation in ("mean", "sum", "min", "max"):
            got = dashboard.window_by_unit(
                PM25, "commune", start=window[0], end=window[1], aggregation=aggregation
            )
            assert got == expected_window(readings, window, aggregation), aggregation
    finally:
        for store in (ingest, alerts, dashboard):
            store.close()

    unset = service_store(url, "cityops_nosetup", "dashboard")
    try:
        with pytest.raises(PermanentError) as raised:
            unset.window_by_unit(PM25, "commune", start=start, end=now, aggregation="mean")
    finally:
        unset.close()
    assert str(raised.value) == (
        "store.retention is set but InfluxDB database 'cityops_nosetup' has no retention policy"
        """ 'rollup': run "cityops store setup" once with an InfluxDB admin's credentials"""
        " (docs/operations.md)"
    )


def influx_query_as_admin(url: str, database: str, q: str) -> float:
    answer = influx_query(url, q, ("admin", "pw-admin"), database).json()["results"][0]
    return float(answer["series"][0]["values"][0][1])


def expected_window(
    readings: list[tuple[str, datetime, float]],
    window: tuple[datetime, datetime],
    aggregation: str,
) -> list[UnitValue]:
    """The Store port's window, by hand from what was written."""
    by_unit: dict[str, list[tuple[str, datetime, float]]] = {}
    for device, ts, value in readings:
        if window[0] <= ts < window[1]:
            by_unit.setdefault(DEVICES[device], []).append((device, ts, value))
    result = []
    for code, rows in sorted(by_unit.items()):
        values = [value for _, _, value in rows]
        value = {
            "mean": sum(values) / len(values),
            "sum": sum(values),
            "min": min(values),
            "max": max(values),
        }[aggregation]
        newest = max(rows, key=lambda row: (row[1], row[0]))
        result.append(UnitValue(code, value, newest[1], len({row[0] for row in rows})))
    return result


# --------------------------------------------------------------------------- PostgreSQL

MIGRATED = (  # every component with numbered migrations, in the order services start
    "dashboard.users",
    "alerts.delivery_tables",
    "alerts.action_tables",
    "dashboard.wall_links",
    "reports.schedule",
)
OWNED_TABLES = "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"


@pytest.mark.usefixtures("_postgres_server")
def test_postgresql_setup_then_migrations_as_the_new_role(tmp_path: Path) -> None:
    name = f"cityops_deploy_{secrets.token_hex(4)}"
    password = secrets.token_hex(12)
    script = tmp_path / "setup.sql"
    script.write_text(
        re.sub(r"\bcityops\b", name, (DEPLOY / "postgresql" / "setup.sql").read_text())
    )
    admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres"
    try:
        command = ["psql", admin, "-v", "ON_ERROR_STOP=1", "-v", f"password={password}"]
        done = run([*command, "-f", str(script)])
        assert done.returncode == 0, done.stderr
        engine = make_engine(f"postgresql+psycopg://{name}:{password}@{PG_HOST}:{PG_PORT}/{name}")
        try:
            for module_name in MIGRATED:
                module = importlib.import_module(module_name)
                assert migrate(engine, module.COMPONENT, module.MIGRATIONS), module_name
            SqlDeadLetterStore(engine)
            with engine.connect() as connection:
                owners: dict[str, str] = {
                    str(table): str(owner)
                    for table, owner in connection.execute(text(OWNED_TABLES)).all()
                }
        finally:
            engine.dispose()
        expected = {"schema_migrations", "users", "alert_states", "alert_emails", "audit_log"}
        expected |= {"wall_links", "report_runs", "dead_letters", "alert_silences"}
        assert expected <= set(owners), sorted(owners)
        assert set(owners.values()) == {name}
        with psycopg.connect(f"{admin} dbname={name}") as connection:
            database = connection.execute(
                "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding) FROM pg_database"
                " WHERE datname = %s",
                (name,),
            ).fetchone()
        assert database == (name, "UTF8")
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
