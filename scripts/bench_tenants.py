"""The tenants issue's figures: what clients that come and go cost the cluster and the services.

    python -m scripts.bench_tenants [--clients 10000] [--concurrency 20] [--idle-s 30]

churn: a local Kafka and `cascade serve ingest query rerank` (the bundled models) in a child process, the demo
corpus indexed. Then `--clients` SDK clients, `--concurrency` at a time, each connect, search once (mode bi) and
close. Before and after: the cluster's topic count, the topics whose metadata the services' producer holds (its
`/metrics`), and the services' CPU while idle (CPU seconds per second over `--idle-s`). The cluster's topics are
also listed every few seconds during the churn, so a topic created and deleted meanwhile is counted too.
Writes bench/tenants.json (keys of other parts are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from cascade.contracts.topic_admin import admin_client
from cascade.infra.local_kafka import kafka_bootstrap
from cascade.sdk import SearchClient
from cascade.services.log import configure_logging
from scripts.bench_offsets import QUERIES, Service, index_demo, serving
from scripts.benchlib import machine, write_result

COLLECTION = "churn"
TOPIC_SAMPLE_S = 2.0


def _metadata_topics(service: Service) -> int:
    text = urllib.request.urlopen(service.metrics_url(), timeout=10).read().decode()
    found = re.search(r"^cascade_producer_metadata_topics (\S+)$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError("no cascade_producer_metadata_topics in /metrics")
    return int(float(found.group(1)))


def _idle_cpu(service: Service, seconds: float, label: str) -> float:
    """The service's CPU seconds per second while nobody asks anything."""
    before = service.cpu_s()
    for _ in tqdm(range(int(seconds)), desc=f"services idle ({label})", unit="s"):
        time.sleep(1)
    return round((service.cpu_s() - before) / int(seconds), 4)


async def _topics(bootstrap: str) -> set[str]:
    async with admin_client(bootstrap_servers=bootstrap) as admin:
        return set(await admin.list_topics())


async def _churn(bootstrap: str, clients: int, concurrency: int) -> dict[str, Any]:
    """`clients` clients that connect, search once and close; the topics seen meanwhile."""
    gate = asyncio.Semaphore(concurrency)
    failures: list[str] = []
    seen: set[str] = set()
    bar = tqdm(total=clients, desc=f"clients: connect, search, close ({concurrency} at a time)", unit="client")

    async def one(i: int) -> None:
        async with gate:
            try:
                async with SearchClient(bootstrap) as client:
                    await client.search(QUERIES[i % len(QUERIES)], collection=COLLECTION, mode="bi", k=3,
                                        timeout_s=120)
            except Exception as exc:  # counted and reported, the churn goes on
                failures.append(repr(exc))
            bar.update()

    async def watch_topics() -> None:
        while True:
            seen.update(await _topics(bootstrap))
            await asyncio.sleep(TOPIC_SAMPLE_S)

    watcher = asyncio.create_task(watch_topics())
    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(clients)))
    elapsed = time.monotonic() - started
    watcher.cancel()
    bar.close()
    return {"seen": seen, "failures": failures, "elapsed_s": elapsed}


def churn_part(bootstrap: str, clients: int, concurrency: int, idle_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cascade-churn-") as folder, serving(bootstrap, Path(folder)) as service:
        asyncio.run(index_demo(bootstrap, COLLECTION))
        asyncio.run(_churn(bootstrap, 1, 1))  # the services have answered on results and replies once
        topics_before = asyncio.run(_topics(bootstrap))
        metadata_before = _metadata_topics(service)
        idle_before = _idle_cpu(service, idle_s, "before")
        churn = asyncio.run(_churn(bootstrap, clients, concurrency))
        topics_after = asyncio.run(_topics(bootstrap))
        metadata_after = _metadata_topics(service)
        idle_after = _idle_cpu(service, idle_s, "after")
    if churn["failures"]:
        print(f"{len(churn['failures'])} clients failed, e.g. {churn['failures'][0]}")
    return {"clients_churned": clients - len(churn["failures"]), "churn_failures": len(churn["failures"]),
            "churn_concurrency": concurrency, "churn_s": round(churn["elapsed_s"], 1),
            "reply_topics_created": len((churn["seen"] | topics_after) - topics_before),
            "topics_before": len(topics_before), "topics_after": len(topics_after),
            "metadata_topics_before": metadata_before, "metadata_topics_after": metadata_after,
            "idle_cpu_before": idle_before, "idle_cpu_after": idle_after, "idle_cpu_window_s": idle_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--idle-s", type=float, default=30.0)
    args = parser.parse_args()
    configure_logging("console", "ERROR")
    with kafka_bootstrap(os.environ.get("CASCADE_KAFKA_BOOTSTRAP")) as bootstrap:
        figures = churn_part(bootstrap, args.clients, args.concurrency, args.idle_s)
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    write_result("tenants", figures | {"machine": machine()}, merge=True)


if __name__ == "__main__":
    main()
