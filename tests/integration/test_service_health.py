"""Self-monitoring of the three services over real HTTP or the real Flask app: the alert
engine's /metrics and /health after real rounds (SQLite store, SQLite state database, a
real aiosmtpd server, a FakeClock), the ingest exporter's /health, and the dashboard's
/metrics, /health, request counts, callback histogram and X-Request-ID. Every exposition
goes through the strict parser of tests/promtext.py."""

from __future__ import annotations

import http.client
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from alerts.email import SmtpNotifier
from alerts.links import AckSigner
from alerts.metrics import AlertsExporter
from alerts.places import Places
from alerts.roster import Roster
from alerts.service import AlertService
from alerts.wiring import build_alerts_exporter
from core.db import make_engine
from core.logs import make_handler
from core.settings import Settings, SmtpSettings, load_settings
from core.settings_alerts import AlertsSettings
from core.store import SqliteStore
from core.types import Point
from dashboard.app import create_app
from ingest.exporter import MetricsExporter
from ingest.metrics import IngestMetrics
from layers.geography import Geography
from layers.levels import Hierarchy
from tests.conftest import FakeClock
from tests.fixtures.signin import TEST_SECRET_ENV, add_user, dash_headers, sign_in
from tests.fixtures.smtp import SmtpTestServer
from tests.promtext import Family, parse
from tests.unit.dashboard.test_auth import panel_request as unit_panel_request

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 08:00 in Việt Nam
OFFICER = "hai-van@danang.gov.vn"
ALERTS: dict[str, Any] = {
    "interval_s": 5,
    "recipients": ["truc-ban@danang.gov.vn"],
    "roster": [{"unit": "20194", "name": "Nguyễn Văn Hải", "email": OFFICER}],
    "group_wait_s": 0,
    "retry": {"first_delay_s": 5, "factor": 2, "max_delay_s": 300},
    "lease_s": 30,
    "metrics_port": 0,
    "rules": [
        {
            "id": "pm25-bad",
            "metric": "pm25",
            "level": "commune",
            "op": "above",
            "threshold": 80,
            "clear": 70,
            "for_s": 0,
            "severity": "critical",
            "title": {"vi": "Bụi mịn PM2.5 ở mức Xấu", "en": "PM2.5 at Bad level"},
        }
    ],
}


def get(port: int, path: str) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def scrape(port: int) -> dict[str, Family]:
    status, content_type, body = get(port, "/metrics")
    assert (status, content_type) == (200, "text/plain; version=0.0.4; charset=utf-8")
    return parse(body.decode("utf-8"))


def value(families: dict[str, Family], name: str, **labels: str) -> float:
    family = families[name.removesuffix("_count")]
    found = [v for sample, got, v in family.samples if sample == name and got == labels]
    assert len(found) == 1, (name, labels, family.samples)
    return found[0]


def health(port: int) -> tuple[int, dict[str, Any]]:
    status, content_type, body = get(port, "/health")
    assert content_type == "application/json"
    return status, json.loads(body)


# ------------------------------------------------------------------------- alert engine


@pytest.fixture(scope="module")
def shipped() -> Settings:
    return load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)


@pytest.fixture(scope="module")
def hierarchy(shipped: Settings) -> Hierarchy:
    return Hierarchy.from_csv(shipped.hierarchy.levels, shipped.path(shipped.hierarchy.units_file))


@pytest.fixture
def settings(shipped: Settings, smtp_server: SmtpTestServer) -> Settings:
    smtp = SmtpSettings(
        host=smtp_server.host, port=smtp_server.port, sender="cityops@danang.gov.vn", timeout_s=5
    )
    return shipped.model_copy(
        update={"smtp": smtp, "alerts": AlertsSettings.model_validate(ALERTS)}
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "timeseries.sqlite")
    yield opened
    opened.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield built
    built.dispose()


@dataclass
class Evaluator:
    service: AlertService
    exporter: AlertsExporter


@pytest.fixture
def evaluators(
    settings: Settings, store: SqliteStore, engine: Engine, hierarchy: Hierarchy, clock: FakeClock
) -> Iterator[dict[str, Evaluator]]:
    """Two evaluator processes on one state database, each with its exporter started."""
    made: dict[str, Evaluator] = {}
    for holder in ("a", "b"):
        service = AlertService(
            settings,
            store,
            engine,
            SmtpNotifier(settings.smtp),
            places=Places(hierarchy),
            roster=Roster.from_settings(
                settings, known_unit=lambda code: bool(hierarchy.get(code))
            ),
            signer=AckSigner(b"k" * 32),
            clock=clock,
            holder=f"evaluator-{holder}",
        )
        exporter = build_alerts_exporter(settings, service, engine, clock)
        assert exporter is not None
        exporter.start()
        made[holder] = Evaluator(service, exporter)
    yield made
    for evaluator in made.values():
        evaluator.exporter.stop()


def pm25(store: SqliteStore, clock: FakeClock, reading: float, commune: str = "20194") -> None:
    tags = {"device": f"aq-{commune}", "province": "48", "commune": commune}
    store.write([Point("air", tags, {"pm25": reading, "pm10": reading}, clock.now())])


def test_a_round_that_sends_an_email_is_counted(
    evaluators: dict[str, Evaluator],
    store: SqliteStore,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    port = evaluators["a"].exporter.port
    before = scrape(port)
    assert value(before, "cityops_alerts_rounds_total") == 0
    assert value(before, "cityops_alerts_leader") == 0
    assert "cityops_alerts_last_round_timestamp_seconds" not in before
    assert health(port)[0] == 200  # just started: not stale yet

    pm25(store, clock, 92.4)
    report = evaluators["a"].service.run_once()
    assert report.round_id.startswith("round-")
    smtp_server.wait_for(1)
    after = scrape(port)
    assert value(after, "cityops_alerts_rounds_total") == 1
    assert value(after, "cityops_alerts_round_seconds_count") == 1
    assert value(after, "cityops_alerts_evaluations_total", rule="pm25-bad") == 1
    assert value(after, "cityops_alerts_events_total", kind="firing") == 1
    assert value(after, "cityops_alerts_events_total", kind="resolved") == 0
    assert value(after, "cityops_alerts_notifications_sent_total") == 1
    assert value(after, "cityops_alerts_notifications_failed_total") == 0
    assert value(after, "cityops_alerts_leader") == 1
    assert value(after, "cityops_alerts_outbox_pending") == 0
    assert value(after, "cityops_alerts_active", severity="critical") == 1
    assert value(after, "cityops_alerts_active", severity="warning") == 0
    assert value(after, "cityops_alerts_last_round_timestamp_seconds") == clock.now().timestamp()
    status, document = health(port)
    assert (status, document["status"], document["leader"]) == (200, "ok", True)
    assert document["last_round_age_s"] == 0
    assert document["checks"] == {"rounds": "ok", "database": "ok", "delivery": "ok"}

    # Back under the clear line: resolved, counted; nothing firing any more.
    clock.advance(60)
    pm25(store, clock, 50.0)
    evaluators["a"].service.run_once()
    smtp_server.wait_for(2)
    later = scrape(port)
    assert value(later, "cityops_alerts_events_total", kind="resolved") == 1
    assert value(later, "cityops_alerts_notifications_sent_total") == 2
    assert value(later, "cityops_alerts_active", severity="critical") == 0


def test_refused_and_retried_emails_are_counted(
    evaluators: dict[str, Evaluator],
    store: SqliteStore,
    clock: FakeClock,
    smtp_server: SmtpTestServer,
) -> None:
    service, port = evaluators["a"].service, evaluators["a"].exporter.port
    smtp_server.refuse[OFFICER] = "550 5.1.1 no such user"
    pm25(store, clock, 120.0)
    service.run_once()
    families = scrape(port)
    assert value(families, "cityops_alerts_notifications_failed_total") == 1
    assert value(families, "cityops_alerts_notifications_sent_total") == 0
    assert health(port)[1]["status"] == "ok"  # failed for good is not an outage

    # A second commune fires; the server answers 451: put back, retried, degraded.
    smtp_server.refuse.clear()
    smtp_server.data_replies.append("451 4.3.0 try again later")
    clock.advance(60)
    pm25(store, clock, 130.0, commune="20260")
    service.run_once()
    families = scrape(port)
    assert value(families, "cityops_alerts_notifications_retried_total") == 1
    assert value(families, "cityops_alerts_outbox_pending") == 1
    assert value(families, "cityops_alerts_outbox_oldest_seconds") == 0
    clock.advance(4)
    assert value(scrape(port), "cityops_alerts_outbox_oldest_seconds") == 4
    status, document = health(port)
    assert (status, document["status"], document["checks"]["delivery"]) == (
        200,
        "degraded",
        "degraded",
    )


def test_standby_is_healthy_and_stopped_rounds_are_down(
    evaluators: dict[str, Evaluator], store: SqliteStore, clock: FakeClock
) -> None:
    active, standby = evaluators["a"], evaluators["b"]
    active.service.run_once()
    report = standby.service.run_once()
    assert not report.leader
    families = scrape(standby.exporter.port)
    assert value(families, "cityops_alerts_leader") == 0
    assert value(families, "cityops_alerts_rounds_total") == 0  # a standby's round does no work
    status, document = health(standby.exporter.port)
    assert (status, document["status"], document["leader"]) == (200, "ok", False)

    clock.advance(3 * 5 + 1)  # three intervals and a second without a round
    status, document = health(active.exporter.port)
    assert (status, document["status"], document["checks"]["rounds"]) == (503, "down", "down")
    assert document["last_round_age_s"] == 16
    active.service.run_once()
    assert health(active.exporter.port)[0] == 200


def test_an_unreachable_database_is_down(
    settings: Settings, store: SqliteStore, hierarchy: Hierarchy, clock: FakeClock
) -> None:
    dead = make_engine("postgresql+psycopg://cityops@127.0.0.1:1/nothing?connect_timeout=1")
    service = AlertService(
        settings, store, dead, SmtpNotifier(settings.smtp), places=Places(hierarchy), clock=clock
    )
    exporter = build_alerts_exporter(settings, service, dead, clock)
    assert exporter is not None
    exporter.start()
    try:
        status, document = health(exporter.port)
        assert (status, document["status"], document["checks"]["database"]) == (503, "down", "down")
        assert "database_error" in document
        families = scrape(exporter.port)  # still served, without what the database says
        assert "cityops_alerts_outbox_pending" not in families
        assert value(families, "cityops_alerts_rounds_total") == 0
    finally:
        exporter.stop()
        dead.dispose()


# ------------------------------------------------------------------------------- ingest


def test_ingest_health_follows_the_broker_the_spool_and_write_errors(clock: FakeClock) -> None:
    metrics = IngestMetrics()
    exporter = MetricsExporter(
        metrics, worker="ingest-a", host="127.0.0.1", port=0, clock=clock, spool_max_bytes=1000
    )
    exporter.start()
    try:
        status, document = health(exporter.port)  # not connected yet, for 0 s
        assert (status, document["status"], document["checks"]["broker"]) == (
            200,
            "degraded",
            "degraded",
        )
        clock.advance(31)
        status, document = health(exporter.port)
        assert (status, document["status"], document["disconnected_s"]) == (503, "down", 31)
        metrics.mqtt_connected = 1
        assert health(exporter.port) == (
            200,
            {
                "status": "ok",
                "worker": "ingest-a",
                "mqtt_connected": True,
                "disconnected_s": None,
                "spool_bytes": 0,
                "spool_used": 0.0,
                "last_write_error_age_s": None,
                "checks": {"broker": "ok", "spool": "ok", "store": "ok"},
            },
        )
        metrics.write_errors += 1
        metrics.spool_bytes, metrics.spool_batches = 500, 1
        status, document = health(exporter.port)
        assert (status, document["checks"]) == (
            200,
            {"broker": "ok", "spool": "degraded", "store": "degraded"},
        )
        clock.advance(61)
        metrics.spool_bytes = 801  # over 80 % of 1000 bytes
        status, document = health(exporter.port)
        assert (status, document["status"], document["checks"]["store"]) == (503, "down", "ok")
        assert document["last_write_error_age_s"] == 61
        assert get(exporter.port, "/metrics")[0] == 200
    finally:
        exporter.stop()


# ---------------------------------------------------------------------------- dashboard


@dataclass
class Site:
    client: FlaskClient
    log: io.StringIO


@pytest.fixture(scope="module")
def geography(shipped: Settings) -> Geography:
    return Geography.from_settings(shipped)


@pytest.fixture
def site(tmp_path: Path, shipped: Settings, geography: Geography) -> Iterator[Site]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    add_user(engine, "admin")
    store = SqliteStore(tmp_path / "timeseries.sqlite")
    now = datetime.now(UTC).replace(microsecond=0)
    tags = {"device": "aq-20194", "province": "48", "commune": "20194"}
    store.write([Point("air", tags, {"pm25": 95.0, "pm10": 95.0}, now - timedelta(minutes=2))])
    app = create_app(
        shipped, store, geography, state_engine=engine, clock=FakeClock(now), devices=list
    )
    captured = io.StringIO()
    handler = make_handler("json", "dashboard", captured)
    logging.getLogger("cityops").addHandler(handler)
    try:
        yield Site(app.server.test_client(), captured)
    finally:
        logging.getLogger("cityops").removeHandler(handler)
        store.close()
        engine.dispose()


def panel_request(output: str) -> dict[str, Any]:
    """What Dash's renderer posts for the unit panel, with ``output`` as the output id."""
    return {**unit_panel_request("20194"), "output": output}


def dashboard_metrics(client: FlaskClient) -> dict[str, Family]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(answer.get_data(as_text=True))


def test_dashboard_counts_pages_and_callbacks_with_bounded_labels(site: Site) -> None:
    client = site.client
    assert client.get("/").status_code == 303  # not signed in: to the sign-in form
    assert sign_in(client, "admin").status_code == 303
    assert client.get("/").status_code == 200
    with client.get("/assets/style.css") as style:  # a file response: closed here
        assert style.status_code == 200
    registered = client.post(
        "/_dash-update-component",
        data=json.dumps(panel_request("unit-panel.children")),
        headers=dash_headers(client),
    )
    assert registered.status_code == 200
    client.post(
        "/_dash-update-component",
        data=json.dumps(panel_request("../../etc/passwd.children")),
        headers=dash_headers(client),
    )
    families = dashboard_metrics(client)
    requests = "cityops_dashboard_requests_total"
    assert value(families, requests, path_group="page", status="200") == 2  # sign-in form, map
    assert value(families, requests, path_group="asset", status="200") >= 1
    assert value(families, requests, path_group="callback", status="200") >= 1
    histogram = "cityops_dashboard_callback_seconds_count"
    assert value(families, histogram, callback="unit-panel.children") == 1
    assert value(families, histogram, callback="other") == 1
    labels = {tuple(sorted(got)) for _, got, _ in families[requests].samples}
    assert labels == {("path_group", "status")}
    groups = {got["path_group"] for _, got, _ in families[requests].samples}
    assert groups <= {"page", "callback", "asset", "export", "other"}


def test_request_id_is_echoed_and_logged_and_metrics_are_restricted(site: Site) -> None:
    client = site.client
    echoed = client.get("/health", headers={"X-Request-ID": "req-42.a_B"})
    assert echoed.headers["X-Request-ID"] == "req-42.a_B"
    assert echoed.status_code == 200
    assert echoed.get_json() == {"status": "ok", "checks": {"store": "ok", "state_db": "ok"}}
    for bad in ("has space", "x" * 65, 'quote"'):
        generated = client.get("/health", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert generated != bad
        assert len(generated) == 16
        assert int(generated, 16) >= 0

    refused = client.get(
        "/metrics",
        headers={"X-Request-ID": "scrape-from-outside"},
        environ_base={"REMOTE_ADDR": "10.20.30.40"},
    )
    assert refused.status_code == 403
    records = [json.loads(line) for line in site.log.getvalue().splitlines()]
    (warning,) = [r for r in records if r.get("correlation_id") == "scrape-from-outside"]
    assert warning["logger"] == "cityops.dashboard.metrics"
    assert warning["level"] == "WARNING"
    assert warning["service"] == "dashboard"
    assert "10.20.30.40" in warning["msg"]
    # The default allow list has IPv6 loopback too.
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
