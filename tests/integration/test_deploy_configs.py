"""The shipped deployment files (deploy/) against the real programs they configure, part
one: systemd-analyze verifies the units and Mosquitto 2.0 runs the shipped cityops.conf
and ACL with TLS (the servers: test_deploy_servers.py; nginx, compose, Dockerfile and the
production config: test_deploy_web.py). Each server file is used as shipped except its
file paths and ports, rewritten to a temporary folder and free ports.
"""

from __future__ import annotations

import os
import pwd
import queue
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from core.settings import load_settings
from ingest.fastmqtt import use_broker_settings
from tests.fixtures.deploy import (  # noqa: F401 - tls_files: a fixture used by name
    CITYOPS,
    DEPLOY,
    PRODUCTION,
    assert_subcommand_exists,
    run,
    tls_files,
)
from tests.fixtures.process import free_port, log_tail, stop_process
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- systemd

UNITS = {  # unit file → (instance verified, services it must start after)
    "cityops-ingest@.service": ("cityops-ingest@1.service", {"mosquitto.service"}),
    "cityops-alerts.service": (None, {"postgresql.service"}),
    "cityops-dashboard.service": (None, {"influxdb.service", "postgresql.service"}),
}
HARDENING = {
    "User": "cityops",
    "Restart": "always",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ReadWritePaths": "/var/lib/cityops",
    "PrivateTmp": "yes",
}


def unit_entries(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` → every value (EnvironmentFile may repeat)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return entries


@pytest.mark.parametrize("name", sorted(UNITS))
def test_systemd_unit(name: str, tmp_path: Path) -> None:
    shipped = DEPLOY / "systemd" / name
    entries = unit_entries(shipped)
    instance, after = UNITS[name]
    for key, value in HARDENING.items():
        assert entries.get(f"Service.{key}") == [value], key
    assert {"network-online.target", "influxdb.service"} | after <= set(
        entries["Unit.After"][0].split()
    )
    assert "network-online.target" in entries["Unit.Wants"][0].split()
    assert entries["Install.WantedBy"] == ["multi-user.target"]
    command = entries["Service.ExecStart"][0].split()
    assert command[0] == "/opt/cityops/.venv/bin/cityops"
    config_at = command.index("--config")
    assert command[config_at + 1] == "/etc/cityops/config.yaml"
    assert_subcommand_exists(command[1:config_at])
    for env_file in entries["Service.EnvironmentFile"]:
        # Each env file the unit reads has its example in deploy/env/.
        example = Path(env_file.lstrip("-").replace("%i", "1")).name + ".example"
        assert env_file.lstrip("-").startswith("/etc/cityops/")
        assert (DEPLOY / "env" / example).is_file(), example

    if shutil.which("systemd-analyze") is None:
        return  # the keys above are checked; CI images without systemd stop here
    # verify needs an executable ExecStart: the venv's cityops stands in for /opt's.
    copy = tmp_path / name
    copy.write_text(shipped.read_text().replace("/opt/cityops/.venv/bin/cityops", str(CITYOPS)))
    target = f"{copy}:{instance}" if instance else str(copy)
    done = run(["systemd-analyze", "verify", target])
    assert done.returncode == 0, done.stderr
    # Unknown keys and bad values are only warnings ("..., ignoring"): none allowed.
    complaints = [line for line in done.stderr.splitlines() if str(tmp_path) in line]
    assert not complaints, complaints


# --------------------------------------------------------------------------- Mosquitto

PASSWORDS = {"aq-0001": "pw-device-a", "aq-0002": "pw-device-b", "cityops-ingest": "pw-ingest"}


@dataclass(frozen=True)
class SecureBroker:
    tls_port: int
    plain_port: int
    ca: Path
    log_path: Path


@pytest.fixture(scope="module")
def secure_broker(
    tmp_path_factory: pytest.TempPathFactory,
    tls_files: dict[str, Path],  # noqa: F811
) -> Iterator[SecureBroker]:
    root = tmp_path_factory.mktemp("mosquitto")
    (root / "conf.d").mkdir()
    (root / "data").mkdir()
    shutil.copytree(tls_files["ca.crt"].parent, root / "certs")
    for user, password in PASSWORDS.items():  # the shipped script, as an operator runs it
        done = run(
            ["sh", str(DEPLOY / "mosquitto" / "add-device.sh"), user, str(root / "passwd")],
            env=os.environ | {"CITYOPS_DEVICE_PASSWORD": password},
        )
        assert done.returncode == 0, done.stderr
    assert (root / "passwd").stat().st_mode & 0o777 == 0o640
    shutil.copy(DEPLOY / "mosquitto" / "acl", root / "acl")
    tls_port, plain_port = free_port(), free_port()
    conf = (DEPLOY / "mosquitto" / "cityops.conf").read_text()
    conf = conf.replace("/etc/mosquitto/", f"{root}/")
    conf = conf.replace("\nlistener 8883\n", f"\nlistener {tls_port}\n")
    conf = conf.replace("\nlistener 1883 127.0.0.1\n", f"\nlistener {plain_port} 127.0.0.1\n")
    assert str(tls_port) in conf
    assert str(plain_port) in conf
    (root / "conf.d" / "cityops.conf").write_text(conf)
    # What Debian's /etc/mosquitto/mosquitto.conf does, in the temporary folder; as root,
    # mosquitto would switch to the user "mosquitto", who cannot read this folder.
    user = pwd.getpwuid(os.getuid()).pw_name
    (root / "mosquitto.conf").write_text(
        f"persistence_location {root}/data/\nlog_dest stderr\nuser {user}\n"
        f"include_dir {root}/conf.d\n"
    )
    log_path = root / "mosquitto.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["/usr/sbin/mosquitto", "-c", str(root / "mosquitto.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def listening() -> bool:
        assert process.poll() is None, f"mosquitto exited:\n{log_tail(log_path)}"
        try:
            for port in (tls_port, plain_port):
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return False
        return True

    try:
        eventually(listening, "mosquitto listens on both ports")
        yield SecureBroker(tls_port, plain_port, tls_files["ca.crt"], log_path)
    finally:
        stop_process(process)


class Peer:
    """A paho MQTT 5 client that records its CONNACK, SUBACKs and messages."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.connack: ReasonCode | None = None
        self.connected = threading.Event()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        client.on_connect = self._on_connect
        client.on_subscribe = lambda _c, _u, _m, codes, _p: self.subacks.put(list(codes))
        client.on_message = lambda _c, _u, message: self.messages.put(
            (message.topic, bytes(message.payload))
        )

    @classmethod
    def make(cls, user: str | None, password: str | None, ca: Path | None) -> Peer:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{secrets.token_hex(4)}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if user is not None:
            client.username_pw_set(user, password)
        if ca is not None:
            client.tls_set(ca_certs=str(ca))
        return cls(client)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, code: ReasonCode, _p: Any) -> None:
        self.connack = code
        self.connected.set()

    def connect(self, port: int) -> ReasonCode:
        self.client.connect("localhost", port)
        self.client.loop_start()
        assert self.connected.wait(10), "no CONNACK"
        assert self.connack is not None
        return self.connack

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()


def production_ingest(broker: SecureBroker, monkeypatch: pytest.MonkeyPatch) -> Peer:
    """The ingest worker's own broker setup (use_broker_settings) from the production
    config, the broker's CA given by SSL_CERT_FILE as in deploy/env/ingest.env.example."""
    settings = load_settings(
        PRODUCTION,
        environ={
            "CITYOPS_BROKER__HOST": "localhost",
            "CITYOPS_BROKER__PORT": str(broker.tls_port),
            "CITYOPS_BROKER__PASSWORD": PASSWORDS["cityops-ingest"],
        },
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(broker.ca))
    peer = Peer.make(None, None, None)
    use_broker_settings(peer.client, settings)
    return peer


def test_mosquitto_refuses_anonymous_and_wrong_passwords(
    secure_broker: SecureBroker, peers: list[Peer]
) -> None:
    for port, ca in ((secure_broker.tls_port, secure_broker.ca), (secure_broker.plain_port, None)):
        for user, password in ((None, None), ("aq-0001", "wrong"), ("nobody", "pw-device-a")):
            peers.append(Peer.make(user, password, ca))
            assert peers[-1].connect(port).is_failure, (port, user)
        peers.append(Peer.make("aq-0001", PASSWORDS["aq-0001"], ca))
        assert not peers[-1].connect(port).is_failure, port


def test_mosquitto_device_reaches_ingest_only_on_its_own_topic(
    secure_broker: SecureBroker, peers: list[Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = production_ingest(secure_broker, monkeypatch)
    peers.append(ingest)
    assert not ingest.connect(secure_broker.tls_port).is_failure
    # As several workers subscribe (ingest.shared_group), and the public-service topics.
    assert not ingest.subscribe("$share/cityops/city/+/+")[0].is_failure
    assert not ingest.subscribe("gov/+/+")[0].is_failure
    device_a = Peer.make("aq-0001", PASSWORDS["aq-0001"], secure_broker.ca)
    peers.append(device_a)
    assert not device_a.connect(secure_broker.tls_port).is_failure

    device_a.publish("city/air/aq-0002", b"forged")  # device B's topic
    device_a.publish("gov/dossiers/20194", b"forged")  # not a device topic
    device_a.publish("city/air/aq-0001", b'{"pm25": 12.5}')
    device_a.publish("city/water/aq-0001", b'{"level": 1.2}')
    got = [ingest.messages.get(timeout=10) for _ in range(2)]
    assert got == [
        ("city/air/aq-0001", b'{"pm25": 12.5}'),
        ("city/water/aq-0001", b'{"level": 1.2}'),
    ]
    time.sleep(0.3)  # the forged ones went first on one connection: nothing may follow
    assert ingest.messages.empty()


def test_mosquitto_device_cannot_subscribe(
    secure_broker: SecureBroker, peers: list[Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = production_ingest(secure_broker, monkeypatch)
    device_a = Peer.make("aq-0001", PASSWORDS["aq-0001"], secure_broker.ca)
    device_b = Peer.make("aq-0002", PASSWORDS["aq-0002"], None)  # the loopback listener
    peers.extend([ingest, device_a, device_b])
    ingest.connect(secure_broker.tls_port)
    device_a.connect(secure_broker.tls_port)
    device_b.connect(secure_broker.plain_port)
    assert not ingest.subscribe("city/#")[0].is_failure
    # Mosquitto 2.0.11 grants a SUBACK for any filter (it has no "subscribe" ACL type) and
    # checks read access on every message it would deliver: the device gets nothing.
    for topic in ("city/#", "city/air/aq-0002", "#", "$SYS/#"):
        device_a.subscribe(topic)
    device_b.publish("city/air/aq-0002", b'{"pm25": 40}')
    device_a.publish("city/air/aq-0001", b'{"pm25": 41}')
    assert ingest.messages.get(timeout=10) == ("city/air/aq-0002", b'{"pm25": 40}')
    assert ingest.messages.get(timeout=10) == ("city/air/aq-0001", b'{"pm25": 41}')
    time.sleep(0.5)
    assert device_a.messages.empty(), device_a.messages.get()
    # Nothing said about the shipped configuration (deprecated options are "Note:"); the
    # test runs mosquitto as root, which it warns about.
    log = secure_broker.log_path.read_text().splitlines()
    said = [line for line in log if re.search(r": (Note|Warning|Error):", line)]
    assert [line for line in said if "run as root" not in line] == []


def test_add_device_refuses_a_bad_device_id(tmp_path: Path) -> None:
    script = DEPLOY / "mosquitto" / "add-device.sh"
    done = run(["sh", str(script), "city/+/#", str(tmp_path / "passwd")])
    assert done.returncode == 2
    assert "invalid device id: 'city/+/#'" in done.stderr
    assert not (tmp_path / "passwd").exists()
