"""Decode + enrich per message, for each message contract, against json.loads alone.

    .venv/bin/python -m bench.bench_decode [--messages 20000] [--rounds 7]

For each contract (JSON, SenML, gov) the same N payloads (1000 devices / 94 communes,
distinct timestamps) go through ``Enricher.points_for_message`` — what the ingest
pipeline calls for every message — and, as the baseline, through ``json.loads`` alone.
Best of ``rounds``; µs per message and the ratio to the baseline of the same payloads.
No network, no store. Compare runs on one machine only.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import machine_line
from bench.results import markdown_table, write_section
from core.settings import IngestSettings, parse_settings
from ingest.enrich import Enricher, scoped_unit_tags
from layers.geography import Geography
from layers.registry import Device

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 11, 28, 4, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
INGEST = IngestSettings.model_validate(
    {
        "topics": ["city/+/+", "lora/+", "gov/+/+"],
        "contracts": [
            {"format": "json", "topic": "city/{kind}/{device_id}"},
            {"format": "senml", "topic": "lora/{device_id}", "kind": "air"},
            {"format": "gov", "topic": "gov/{service}/{unit_code}"},
        ],
    }
)


def messages(count: int, communes: list[str]) -> dict[str, list[tuple[str, bytes]]]:
    json_msgs, senml_msgs, gov_msgs = [], [], []
    for index in range(count):
        device, ts = f"aq-{index % 1000:04d}", NOW_MS - index * 10
        pm25, pm10 = 20.0 + index % 50 / 3, 40.0 + index % 70 / 7
        body = {"ts": ts, "pm25": round(pm25, 1), "pm10": round(pm10, 1)}
        json_msgs.append((f"city/air/{device}", json.dumps(body).encode()))
        senml = [
            {"bn": f"urn:dev:mac:{index % 1000:016x}:", "bt": ts / 1000, "n": "pm25", "v": pm25},
            {"n": "pm10", "v": pm10},
        ]
        senml_msgs.append((f"lora/{device}", json.dumps(senml).encode()))
        counters = {"ts": ts, "received": index % 40, "resolved": index % 30, "online": index % 9}
        unit = communes[index % len(communes)]
        gov_msgs.append((f"gov/dossiers/{unit}", json.dumps(counters).encode()))
    return {"JSON": json_msgs, "SenML": senml_msgs, "gov": gov_msgs}


def best_us(
    run: Callable[[str, bytes], object], batch: list[tuple[str, bytes]], rounds: int
) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for topic, payload in batch:
            run(topic, payload)
        best = min(best, time.perf_counter() - start)
    return best / len(batch) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    geography = Geography.from_settings(parse_settings({}, base_dir=REPO))
    communes = [unit.code for unit in geography.hierarchy.units_at("commune", "48")]
    tags = {"province": "48", "commune": communes[0]}
    devices = {
        f"aq-{n:04d}": Device(f"aq-{n:04d}", "air", f"Trạm {n}", 108.2, 16.0, communes[0], tags)
        for n in range(1000)
    }
    devices |= {f"{n:016x}": devices[f"aq-{n:04d}"] for n in range(1000)}
    enricher = Enricher(
        devices, lambda *a: devices["aq-0000"], unit_tags=scoped_unit_tags(geography)
    )

    def ingest(topic: str, payload: bytes) -> object:
        return enricher.points_for_message(topic, payload, NOW, INGEST)

    def baseline(_topic: str, payload: bytes) -> object:
        return json.loads(payload)

    print(f"{args.messages:,} messages per contract, best of {args.rounds} rounds")
    print(
        f"{'contract':<8} {'json.loads µs':>14} {'decode+enrich µs':>17} {'ratio':>6} {'msg/s':>10}"
    )
    cells = [["contract", "json.loads µs (baseline)", "decode+enrich µs", "ratio", "msg/s"]]
    for name, batch in messages(args.messages, communes).items():
        ingest(*batch[0])  # warm the caches (topics, names, router) as a running worker has
        base = best_us(baseline, batch, args.rounds)
        full = best_us(ingest, batch, args.rounds)
        print(f"{name:<8} {base:>14.2f} {full:>17.2f} {full / base:>6.1f} {1e6 / full:>10,.0f}")
        cells.append(
            [name, f"{base:.2f}", f"{full:.2f}", f"{full / base:.1f}", f"{1e6 / full:,.0f}"]
        )
    if not args.no_write:
        write_section(
            "Decode + enrich per message",
            [
                f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine_line()} · "
                f"`python -m bench.bench_decode --messages {args.messages} --rounds {args.rounds}`",
                "",
                *markdown_table(cells),
                "",
                __doc__.split("\n\n", 2)[2].strip(),
            ],
        )


if __name__ == "__main__":
    main()
