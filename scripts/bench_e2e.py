"""SDK round-trip latency through Kafka against the same query path called in-process, mode `bi`.

    python -m scripts.bench_e2e [--requests 200]

One process: a local Kafka, the services around an EdgeStore holding the demo corpus, and the SDK. Every
query is unique and the query-vector cache is off, so both paths encode every query. In-process, the query
service's batch handler is called directly with the same requests, `concurrency` at a time (the batches a
consumer would take with that many requests in flight). Writes bench/e2e.json and bench/e2e.png.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tqdm import tqdm

from contracts import SearchRequest, encode
from evaluation.beir import load_split
from evaluation.timing import timed_gather
from infra.local_kafka import kafka_bootstrap
from runtime.process import CascadeProcess
from scripts.benchlib import BENCH_DIR, DATA_DIR, machine, write_result
from sdk import SearchClient, read_jsonl_documents
from services.log import configure_logging
from services.messaging import RawRecord
from services.query import QueryProcessor
from services.settings import BatchingSettings, KafkaSettings, Settings, StoreSettings

DEMO = Path(__file__).parent / "demo" / "corpus.jsonl"


def _summary(latencies: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(latencies), "p99": float(np.percentile(latencies, 99)),
            "mean": statistics.fmean(latencies)}


async def through_kafka(client: SearchClient, queries: list[str], concurrency: int) -> list[float]:
    async def one(query: str) -> None:
        await client.search(query, collection="demo", k=10, mode="bi")

    return [ms for _, ms in await timed_gather(queries, one, concurrency, f"kafka c={concurrency}")]


async def in_process(processor: QueryProcessor, queries: list[str], concurrency: int) -> list[float]:
    latencies: list[float] = []
    for start in tqdm(range(0, len(queries), concurrency), desc=f"in-process c={concurrency}", unit="batch"):
        records = [RawRecord("queries", 0, i, None, encode(SearchRequest(
            request_id=uuid.uuid4().hex, collection="demo", query=query, k=10, mode="bi")))
            for i, query in enumerate(queries[start : start + concurrency])]
        began = time.perf_counter()
        await processor.process(records)
        latencies += [(time.perf_counter() - began) * 1000] * len(records)
    return latencies


async def run(bootstrap: str, requests: int) -> dict[str, Any]:
    queries = list(load_split(DATA_DIR / "scifact").queries.values()) + \
        list(load_split(DATA_DIR / "wikiqa").queries.values())
    with tempfile.TemporaryDirectory() as store:
        settings = Settings(kafka=KafkaSettings(bootstrap=bootstrap, topic_prefix=f"e2e{uuid.uuid4().hex[:6]}."),
                            store=StoreSettings(path=Path(store)), batching=BatchingSettings(query_cache_size=0))
        process = CascadeProcess(settings, {"ingest", "query"})
        await process.start()
        assert process.store and process.bi_encoders and process.query_cache is not None
        processor = QueryProcessor(settings, process.store, process.bi_encoders, process.query_cache, None)
        result: dict[str, Any] = {}
        try:
            async with SearchClient(bootstrap, topic_prefix=settings.kafka.topic_prefix) as client:
                await client.index(list(read_jsonl_documents(DEMO)), collection="demo")
                await through_kafka(client, queries[:20], 4)  # warm-up: connections, group joins
                for concurrency in (1, 16):
                    chosen = queries[:requests] if concurrency == 1 else queries[-requests:]
                    kafka = await through_kafka(client, chosen, concurrency)
                    local = await in_process(processor, chosen, concurrency)
                    result[f"c{concurrency}"] = {"kafka_ms": _summary(kafka), "in_process_ms": _summary(local),
                                                 "kafka_overhead_p50_ms": statistics.median(kafka)
                                                 - statistics.median(local)}
                    result[f"c{concurrency}"]["_samples"] = {"kafka": kafka, "in_process": local}
        finally:
            await process.stop()
    return result


def plot(result: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key in zip(axes, ("c1", "c16"), strict=True):
        samples = result[key]["_samples"]
        for label, values in samples.items():
            axis.hist(values, bins=40, alpha=0.6, label=f"{label} p50 {statistics.median(values):.1f} ms")
        axis.set_title(f"mode bi round trip, concurrency {key[1:]}")
        axis.set_xlabel("ms")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    with kafka_bootstrap(os.environ.get("CASCADE_KAFKA_BOOTSTRAP")) as bootstrap:
        result = asyncio.run(run(bootstrap, args.requests))
    BENCH_DIR.mkdir(exist_ok=True)
    plot(result, BENCH_DIR / "e2e.png")
    for key in ("c1", "c16"):
        result[key].pop("_samples")
    result |= {"kafka_overhead_p50_ms": result["c1"]["kafka_overhead_p50_ms"],
               "settings": {"requests": args.requests, "mode": "bi", "k": 10, "query_cache": "off",
                            "collection": "demo corpus (291 documents)"},
               "machine": machine()}
    path = write_result("e2e", result)
    for key in ("c1", "c16"):
        kafka, local = result[key]["kafka_ms"], result[key]["in_process_ms"]
        print(f"concurrency {key[1:]}: kafka p50 {kafka['p50']:.1f} ms p99 {kafka['p99']:.1f} ms; in-process p50 "
              f"{local['p50']:.1f} ms p99 {local['p99']:.1f} ms; "
              f"overhead p50 {result[key]['kafka_overhead_p50_ms']:.1f} ms")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
