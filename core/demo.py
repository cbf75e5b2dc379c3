"""``cityops demo``: the whole system in one process on embedded parts.

An amqtt broker in-process (on a free port, so a Mosquitto on 1883 does not matter),
the SQLite store, the simulator, the ingest worker, the alert engine with a local SMTP
server that writes every e-mail to a mailbox folder, and the dashboard. The first run
also writes simulated history through the same decode → enrich path (12 weeks of readings
every 2 hours and of hourly public-service counters, then 24 hours of readings every 15
minutes), so the trend charts and the weekly review are not empty. Ctrl-C stops
everything in reverse order.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.clock import SystemClock
from core.ports import Clock
from core.settings import Settings, parse_settings, read_config_file

log = logging.getLogger("cityops.demo")
HISTORY_HOURS = 24  # of fine history for the trend charts ...
HISTORY_STEP = timedelta(minutes=15)
HISTORY_WEEKS = 12  # ... after whole weeks of coarse history for the weekly review
COARSE_STEP = timedelta(hours=2)  # 12 samples a day: enough for daily and weekly means
GOV_STEP = timedelta(hours=1)  # public-service counters: one message an hour per service
WRITE_BATCH = 5000


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def demo_overrides(
    raw: dict[str, Any], workdir: Path, *, broker_port: int, smtp_port: int, dashboard_port: int
) -> dict[str, Any]:
    """The configuration file with the demo's embedded parts put in place of the servers."""
    tree: dict[str, Any] = copy.deepcopy(raw or {})  # YAML gives dates too: not JSON
    tree.setdefault("broker", {}).update(
        host="127.0.0.1",
        port=broker_port,
        embedded=True,
        username=None,
        tls=False,
        protocol="3.1.1",  # amqtt speaks MQTT 3.1.1 only
    )
    tree.setdefault("store", {}).update(backend="sqlite")
    tree["store"].setdefault("sqlite", {})["path"] = str(workdir / "timeseries.sqlite")
    tree.setdefault("database", {})["url"] = f"sqlite:///{workdir / 'state.sqlite'}"
    tree.setdefault("devices", {})["registry"] = str(workdir / "devices.csv")
    tree.setdefault("smtp", {}).update(
        host="127.0.0.1",
        port=smtp_port,
        username=None,
        starttls=False,
        ssl=False,
        mailbox=str(workdir / "mailbox"),
    )
    tree.setdefault("dashboard", {}).update(
        host="127.0.0.1", port=dashboard_port, public_url=f"http://127.0.0.1:{dashboard_port}"
    )
    tree["dashboard"].setdefault("auth", {}).update(
        mode="password", secret_key_file=str(workdir / "dashboard-secret.key")
    )
    return tree


# The demo's users: an administrator, the duty operator of Đà Nẵng and a leader of one
# ward (who sees Hải Vân only). Passwords are made on the first run and kept in the work
# folder (0600), so a demo is never reachable with a password printed in the README.
DEMO_USERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("admin", "admin", ()),
    ("truc-ban", "operator", ("48",)),
    ("hai-van", "leader", ("20194",)),
)


def ensure_demo_users(engine: Any, workdir: Path) -> list[tuple[str, str, str]]:
    """(username, role, password) of the demo users, created on the first run."""
    from dashboard.users import UserStore

    users = UserStore(engine)
    saved = workdir / "demo-users.txt"
    if saved.exists():
        rows = [line.split("\t") for line in saved.read_text(encoding="utf-8").splitlines()]
        return [(row[0], row[1], row[2]) for row in rows if len(row) == 3]
    made = []
    for username, role, units in DEMO_USERS:
        if users.get(username) is None:
            password = secrets.token_urlsafe(9)
            users.add(username, password, role, list(units))
            made.append((username, role, password))
    fd = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(f"{name}\t{role}\t{password}\n" for name, role, password in made)
    return made


@dataclass
class _Running:
    """What the demo started, stopped in reverse order."""

    stoppers: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    before_join: set[str] = field(default_factory=lambda: {"dashboard"})

    def add(self, name: str, stop: Callable[[], None]) -> None:
        self.stoppers.append((name, stop))

    def thread(self, name: str, target: Callable[[], object]) -> None:
        def _guarded() -> None:
            try:
                target()
            except Exception:
                log.exception("%s stopped with an error", name)

        worker = threading.Thread(target=_guarded, name=f"cityops-{name}", daemon=True)
        worker.start()
        self.threads.append(worker)

    def stop_all(self) -> None:
        """The stop event is set: let the service threads finish (ingest flushes and acks
        while broker and store are still up), then close what they used, newest first."""
        for name, stop in reversed(self.stoppers):
            if name in self.before_join:
                self._call(name, stop)
        for worker in self.threads:
            worker.join(timeout=15)
            if worker.is_alive():
                log.warning("%s did not stop within 15 s", worker.name)
        for name, stop in reversed(self.stoppers):
            if name not in self.before_join:
                self._call(name, stop)

    @staticmethod
    def _call(name: str, stop: Callable[[], None]) -> None:
        try:
            stop()
        except Exception:
            log.exception("stopping %s failed", name)


def write_history(settings: Settings, store: Any, devices: list[Any], clock: Clock) -> int:
    """Simulated history through the real decode → enrich path; the number of points.

    Every device: one reading every COARSE_STEP from Monday 00:00 local time HISTORY_WEEKS weeks
    before this week (the weekly review's 12-week sparklines), then one every HISTORY_STEP
    for the last HISTORY_HOURS (the trend charts). With a ``format: gov`` contract, the
    communes' public-service counters of every office hour over the same weeks."""
    now = clock.now()
    fine_start = now - timedelta(hours=HISTORY_HOURS)
    coarse_start = history_start(now, ZoneInfo(settings.site.timezone))
    rng = random.Random(settings.simulator.seed)
    count = _write_batches(
        store, _device_points(settings, devices, rng, coarse_start, fine_start, COARSE_STEP, now)
    )
    count += _write_batches(
        store, _device_points(settings, devices, rng, fine_start, now, HISTORY_STEP, now)
    )
    return count + _write_batches(store, _gov_points(settings, coarse_start, now))


def history_start(now: datetime, timezone: ZoneInfo) -> datetime:
    """Monday 00:00 local time, HISTORY_WEEKS weeks before the week of ``now`` (aware UTC)."""
    today = now.astimezone(timezone).date()
    monday = today - timedelta(days=today.weekday() + 7 * HISTORY_WEEKS)
    return datetime.combine(monday, datetime.min.time(), timezone).astimezone(UTC)


def _write_batches(store: Any, points: Iterable[Any]) -> int:
    count = 0
    iterator = iter(points)
    while batch := list(islice(iterator, WRITE_BATCH)):
        store.write(batch)
        count += len(batch)
    return count


def _device_points(
    settings: Settings,
    devices: list[Any],
    rng: random.Random,
    start: datetime,
    end: datetime,
    step: timedelta,
    now: datetime,
) -> Iterator[Any]:
    from ingest.decode import decode
    from ingest.enrich import to_points
    from ingest.simulate import Scenario, reading_for, topic_for

    # the live simulator plays the pollution episode; the history is ordinary days
    calm = settings.model_copy(
        update={"simulator": settings.simulator.model_copy(update={"episode_commune": None})}
    )
    scenario = Scenario.from_settings(calm)
    skew = settings.ingest.max_clock_skew_s
    at = start
    while at < end:
        for device in devices:
            payload = reading_for(device, at, rng, scenario=scenario)
            body = json.dumps(payload).encode()
            reading = decode(topic_for(device), body, now=now, max_clock_skew_s=skew)
            yield from to_points(reading, device)
        at += step


def _gov_points(settings: Settings, start: datetime, now: datetime) -> Iterator[Any]:
    """Counters of every office hour in [start, now), decoded by the gov contract."""
    from ingest.contracts.gov import GovContract
    from ingest.contracts.router import limits_of
    from ingest.gov_simulate import gov_messages, gov_topic_template, gov_units
    from ingest.topics import TopicTemplate
    from layers.levels import Hierarchy

    template = gov_topic_template(settings)
    if template is None:
        return
    hierarchy = Hierarchy.from_csv(
        settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
    )
    placeholders = ("{service}", "{unit_code}")
    contract = GovContract(
        TopicTemplate.parse(template, placeholders),
        limits_of(settings.ingest),
        lambda code: hierarchy.level_tags(code) if hierarchy.get(code) is not None else None,
    )
    units = gov_units(settings)
    timezone = ZoneInfo(settings.site.timezone)
    at = start
    while at < now:
        until = min(at + GOV_STEP, now)
        messages = gov_messages(
            units, at, until, seed=settings.simulator.seed, template=template, timezone=timezone
        )
        for topic, payload in messages:
            yield from contract.points(topic, json.dumps(payload).encode(), now)
        at = until


def quiet_libraries() -> None:
    """amqtt, transitions and aiosmtpd log every connection at INFO: keep the demo readable."""
    for name in ("amqtt", "transitions", "mail.log", "waitress"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_demo(config: Path, workdir: Path, *, fresh: bool = False) -> int:
    """Start everything, print where it is, wait for Ctrl-C; return the exit code."""
    from alerts.mailbox import MailboxServer
    from alerts.wiring import build_alert_service
    from core.cli import stop_on_signals
    from core.db import make_engine
    from core.store import make_store
    from dashboard.app import create_app, make_server, stop_server
    from ingest.broker import EmbeddedBroker
    from ingest.deadletter import SqlDeadLetterStore
    from ingest.demo_devices import ensure_registry
    from ingest.simulate import Simulator
    from ingest.worker import IngestWorker
    from layers.geography import Geography

    started = time.monotonic()
    quiet_libraries()
    workdir = workdir.resolve()
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "mailbox").mkdir(parents=True, exist_ok=True)
    stop = stop_on_signals()
    running = _Running()
    clock = SystemClock()
    try:
        raw = read_config_file(config)
        wanted = int((raw or {}).get("dashboard", {}).get("port", 8050))
        dashboard_port = wanted if port_is_free("127.0.0.1", wanted) else free_port()

        broker = EmbeddedBroker("127.0.0.1", 0)
        broker.start()
        running.add("broker", broker.stop)
        mailbox = MailboxServer(workdir / "mailbox")
        mailbox.start()
        running.add("mailbox", mailbox.stop)

        tree = demo_overrides(
            raw,
            workdir,
            broker_port=broker.port,
            smtp_port=mailbox.port,
            dashboard_port=dashboard_port,
        )
        settings = parse_settings(tree, base_dir=config.resolve().parent)
        geography = Geography.from_settings(settings)
        store = make_store(settings.store, settings.base_dir)
        running.add("store", store.close)
        engine = make_engine(settings.database.url, settings.base_dir)
        running.add("database", engine.dispose)
        dead_letters = SqlDeadLetterStore(engine)
        devices = ensure_registry(settings, geography)

        history_marker = workdir / ".history-written"
        if not history_marker.exists():
            history_started = time.monotonic()
            count = write_history(settings, store, devices, clock)
            history_marker.write_text(f"{count}\n")
            log.info(
                "wrote %d points of simulated history (%d weeks) in %.1f s",
                count,
                HISTORY_WEEKS,
                time.monotonic() - history_started,
            )

        worker = IngestWorker(
            settings,
            store,
            {device.device_id: device for device in devices},
            geography,
            dead_letters,
        )
        running.thread("ingest", lambda: worker.run_forever(stop))
        service = build_alert_service(settings, store, engine, geography, devices=devices)
        running.thread("alerts", lambda: service.run_forever(stop))
        simulator = Simulator(settings, devices)
        running.thread("simulator", lambda: simulator.run(stop))

        demo_users = ensure_demo_users(engine, workdir)
        dash_app = create_app(
            settings, store, geography, dead_letters=dead_letters, state_engine=engine
        )
        server = make_server(dash_app, settings.dashboard.host, settings.dashboard.port)
        running.add("dashboard", lambda: stop_server(server))
        running.thread("dashboard", server.run)

        url = f"http://127.0.0.1:{settings.dashboard.port}/"
        print(
            "\n".join(
                [
                    "",
                    "cityops demo — đang chạy / running "
                    f"(ready in {time.monotonic() - started:.1f} s)",
                    f"  Bảng điều khiển / dashboard : {url}",
                    *(
                        f"    đăng nhập / sign in       : {name} / {password}  ({role})"
                        for name, role, password in demo_users
                    ),
                    f"  Thu nhận / ingest health    : {url}pipeline/",
                    f"  MQTT broker (amqtt)         : mqtt://127.0.0.1:{broker.port}  "
                    "topics city/<kind>/<device_id>",
                    f"  Thiết bị / devices          : {len(devices)} "
                    f"({settings.path(settings.devices.registry)})",
                    f"  Kho dữ liệu / store         : {settings.path(settings.store.sqlite.path)}",
                    f"  Trạng thái / state database : {settings.database.url}",
                    f"  Hộp thư / mailbox (e-mails) : {workdir / 'mailbox'}  "
                    f"(SMTP 127.0.0.1:{mailbox.port})",
                    "  Dừng / stop                 : Ctrl-C",
                    "",
                ]
            ),
            flush=True,
        )
        while not stop.wait(1.0):
            pass
        return 0
    finally:
        stop.set()
        running.stop_all()
        log.info("demo stopped")
