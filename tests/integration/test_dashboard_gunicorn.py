"""The dashboard under real gunicorn (``dashboard.wsgi:application`` with
``dashboard/gunicorn_conf.py``): two worker processes, one private redis-server as their
query cache, a SQLite store with a day of readings of Hải Vân, a signed-in user.

What is observed, and how:

* which worker served a request: gunicorn's access log, whose format names the worker's
  pid; each request carries a ``probe=<n>`` argument so its log line is found;
* who computed a query and who read it from Redis: Redis's MONITOR stream (every command
  with the client's port), the port mapped to a worker pid through the worker's sockets;
* a worker killed with SIGKILL: the master's children before and after, and the status of
  every request of a sequential loop around the kill.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
import requests
import yaml

from core.db import make_engine
from core.store import SqliteStore
from core.types import Point
from dashboard.cache import RedisCache, make_query_cache
from tests.fixtures.process import free_port, log_tail, stop_process
from tests.fixtures.redis import running_redis
from tests.fixtures.signin import PASSWORD, add_user, csrf_of
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
CITYOPS = Path(sys.executable).with_name("cityops")
BOOT_S = 120.0  # two workers each load the geography; the machine is shared
HAI_VAN = "20194"
TREND = f"/export/unit_trend.csv?unit={HAI_VAN}&metric=pm25"
TREND_KEY = ("trend", "pm25", "commune", HAI_VAN)  # DashboardData.trend's cache key
_ACCESS = re.compile(r'"GET (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) .* pid=<(?P<pid>\d+)>')


def write_config(folder: Path, port: int, cache_url: str) -> Path:
    """config.yaml as shipped, on files in ``folder``, with Redis as the query cache."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["hierarchy"]["units_file"] = str(REPO / raw["hierarchy"]["units_file"])
    history = raw["hierarchy"]["history"]
    history["mapping_file"] = str(REPO / history["mapping_file"])
    raw["layers"]["boundaries"] = {
        level: str(REPO / path) for level, path in raw["layers"]["boundaries"].items()
    }
    raw["store"] = {"backend": "sqlite", "sqlite": {"path": str(folder / "ts.sqlite")}}
    raw["database"]["url"] = f"sqlite:///{folder / 'state.sqlite'}"
    raw["devices"]["registry"] = str(folder / "devices.csv")  # none registered
    dashboard = raw["dashboard"]
    dashboard.update(host="127.0.0.1", port=port, cache_url=cache_url)
    dashboard["auth"]["secret_key_file"] = str(folder / "secret.key")  # made by a worker
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def seed(folder: Path) -> None:
    """A day of PM2.5 readings from one sensor in Hải Vân, and the user ``admin``."""
    store = SqliteStore(folder / "ts.sqlite")
    now = datetime.now(UTC)
    tags = {"device": "aq-haivan", "province": "48", "commune": HAI_VAN}
    store.write(
        [
            Point("air", tags, {"pm25": 20.0 + step}, now - timedelta(minutes=15 * step))
            for step in range(1, 90)
        ]
    )
    store.close()
    engine = make_engine(f"sqlite:///{folder / 'state.sqlite'}")
    add_user(engine, "admin")
    engine.dispose()


@dataclass
class Dashboard:
    """A running gunicorn master, its log, and a signed-in cookie jar."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    config: Path
    cache_url: str
    cookies: Any = None
    _probe: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> set[int]:
        return {child.pid for child in psutil.Process(self.process.pid).children()}

    def ready(self) -> int:
        return self.log().count("INFO cityops.dashboard: dashboard worker ")

    def get(self, path: str) -> tuple[int, str, int]:
        """(status, body, pid of the worker that served it), on a new connection each time
        (a kept-alive connection would stay with one worker). Status 0: no answer."""
        with self._lock:
            self._probe += 1
            probe = self._probe
        sep = "&" if "?" in path else "?"
        target = f"{path}{sep}probe={probe}"
        try:
            answer = requests.get(
                self.url + target,
                cookies=self.cookies,
                headers={"Connection": "close"},
                timeout=30,
                allow_redirects=False,
            )
        except requests.ConnectionError:
            return 0, "", 0
        return answer.status_code, answer.text, self.served_by(target)

    def served_by(self, target: str) -> int:
        """The pid the access log gives for ``target`` (its line is written just after the
        response, so it is waited for)."""
        found: list[int] = []

        def logged() -> bool:
            for match in _ACCESS.finditer(self.log()):
                if match["path"] == target:
                    found.append(int(match["pid"]))
                    return True
            return False

        eventually(logged, f"access log line of {target}", timeout_s=5)
        return found[0]

    def sign_in(self) -> None:
        session = requests.Session()
        form = session.get(f"{self.url}/login", timeout=30)
        answer = session.post(
            f"{self.url}/login",
            data={
                "username": "admin",
                "password": PASSWORD,
                "csrf_token": csrf_of(form.text),
                "next": "/",
            },
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code in (302, 303), answer.text[:500]
        self.cookies = session.cookies
        session.close()


def launch(command: list[str], config: Path, log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """``command`` in the config's folder, logging to ``log_path``; the environment without
    the caller's CITYOPS_ variables, plus ``env``."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CITYOPS_")}
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            cwd=config.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**environ, **env},
        )


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    folder = tmp_path_factory.mktemp("gunicorn")
    with running_redis(folder) as cache:
        port = free_port()
        config = write_config(folder, port, cache.url)
        seed(folder)
        log_path = folder / "gunicorn.log"
        process = launch(
            [str(GUNICORN), "-c", "python:dashboard.gunicorn_conf", "-w", "2",
             "-b", f"127.0.0.1:{port}", "dashboard.wsgi:application"],
            config, log_path, CITYOPS_CONFIG=str(config),
        )  # fmt: skip
        running = Dashboard(process, port, log_path, config, cache.url)
        try:
            eventually(
                lambda: process.poll() is not None or running.ready() >= 2,
                "two dashboard workers ready",
                timeout_s=BOOT_S,
            )
            assert process.poll() is None, log_tail(log_path, 60)
            running.sign_in()
            yield running
        finally:
            stop_process(process)


def site_key(dashboard: Dashboard) -> str:
    """The Redis key of the Hải Vân trend, as the workers name it (secret of the site)."""
    secret = (dashboard.config.parent / "secret.key").read_text().strip().encode()
    cache = make_query_cache(dashboard.cache_url, secret)
    assert isinstance(cache, RedisCache)
    key = cache.redis_key(TREND_KEY)
    cache.close()
    return key


class Monitor:
    """Redis's MONITOR stream in a thread: (client port, command words) of each command."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.seen: list[tuple[int, list[str]]] = []
        self._monitor = self.client.monitor()  # type: ignore[no-untyped-call]
        self._monitor.__enter__()  # MONITOR is on once this returns
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                command = self._monitor.next_command()
                port = int(command.get("client_port") or 0)
                self.seen.append((port, str(command["command"]).split()))
        except (redis.ConnectionError, OSError, ValueError, AttributeError):
            return  # closed

    def close(self) -> None:
        self._monitor.connection.disconnect()
        self._thread.join(timeout=5)
        self.client.close()


def ports_of(pids: set[int], redis_port: int) -> dict[int, int]:
    """Local port → worker pid of every worker's connection to Redis."""
    found: dict[int, int] = {}
    for pid in pids:
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port == redis_port:
                found[connection.laddr.port] = pid
    return found


def test_two_workers_serve_and_share_one_query_through_redis(dashboard: Dashboard) -> None:
    workers = dashboard.workers()
    assert len(workers) == 2, dashboard.log()[-3000:]
    key = site_key(dashboard)
    monitor = Monitor(dashboard.cache_url)
    try:
        status, first_body, computed_by = dashboard.get(TREND)
        assert status == 200, first_body[:500]
        assert first_body.count("\n") > 80  # a day of 15-minute buckets
        # The same query until the other worker serves it: within the 5 s each answer is
        # fresh (build_context's cache_s), so that worker must take it from Redis.
        began = time.monotonic()
        served: list[int] = [computed_by]
        while time.monotonic() - began < 4.0 and set(served) != workers:
            status, body, pid = dashboard.get(TREND)
            assert status == 200
            assert body == first_body
            served.append(pid)
        assert set(served) == workers, f"one worker served all {len(served)} requests"
        print(f"\nthe other worker served request {len(served)} ({time.monotonic() - began:.2f} s)")
        other = next(pid for pid in workers if pid != computed_by)
        redis_port = int(dashboard.cache_url.rsplit(":", 1)[1].split("/")[0])
        owner = ports_of(workers, redis_port)
    finally:
        time.sleep(0.2)  # the last commands reach the monitor
        monitor.close()
    on_key = [(owner.get(port), words) for port, words in monitor.seen if key in words]
    sets = [pid for pid, words in on_key if words[0] == "SET"]
    reads = [pid for pid, words in on_key if words[0] == "MGET"]
    assert sets == [computed_by], on_key  # computed once, stored once, by the first worker
    assert other in reads, on_key  # the other one read it from Redis ...
    assert other not in sets  # ... and did not query the store for it
    # Two processes, each with its own Redis connection (nothing shared across a fork).
    assert set(owner.values()) == workers, owner


def test_a_worker_killed_with_sigkill_is_replaced_and_no_request_fails(
    dashboard: Dashboard,
) -> None:
    """50 sequential requests, one at a time; after the 10th returned, one worker gets
    SIGKILL. No request is in flight at the kill, so every one of the 50 must succeed; the
    master must start a new worker, which then serves requests too."""
    before = dashboard.workers()
    assert len(before) == 2
    results: list[tuple[int, int]] = []
    killed = 0
    killed_at = 0.0
    for number in range(50):
        status, _, pid = dashboard.get(TREND)
        results.append((status, pid))
        if number == 9:
            killed = pid  # the one that just answered
            os.kill(killed, signal.SIGKILL)
            killed_at = time.monotonic()
        time.sleep(0.1)
    failed = [(n, status) for n, (status, _) in enumerate(results) if status != 200]
    assert failed == [], failed
    assert killed not in {pid for _, pid in results[10:]}
    eventually(lambda: len(dashboard.workers()) == 2 and killed not in dashboard.workers(),
               "a new worker in place of the killed one", timeout_s=BOOT_S)  # fmt: skip
    (new,) = dashboard.workers() - before
    eventually(lambda: f"dashboard worker {new} ready" in dashboard.log(),
               "the new worker built its app", timeout_s=BOOT_S)  # fmt: skip
    replaced_s = time.monotonic() - killed_at
    served_by_new = False
    for _ in range(60):  # the new worker takes its share of new connections
        status, _, pid = dashboard.get(TREND)
        assert status == 200
        if pid == new:
            served_by_new = True
            break
    assert served_by_new, "the replacement worker served none of 60 requests"
    assert f"Worker (pid:{killed}) was sent SIGKILL" in dashboard.log()
    rss = {pid: psutil.Process(pid).memory_info().rss // 2**20 for pid in dashboard.workers()}
    print(f"\nreplacement worker ready {replaced_s:.1f} s after the kill; worker RSS MiB {rss}")
    assert dashboard.process.poll() is None


def test_cityops_dashboard_workers_becomes_the_gunicorn_master(dashboard: Dashboard) -> None:
    """``cityops dashboard --workers 2`` execs gunicorn with dashboard/gunicorn_conf.py:
    the same pid (what systemd watches) is now the master of two workers on the port of
    the config (here moved by an environment override, as an operator may)."""
    port = free_port()
    log_path = dashboard.config.parent / "cli.log"
    command = [str(CITYOPS), "dashboard", "--config", str(dashboard.config), "--workers", "2"]
    process = launch(command, dashboard.config, log_path, CITYOPS_DASHBOARD__PORT=str(port))
    try:
        eventually(
            lambda: process.poll() is not None or log_path.read_text().count("ready (config") >= 2,
            "two workers started by cityops dashboard --workers 2",
            timeout_s=BOOT_S,
        )
        assert process.poll() is None, log_tail(log_path, 60)
        assert len(psutil.Process(process.pid).children()) == 2
        assert "gunicorn" in " ".join(psutil.Process(process.pid).cmdline())
        answer = requests.get(f"http://127.0.0.1:{port}/login", timeout=30)
        assert answer.status_code == 200
        assert 'name="csrf_token"' in answer.text
    finally:
        stop_process(process)
    assert "under gunicorn" in log_path.read_text()


def test_preload_is_refused_before_any_request_is_served(dashboard: Dashboard) -> None:
    """With --preload the master builds the app and every worker would inherit its sockets
    and threads: the worker refuses to boot, and gunicorn stops saying why."""
    port = free_port()
    log_path = dashboard.config.parent / "preload.log"
    process = launch(
        [str(GUNICORN), "-c", "python:dashboard.gunicorn_conf", "--preload", "-w", "1",
         "-b", f"127.0.0.1:{port}", "dashboard.wsgi:application"],
        dashboard.config, log_path, CITYOPS_CONFIG=str(dashboard.config),
    )  # fmt: skip
    try:
        code = process.wait(timeout=BOOT_S)
    finally:
        stop_process(process)
    assert code == 3, log_tail(log_path, 40)  # gunicorn's "worker failed to boot"
    assert "run gunicorn without --preload" in log_path.read_text()


def test_a_bad_config_stops_gunicorn_before_any_worker_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port(), "redis://127.0.0.1:6379/0")
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["dashboard"]["port"] = 99999
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    log_path = tmp_path / "gunicorn.log"
    process = launch(
        [str(GUNICORN), "-c", "python:dashboard.gunicorn_conf", "dashboard.wsgi:application"],
        config, log_path, CITYOPS_CONFIG=str(config),
    )  # fmt: skip
    try:
        code = process.wait(timeout=60)
    finally:
        stop_process(process)
    assert code != 0
    assert "dashboard.port must be at most 65535: 99999" in log_path.read_text()
    assert "Booting worker" not in log_path.read_text()
