"""Alert delivery: from the reading that crosses a threshold to the e-mail accepted by a real
SMTP server, and how many e-mails a storm of breaching sensors makes.

    .venv/bin/python -m bench.bench_alerts [--trials 30] [--storm 500] [--no-results]

The production path, each part real: a private Mosquitto and influxd (as bench_ingest),
``cityops ingest`` and ``cityops alerts`` as processes with the shipped settings (alert
round every alerts.interval_s, group_interval_s, …), and an aiosmtpd server in this
process that notes when it accepts each e-mail. The rule is the shipped ``pm25-bad`` with
``for_s: 0``.

Latency: one sensor per commune of Đà Nẵng reports a normal PM2.5 every 5 s; for each
trial one of them (a new commune each time, each with its own officer on duty, so per-person
grouping does not hold the e-mail back) publishes 200 µg/m³ at a random moment; latency =
SMTP acceptance of its "[CẢNH BÁO]" e-mail − publish. The baseline, measured on the same
messages: publish → the reading queryable in InfluxDB (what no alerting can beat).

Storm: ``--storm`` sensors spread over the 94 communes all breach within a second; the
e-mails accepted in the next 3 minutes are counted, with the shipped roster (the duty desk
and the example roster of Phường Hải Vân and the city) and with one officer per commune.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import requests
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from alerts.mailbox import LoopbackController
from bench.bench_ingest import private_mosquitto, versions, wait_for, worker_config
from bench.bench_store import private_influxd
from bench.results import markdown_table, write_section
from core.settings import load_settings
from layers.geography import Geography
from layers.registry import Device, place_device, write_registry

REPO = Path(__file__).resolve().parent.parent
CITYOPS = str(REPO / ".venv" / "bin" / "cityops")
DATABASE = "cityops_bench"
NORMAL, BREACH = 20.0, 200.0
STORM_WINDOW_S = 180.0


class Inbox:
    """aiosmtpd handler: (accepted at, To, Subject) of every e-mail."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mail: list[tuple[float, str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        accepted = time.time()
        parsed = message_from_bytes(envelope.original_content or envelope.content,
                                    policy=policy.default)  # fmt: skip
        with self.lock:
            self.mail.append((accepted, str(parsed["To"]), str(parsed["Subject"])))
        return "250 Message accepted for delivery"

    def since(self, moment: float) -> list[tuple[float, str, str]]:
        with self.lock:
            return [mail for mail in self.mail if mail[0] >= moment]


@contextlib.contextmanager
def smtp_inbox() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    controller = LoopbackController(inbox, hostname="127.0.0.1", port=0, enable_SMTPUTF8=True)
    controller.start()
    try:
        yield int(controller.port), inbox
    finally:
        controller.stop()


def sensors(geography: Geography, per_commune: int) -> list[Device]:
    """``per_commune`` sensors at the representative point of each commune of Đà Nẵng."""
    frame = geography.boundaries("commune")
    devices: list[Device] = []
    for _, row in frame.sort_values("code").iterrows():
        point = row.geometry.representative_point()
        for n in range(per_commune):
            lon, lat = point.x + n * 1e-5, point.y
            devices.append(place_device(f"aq-{row['code']}-{n}", "air", "", lon, lat, geography))
    return [device for device in devices if device.unit_code is not None]


def officer(code: str) -> str:
    return f"truc-{code}@danang.gov.vn"


def alerts_config(base: Path, root: Path, smtp_port: int, *, per_commune_roster: bool,
                  communes: list[str]) -> Path:  # fmt: skip
    raw = yaml.safe_load(base.read_text(encoding="utf-8"))
    raw["smtp"].update(host="127.0.0.1", port=smtp_port)
    raw["dashboard"]["auth"]["secret_key_file"] = str(root / "secret.key")
    rules = [rule for rule in raw["alerts"]["rules"] if rule["id"] == "pm25-bad"]
    rules[0]["for_s"] = 0
    raw["alerts"]["rules"] = rules
    if per_commune_roster:
        raw["alerts"]["roster"] = [
            {"unit": code, "name": f"Trực ban {code}", "email": officer(code)} for code in communes
        ]
        raw["alerts"]["roster_file"] = None
    elif raw["alerts"].get("roster_file"):
        raw["alerts"]["roster_file"] = str(REPO / raw["alerts"]["roster_file"])
    raw["database"]["url"] = f"sqlite:///{root / 'state.sqlite'}"
    path = root / "alerts.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    load_settings(path)
    return path


@contextlib.contextmanager
def process(args: list[str], log_path: Path, ready: str) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        running = subprocess.Popen(args, stdout=log, stderr=log, cwd=REPO)
    try:
        wait_for(lambda: ready in log_path.read_text(errors="replace")
                 or running.poll() is not None, ready, 60, 0.05)  # fmt: skip
        if running.poll() is not None:
            raise SystemExit(f"{args[1]} exited; see {log_path}")
        yield running
    finally:
        running.terminate()
        try:
            running.wait(timeout=20)
        except subprocess.TimeoutExpired:
            running.kill()


class Publisher:
    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-alerts-pub")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def reading(self, device: str, value: float) -> float:
        now = time.time()
        payload = json.dumps({"ts": int(now * 1000), "pm25": value, "pm10": value * 1.5})
        self.client.publish(f"city/air/{device}", payload, qos=1).wait_for_publish(5)
        return now

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def queryable(influx_url: str, device: str, value: float) -> bool:
    query = f"SELECT last(pm25) FROM air WHERE device = '{device}'"
    answer = requests.get(f"{influx_url}/query", params={"db": DATABASE, "q": query}, timeout=5)
    series = answer.json()["results"][0].get("series") or []
    return bool(series) and series[0]["values"][0][1] == value


def background(publisher: Publisher, devices: list[str], stop: threading.Event,
               held: set[str]) -> None:  # fmt: skip
    """Every device not in a trial reports a normal value every 5 s."""
    while not stop.wait(5.0):
        for device in devices:
            if device not in held:
                publisher.reading(device, NORMAL)


def latency_trials(publisher: Publisher, inbox: Inbox, influx_url: str,
                   communes: list[list[Device]], interval_s: float,
                   ) -> tuple[list[float], list[float]]:  # fmt: skip
    """Each trial: every sensor of one commune reads 200 µg/m³ (the rule judges the mean of
    the commune's sensors); the clock starts at the first publish."""
    rng = random.Random(2026)
    to_mail: list[float] = []
    to_store: list[float] = []
    for sensors_here in communes:
        time.sleep(rng.uniform(0, interval_s))  # a random phase against the alert rounds
        sent = time.time()
        for device in sensors_here:
            publisher.reading(device.device_id, BREACH)
        last = sensors_here[-1].device_id
        wait_for(lambda d=last: queryable(influx_url, d, BREACH), "stored", 30, 0.01)
        to_store.append(time.time() - sent)
        address = officer(str(sensors_here[0].unit_code))

        def arrived(address: str = address, sent: float = sent) -> bool:
            return any(to == address and "[CẢNH BÁO]" in subject
                       for _, to, subject in inbox.since(sent))  # fmt: skip

        wait_for(arrived, f"the e-mail to {address}", 60, 0.02)
        accepted = min(at for at, to, subject in inbox.since(sent)
                       if to == address and "[CẢNH BÁO]" in subject)  # fmt: skip
        to_mail.append(accepted - sent)
        for device in sensors_here:
            publisher.reading(device.device_id, NORMAL)  # resolves in the background
    return to_mail, to_store


def storm(publisher: Publisher, inbox: Inbox, devices: list[Device]) -> tuple[int, int]:
    """(e-mails accepted in STORM_WINDOW_S, distinct recipients) after all breach at once."""
    began = time.time()
    for device in devices:
        publisher.reading(device.device_id, BREACH)
    time.sleep(STORM_WINDOW_S)
    mail = [m for m in inbox.since(began) if "[CẢNH BÁO]" in m[2]]
    return len(mail), len({to for _, to, _ in mail})


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--storm", type=int, default=500)
    parser.add_argument("--no-results", action="store_true", help="Do not write RESULTS.md.")
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep the logs.")
    args = parser.parse_args()
    settings = load_settings(REPO / "config.yaml")
    geography = Geography.from_settings(settings)
    per_commune = max(1, -(-args.storm // 94))
    devices = sensors(geography, per_commune)
    communes = sorted({str(d.unit_code) for d in devices})
    rows: list[list[str]] = []
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            root = args.keep
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cityops-bench-")))
        write_registry(root / "devices.csv", devices)
        with private_mosquitto(root) as port, private_influxd(root) as influx_url, \
                smtp_inbox() as (smtp_port, inbox):  # fmt: skip
            base = worker_config(root, port, influx_url, root / "devices.csv")
            raw = yaml.safe_load(base.read_text(encoding="utf-8"))
            raw["store"]["influxdb"]["database"] = DATABASE
            base.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
            interval = load_settings(base).alerts.interval_s
            publisher = Publisher(port)
            stop = threading.Event()
            held: set[str] = set()
            with process([CITYOPS, "ingest", "--config", str(base)], root / "ingest.log",
                         "MQTT connected"):  # fmt: skip
                for device in devices:
                    publisher.reading(device.device_id, NORMAL)
                feeder = threading.Thread(target=background, daemon=True,
                                          args=(publisher, [d.device_id for d in devices],
                                                stop, held))  # fmt: skip
                feeder.start()
                for roster in ("commune", "shipped"):
                    (root / roster).mkdir()
                    config = alerts_config(base, root / roster, smtp_port,
                                           per_commune_roster=roster == "commune",
                                           communes=communes)  # fmt: skip
                    with process([CITYOPS, "alerts", "--config", str(config)],
                                 root / f"alerts-{roster}.log", "alert engine"):  # fmt: skip
                        time.sleep(interval * 2)
                        if roster == "commune":
                            trial = [[d for d in devices if d.unit_code == code]
                                     for code in communes[: args.trials]]  # fmt: skip
                            held.update(d.device_id for group in trial for d in group)
                            to_mail, to_store = latency_trials(
                                publisher, inbox, influx_url, trial, interval
                            )
                            held.clear()
                            time.sleep(interval * 3)  # all resolved before the storm
                        held.update(d.device_id for d in devices[: args.storm])
                        emails, people = storm(publisher, inbox, devices[: args.storm])
                        for device in devices[: args.storm]:
                            publisher.reading(device.device_id, NORMAL)
                        held.clear()
                        rows.append([f"storm of {args.storm} sensors, roster: {roster}",
                                     f"{emails} e-mails to {people} recipients"])  # fmt: skip
                        time.sleep(interval * 3)
                stop.set()
            publisher.close()
    table = [
        ["measure", "p50 s", "p95 s", "max s"],
        ["publish → queryable in InfluxDB (baseline)", f"{statistics.median(to_store):.2f}",
         f"{percentile(to_store, 0.95):.2f}", f"{max(to_store):.2f}"],
        ["publish → alert e-mail accepted by SMTP", f"{statistics.median(to_mail):.2f}",
         f"{percentile(to_mail, 0.95):.2f}", f"{max(to_mail):.2f}"],
    ]  # fmt: skip
    storm_table = [["case", "result"], *rows]
    for line in [*markdown_table(table), "", *markdown_table(storm_table)]:
        print(line)
    if not args.no_results:
        ratio = percentile(to_mail, 0.95) / max(percentile(to_store, 0.95), 1e-9)
        write_section("Alerts: reading → e-mail, and a storm", [
            f"`python -m bench.bench_alerts --trials {args.trials} --storm {args.storm}` "
            f"({time.strftime('%Y-%m-%d')}; {versions()}); alerts.interval_s = {interval:g} s, "
            "shipped rule pm25-bad with for_s 0, ingest and alerts as processes, "
            "Mosquitto, influxd 1.6.7, aiosmtpd.",
            "", *markdown_table(table), "",
            f"p95 to the e-mail is {ratio:.1f}× the p95 to the store, in the same run; the goal "
            "is p95 ≤ 15 s (Grafana + Alertmanager defaults: 40 s to 2.5 min).",
            "", *markdown_table(storm_table),
        ])  # fmt: skip


if __name__ == "__main__":
    main()
