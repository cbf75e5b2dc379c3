"""The shipped deployment files for the web side: nginx runs the shipped server block in
front of an echo server; the compose file, Dockerfile and production config are checked
against the CLI and the settings loader.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from core.settings import Settings, load_settings
from tests.conftest import REPO
from tests.fixtures.deploy import (  # noqa: F401 - tls_files: a fixture used by name
    CITYOPS,
    DEPLOY,
    PRODUCTION,
    assert_subcommand_exists,
    read_env_file,
    run,
    tls_files,
)
from tests.fixtures.process import free_port, log_tail, stop_process
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration

NGINX = Path("/usr/sbin/nginx")

# --------------------------------------------------------------------------- nginx


class EchoHandler(BaseHTTPRequestHandler):
    """Stands in for the dashboard: answers JSON naming the request headers it got."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
            | {"padding": "x" * 4096}  # above gzip_min_length
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Nginx:
    http_port: int
    https_port: int


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, tls_files: dict[str, Path]) -> Iterator[Nginx]:  # noqa: F811
    if not NGINX.exists():
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    root = tmp_path_factory.mktemp("nginx")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    http_port, https_port = free_port(), free_port()
    server = (DEPLOY / "nginx" / "cityops.conf").read_text()
    for shipped, local in (
        ("/etc/ssl/cityops/dashboard.crt", str(tls_files["server.crt"])),
        ("/etc/ssl/cityops/dashboard.key", str(tls_files["server.key"])),
        ("/var/log/nginx/", f"{root}/"),
        ("127.0.0.1:8050", f"127.0.0.1:{upstream.server_address[1]}"),
        (" 80;", f" {http_port};"),
        ("]:80;", f"]:{http_port};"),
        (" 443 ssl", f" {https_port} ssl"),
        ("]:443 ssl", f"]:{https_port} ssl"),
    ):
        assert shipped in server, shipped
        server = server.replace(shipped, local)
    (root / "cityops.conf").write_text(server)
    temp = " ".join(f"{kind}_temp_path {root}/{kind};" for kind in ("client_body", "proxy"))
    temp += " ".join(f" {kind}_temp_path {root}/{kind};" for kind in ("fastcgi", "uwsgi", "scgi"))
    # What Debian's /etc/nginx/nginx.conf does around sites-enabled/, in the temporary folder.
    (root / "nginx.conf").write_text(
        f"worker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{ include /etc/nginx/mime.types; {temp} include {root}/cityops.conf; }}\n"
    )
    checked = run([str(NGINX), "-t", "-c", str(root / "nginx.conf")])
    assert checked.returncode == 0, checked.stderr
    assert "[warn]" not in checked.stderr, checked.stderr
    process = subprocess.Popen(
        [str(NGINX), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        assert process.poll() is None, log_tail(root / "error.log")
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=0.5).close()
        except OSError:
            return False
        return True

    try:
        eventually(listening, "nginx listens")
        yield Nginx(http_port, https_port)
    finally:
        stop_process(process)
        upstream.shutdown()
        upstream.server_close()


def test_nginx_redirects_http_and_proxies_https(nginx: Nginx, tls_files: dict[str, Path]) -> None:  # noqa: F811
    plain = requests.get(
        f"http://127.0.0.1:{nginx.http_port}/area/commune/20194?x=1", allow_redirects=False
    )
    assert plain.status_code == 301
    assert plain.headers["Location"] == "https://127.0.0.1/area/commune/20194?x=1"

    base = f"https://127.0.0.1:{nginx.https_port}"
    ca = str(tls_files["ca.crt"])
    # A client must not name the signed-in user itself (dashboard.auth.mode: proxy).
    answer = requests.get(f"{base}/_dash-layout", verify=ca, headers={"X-Remote-User": "admin"})
    assert answer.status_code == 200
    assert answer.headers["Content-Encoding"] == "gzip"
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
    seen = answer.json()["headers"]
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["host"] == "127.0.0.1"
    assert "x-remote-user" not in seen
    assert requests.get(f"{base}/metrics", verify=ca).status_code == 404  # not the echo's 200
    too_big = requests.post(f"{base}/_dash-update-component", verify=ca, data=b"x" * 3_000_000)
    assert too_big.status_code == 413


# --------------------------------------------------------------------------- containers

CITYOPS_SERVICES = ("cityops-ingest", "cityops-alerts", "cityops-dashboard")
IMAGES = {"mosquitto": "eclipse-mosquitto:2", "influxdb": "influxdb:1.8", "postgres": "postgres:15"}


def test_compose_services_run_real_commands_on_existing_files() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = compose["services"]
    assert set(IMAGES) | {"redis", *CITYOPS_SERVICES} <= set(services)
    for name, image in IMAGES.items():
        assert services[name]["image"] == image
    for name, service in services.items():
        assert service["restart"] in ("always", "unless-stopped"), name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on {dependency}"
            if condition == {"condition": "service_healthy"}:
                assert "healthcheck" in services[dependency], dependency
        for volume in service.get("volumes", []):
            source, _target = volume.split(":")[:2]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            elif source.startswith("/"):
                assert source.startswith("/etc/cityops/"), f"{name}: host files in /etc/cityops"
            else:
                assert source in compose["volumes"], f"{name}: volume {source}"
    for name in CITYOPS_SERVICES:
        service = services[name]
        command = service["command"]
        assert command[-2:] == ["--config", "/etc/cityops/config.yaml"]
        assert "./config.production.yaml:/etc/cityops/config.yaml:ro" in service["volumes"]
        assert_subcommand_exists(command[:-2])
        assert (REPO / service["build"]["context"].removeprefix("..").lstrip("/")).is_dir()
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        env_file = Path(service["env_file"])
        assert (DEPLOY / "env" / f"{env_file.name}.example").is_file()
        # The example secrets plus the compose overrides name only real settings.
        environ = read_env_file(DEPLOY / "env" / f"{env_file.name}.example")
        load_settings(PRODUCTION, environ=environ | service.get("environment", {}))

    docker = shutil.which("docker")
    if docker is not None and run([docker, "compose", "version"]).returncode == 0:
        done = run([docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q"])
        assert done.returncode == 0, done.stderr


def test_dockerfile_installs_the_hashed_lock_and_runs_unprivileged() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    assert lines[[line.startswith("FROM") for line in lines].index(True)] == "FROM python:3.11-slim"
    text_ = "\n".join(lines)
    assert "pip install --require-hashes -r requirements.lock" in text_
    assert "pip install --no-deps --no-build-isolation ." in text_
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source


# --------------------------------------------------------------------------- production config


@pytest.mark.parametrize(
    ("env_files", "influx_user"),
    [
        (("ingest.env", "ingest-1.env"), "cityops_ingest"),
        (("alerts.env",), "cityops_alerts"),
        (("dashboard.env",), "cityops_dashboard"),
    ],
)
def test_production_config_loads_with_each_service_env(
    env_files: tuple[str, ...], influx_user: str
) -> None:
    environ: dict[str, str] = {}
    for name in env_files:
        environ |= read_env_file(DEPLOY / "env" / f"{name}.example")
    settings: Settings = load_settings(PRODUCTION, environ=environ)
    influx = settings.store.influxdb
    assert settings.store.backend == "influxdb"
    assert not influx.create_database
    assert influx.username == influx_user
    assert influx.password is not None
    assert settings.database.url.startswith("postgresql+psycopg://cityops:")
    assert settings.broker.tls
    assert settings.broker.port == 8883
    assert settings.dashboard.auth.cookie_secure
    assert settings.dashboard.public_url.startswith("https://")
    for path in (settings.ingest.spool_dir, settings.dashboard.auth.secret_key_file):
        assert str(path).startswith("/var/lib/cityops/")  # the units' only writable folder


def test_production_config_keeps_the_catalogue_and_rules_of_config_yaml() -> None:
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    production = yaml.safe_load(PRODUCTION.read_text())
    assert production["metrics"] == shipped["metrics"]
    assert production["alerts"]["rules"] == shipped["alerts"]["rules"]
    assert production["dashboard"]["walls"] == shipped["dashboard"]["walls"]
    assert production["hierarchy"]["levels"] == shipped["hierarchy"]["levels"]
    assert production["ingest"]["contracts"] == shipped["ingest"]["contracts"]


def test_production_config_passes_check_config(tmp_path: Path) -> None:
    """Every file it names exists once /opt/cityops is the release and /etc/cityops holds
    the site's roster."""
    etc = tmp_path / "etc-cityops"
    etc.mkdir()
    shutil.copy(REPO / "config" / "roster.example.csv", etc / "roster.csv")
    config = PRODUCTION.read_text().replace("/opt/cityops/", f"{REPO}/")
    (etc / "config.yaml").write_text(config.replace("/etc/cityops/", f"{etc}/"))
    done = run([str(CITYOPS), "check-config", "--config", str(etc / "config.yaml")])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(": OK")
