"""FastStream in the serving stack or not, measured: the same results published through FastStream's KafkaBroker
and through Cascade's Publisher (aiokafka; the one the services use), and what importing FastStream costs a process.

    python -m scripts.bench_faststream [--messages 20000] [--rounds 3]

Each round publishes `--messages` SearchResults of ten hits (about 1.5 kB each) to a fresh topic on a local broker,
both publishers with acks=all, in chunks of 500 awaited together; the median of the rounds is kept. Import cost:
seconds and resident memory after `import faststream.kafka` in a fresh interpreter over one that imports aiokafka
alone. Writes bench/faststream.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from typing import Any

from faststream.kafka import KafkaBroker
from tqdm import tqdm

from cascade.contracts import Hit, SearchResult
from cascade.contracts.topic_admin import TopicToCreate, admin_client, create_topics
from cascade.infra.local_kafka import kafka_bootstrap
from cascade.services.log import configure_logging
from cascade.services.publishing import Outgoing, Publisher
from cascade.services.settings import KafkaSettings
from scripts.benchlib import machine, write_result

CHUNK = 500
_IMPORT = ("import re, time; began = time.perf_counter(); import {module}; took = time.perf_counter() - began; "
           "print(took, re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])")
"""Resident kB read from /proc (ru_maxrss would count the forking parent's pages)."""


def _results(count: int) -> list[SearchResult]:
    hits = [Hit(doc_id=f"d{i}", score=1.0 / (i + 1), title="a title", text="some text of a hit " * 6)
            for i in range(10)]
    return [SearchResult(request_id=f"r{i}", collection="bench", mode="rerank", hits=hits) for i in range(count)]


async def _with_faststream(bootstrap: str, topic: str, results: list[SearchResult]) -> float:
    broker = KafkaBroker(bootstrap, acks="all")
    async with broker:
        began = time.perf_counter()
        for start in range(0, len(results), CHUNK):
            chunk = results[start:start + CHUNK]
            await asyncio.gather(*(broker.publish(result.model_dump(mode="json"), topic,
                                                  key=result.request_id.encode()) for result in chunk))
        return len(results) / (time.perf_counter() - began)


async def _with_publisher(bootstrap: str, topic: str, results: list[SearchResult]) -> float:
    publisher = Publisher(KafkaSettings(bootstrap=bootstrap))
    await publisher.start()
    try:
        began = time.perf_counter()
        for start in range(0, len(results), CHUNK):
            chunk = results[start:start + CHUNK]
            await publisher.publish([Outgoing(topic, result.request_id, result) for result in chunk])
        return len(results) / (time.perf_counter() - began)
    finally:
        await publisher.close()


async def _create(bootstrap: str, names: list[str]) -> None:
    async with admin_client(bootstrap_servers=bootstrap) as admin:
        await create_topics(admin, [TopicToCreate(name, 3, {}) for name in names])


def _import_cost(module: str) -> tuple[float, int]:
    """Seconds and resident kB of a fresh interpreter that imported `module` (the median of three)."""
    runs = [subprocess.run([sys.executable, "-c", _IMPORT.format(module=module)], check=True, capture_output=True,
                           text=True).stdout.split() for _ in range(3)]
    return statistics.median(float(run[0]) for run in runs), int(statistics.median(int(run[1]) for run in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", help="an existing Kafka (default: a local broker started for the run)")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    results = _results(args.messages)
    rates: dict[str, list[float]] = {"faststream": [], "publisher": []}
    with kafka_bootstrap(args.bootstrap) as bootstrap:
        asyncio.run(_create(bootstrap, [f"bench-{kind}-{round_}" for kind in ("fs", "pub")
                                        for round_ in range(args.rounds)]))
        for round_ in tqdm(range(args.rounds), desc="rounds"):
            rates["faststream"].append(asyncio.run(_with_faststream(bootstrap, f"bench-fs-{round_}", results)))
            rates["publisher"].append(asyncio.run(_with_publisher(bootstrap, f"bench-pub-{round_}", results)))
    aiokafka_s, aiokafka_kb = _import_cost("aiokafka")
    faststream_s, faststream_kb = _import_cost("faststream.kafka")
    figures: dict[str, Any] = {
        "messages": args.messages, "rounds": args.rounds, "chunk": CHUNK,
        "faststream_msgs_per_s": round(statistics.median(rates["faststream"])),
        "publisher_msgs_per_s": round(statistics.median(rates["publisher"])),
        "per_round": {name: [round(rate) for rate in values] for name, values in rates.items()},
        "faststream_import_extra_s": round(faststream_s - aiokafka_s, 3),
        "import_rss_mb": {"aiokafka": round(aiokafka_kb / 1024, 1),
                               "faststream.kafka": round(faststream_kb / 1024, 1)},
    }
    figures["publisher_over_faststream"] = round(figures["publisher_msgs_per_s"] / figures["faststream_msgs_per_s"], 2)
    print({key: value for key, value in figures.items() if key != "per_round"})
    print(f"wrote {write_result('faststream', figures | {'machine': machine()})}")


if __name__ == "__main__":
    main()
