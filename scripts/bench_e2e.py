"""SDK round-trip latency through Kafka against the same query path called in-process, mode `bi`.

    python -m scripts.bench_e2e [--requests 240] [--rounds 5]

One process: a local Kafka, the services around an EdgeStore holding the demo corpus, and the SDK. Every
query is unique and the query-vector cache is off, so both paths encode every query. In-process, the query
service's batch handler is called directly with the same requests, `concurrency` at a time (the batches a
consumer would take with that many requests in flight). Two configurations served side by side on the same
broker and measured in alternating rounds: "before" (each batch confirmed and committed before the next
poll, producers lingering 1-2 ms, no gathering: Cascade's settings before pipelining) and "after" (the
defaults); then, with the defaults, the closed-loop throughput per concurrency through Kafka and in-process.
Writes bench/e2e.json and bench/e2e.png.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tqdm import tqdm

from cascade.contracts import SearchRequest, encode
from cascade.evaluation.beir import load_split
from cascade.evaluation.timing import timed_gather
from cascade.infra.local_kafka import kafka_bootstrap
from cascade.runtime.process import CascadeProcess
from cascade.sdk import SearchClient, read_jsonl_documents
from cascade.services.log import configure_logging
from cascade.services.messaging import RawRecord
from cascade.services.query import QueryProcessor
from cascade.services.settings import BatchingSettings, KafkaSettings, Settings, StoreSettings
from scripts.benchlib import BENCH_DIR, DATA_DIR, machine, write_result

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


@dataclass(frozen=True)
class Variant:
    linger_ms: int
    sdk_linger_ms: int
    pipeline_depth: int
    gather_ms: int


_KAFKA, _BATCHING = KafkaSettings(), BatchingSettings()
VARIANTS = {"before": Variant(linger_ms=1, sdk_linger_ms=2, pipeline_depth=0, gather_ms=0),
            "after": Variant(linger_ms=_KAFKA.linger_ms, sdk_linger_ms=0, pipeline_depth=_KAFKA.pipeline_depth,
                             gather_ms=_BATCHING.max_wait_ms)}
WARM_UP = 400
"""Searches before measuring: the broker's JIT needs a few thousand requests to reach its steady latency."""
CEILING_CONCURRENCY = (1, 2, 4, 8, 16, 32)
CEILING_P99_MS = 100.0


def _measured(kafka: list[float], local: list[float]) -> dict[str, Any]:
    return {"kafka_ms": _summary(kafka), "in_process_ms": _summary(local),
            "kafka_overhead_p50_ms": statistics.median(kafka) - statistics.median(local),
            "_samples": {"kafka": kafka, "in_process": local}}


async def _throughput(measuring: Awaitable[list[float]]) -> dict[str, float]:
    began = time.perf_counter()
    latencies = await measuring
    return {"qps": len(latencies) / (time.perf_counter() - began), "p99_ms": float(np.percentile(latencies, 99))}


async def ceiling(client: SearchClient, processor: QueryProcessor, queries: list[str]) -> dict[str, Any]:
    """Closed-loop throughput and p99 per concurrency, through Kafka and in-process; the ceiling is the most
    queries per second served at p99 <= CEILING_P99_MS."""
    steps: dict[str, dict[int, dict[str, float]]] = {"kafka": {}, "in_process": {}}
    for concurrency in CEILING_CONCURRENCY:
        steps["kafka"][concurrency] = await _throughput(through_kafka(client, queries, concurrency))
        steps["in_process"][concurrency] = await _throughput(in_process(processor, queries, concurrency))
    return {"p99_limit_ms": CEILING_P99_MS, "steps": steps, **{
        f"{path}_qps": max((step["qps"] for step in by_concurrency.values() if step["p99_ms"] <= CEILING_P99_MS),
                           default=0.0)
        for path, by_concurrency in steps.items()}}


@dataclass(frozen=True)
class Serving:
    client: SearchClient
    processor: QueryProcessor


@asynccontextmanager
async def serving(bootstrap: str, variant: Variant, store: Path) -> AsyncIterator[Serving]:
    """A process (ingest and query) with `variant`'s settings, its own topics and store, and an SDK client."""
    kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=f"e2e{uuid.uuid4().hex[:6]}.",
                          linger_ms=variant.linger_ms, pipeline_depth=variant.pipeline_depth)
    settings = Settings(kafka=kafka, store=StoreSettings(path=store), metrics_port=None,
                        batching=BatchingSettings(query_cache_size=0, max_wait_ms=variant.gather_ms))
    process = CascadeProcess(settings, {"ingest", "query"})
    try:
        await process.start()
        assert process.store and process.bi_encoders and process.query_cache is not None
        async with SearchClient(bootstrap, topic_prefix=kafka.topic_prefix, linger_ms=variant.sdk_linger_ms
                                ) as client:
            await client.index(list(read_jsonl_documents(DEMO)), collection="demo")
            yield Serving(client, QueryProcessor(settings, process.store, process.bi_encoders,
                                                 process.late_interaction, process.query_cache, None))
    finally:
        await process.stop()


async def run(bootstrap: str, requests: int, rounds: int) -> dict[str, Any]:
    """Both variants served side by side; each concurrency measured in `rounds` alternating rounds (through Kafka,
    then in-process, for each variant in turn), so that this machine's drifting speed affects both alike."""
    queries = list(load_split(DATA_DIR / "scifact").queries.values()) + \
        list(load_split(DATA_DIR / "wikiqa").queries.values())
    with tempfile.TemporaryDirectory() as folder:
        async with AsyncExitStack() as stack:
            served = {name: await stack.enter_async_context(serving(bootstrap, variant, Path(folder) / name))
                      for name, variant in VARIANTS.items()}
            for each in served.values():  # connections, group joins, the broker's JIT
                await through_kafka(each.client, queries[-WARM_UP:], 16)
            result: dict[str, Any] = {name: {"settings": asdict(variant)} for name, variant in VARIANTS.items()}
            for concurrency in (1, 16):
                chosen = queries[:requests] if concurrency == 1 else queries[-requests:]
                samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in served}
                for part in np.array_split(np.array(chosen, dtype=object), rounds):
                    for name, each in served.items():
                        samples[name][0].extend(await through_kafka(each.client, list(part), concurrency))
                        samples[name][1].extend(await in_process(each.processor, list(part), concurrency))
                for name, (kafka, local) in samples.items():
                    result[name][f"c{concurrency}"] = _measured(kafka, local)
            after = served["after"]
            result["after"]["ceiling"] = await ceiling(after.client, after.processor, queries[requests : 2 * requests])
    return result


def plot(before: dict[str, Any], after: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key in zip(axes, ("c1", "c16"), strict=True):
        samples = {"in-process": after[key]["_samples"]["in_process"],
                   "kafka before": before[key]["_samples"]["kafka"], "kafka after": after[key]["_samples"]["kafka"]}
        for label, values in samples.items():
            axis.hist(values, bins=40, alpha=0.5, label=f"{label} p50 {statistics.median(values):.1f} ms")
        axis.set_title(f"mode bi round trip, concurrency {key[1:]}")
        axis.set_xlabel("ms")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=240, help="per concurrency; a multiple of 16 x rounds")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    with kafka_bootstrap(os.environ.get("CASCADE_KAFKA_BOOTSTRAP")) as bootstrap:
        measured = asyncio.run(run(bootstrap, args.requests, args.rounds))
    before, result = measured["before"], measured["after"]
    BENCH_DIR.mkdir(exist_ok=True)
    plot(before, result, BENCH_DIR / "e2e.png")
    for variant in (before, result):
        for key in ("c1", "c16"):
            variant[key].pop("_samples")
    result |= {"before": before, "kafka_overhead_p50_ms": result["c1"]["kafka_overhead_p50_ms"],
               "settings": {**result["settings"], "requests": args.requests, "rounds": args.rounds, "mode": "bi",
                            "k": 10,
                            "query_cache": "off", "collection": "demo corpus (291 documents)"},
               "machine": machine()}
    path = write_result("e2e", result)
    for name, measured in (("before", before), ("after", result)):
        for key in ("c1", "c16"):
            kafka, local = measured[key]["kafka_ms"], measured[key]["in_process_ms"]
            print(f"{name} concurrency {key[1:]}: kafka p50 {kafka['p50']:.1f} ms p99 {kafka['p99']:.1f} ms; "
                  f"in-process p50 {local['p50']:.1f} ms p99 {local['p99']:.1f} ms; "
                  f"overhead p50 {measured[key]['kafka_overhead_p50_ms']:.1f} ms")
    top = result["ceiling"]
    print(f"throughput at p99 <= {top['p99_limit_ms']:g} ms: through Kafka {top['kafka_qps']:.1f} q/s, "
          f"in-process {top['in_process_qps']:.1f} q/s")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
