"""Queries keep being answered while Qdrant Edge builds the HNSW index of a 100k-point collection.

    python -m scripts.bench_index_build [--points 100000] [--qps 20]

One process serves ingest and query around an EdgeStore (the embedded mode) on a local Kafka; an SDK client
sends mode-`bi` searches (unique queries, real MiniLM encoding) at a steady rate before, during and after
the build, which `EdgeStore.build_index` runs on a copy in a child process. The vectors are synthetic: 200
Gaussian clusters on the 384-d unit sphere (real embeddings at this size would take an hour to encode here);
the build's cost depends on count and dimension, not on where the vectors came from. Rebalances are counted
from aiokafka's "Joined group" lines after the warm-up. Writes bench/index_build.json and bench/index_build.png.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cascade.infra.local_kafka import kafka_bootstrap
from cascade.runtime.process import CascadeProcess
from cascade.sdk import SearchClient
from cascade.services.log import configure_logging
from cascade.services.settings import KafkaSettings, Settings, StoreSettings
from cascade.services.store import VectorStore
from scripts.benchlib import BENCH_DIR, machine, upsert_points, write_result

COLLECTION = "bench"


class JoinCounter(logging.Handler):
    """Counts consumer-group joins: every rebalance makes each member join again."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.joins = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Joined group"):
            self.joins += 1


async def load_points(store: VectorStore, points: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 200, points)] + rng.normal(scale=0.6, size=(points, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    await upsert_points(store, COLLECTION, vectors, "synthetic", pause_s=0.05)  # the consumers heartbeat meanwhile


def for_seconds(seconds: float) -> Callable[[], bool]:
    ends_at = time.monotonic() + seconds
    return lambda: time.monotonic() > ends_at


async def paced_searches(client: SearchClient, qps: float, done: Callable[[], bool], first: int
                         ) -> list[tuple[float, float]]:
    """(start time, latency ms) of searches sent every 1/qps s until `done()`."""
    samples: list[tuple[float, float]] = []
    i = first
    while not done():
        began = time.monotonic()
        await client.search(f"what is known about subject number {i}", collection=COLLECTION, k=10, mode="bi",
                            timeout_s=30)
        samples.append((began, (time.monotonic() - began) * 1000))
        i += 1
        await asyncio.sleep(max(1 / qps - (time.monotonic() - began), 0))
    return samples


def _percentiles(samples: list[tuple[float, float]]) -> dict[str, float]:
    latencies = [ms for _, ms in samples]
    return {"p50_ms": round(statistics.median(latencies), 2), "p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "max_ms": round(max(latencies), 2), "queries": len(latencies)}


def plot(before: list[tuple[float, float]], during: list[tuple[float, float]], after: list[tuple[float, float]],
         build: tuple[float, float], path: Path) -> None:
    origin = before[0][0]
    fig, ax = plt.subplots(figsize=(9, 4))
    for label, samples in (("before", before), ("during the build", during), ("after", after)):
        ax.plot([t - origin for t, _ in samples], [ms for _, ms in samples], ".", label=label, markersize=3)
    ax.axvspan(build[0] - origin, build[1] - origin, color="orange", alpha=0.15, label="index build (child process)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("search latency through Kafka, ms")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Mode bi searches while a 100k-point HNSW index builds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


async def run(points: int, qps: float) -> dict[str, Any]:
    joins = JoinCounter()
    logging.getLogger("aiokafka.consumer.group_coordinator").addHandler(joins)
    logging.getLogger("aiokafka.consumer.group_coordinator").setLevel(logging.INFO)
    with kafka_bootstrap(None) as bootstrap, tempfile.TemporaryDirectory() as folder:
        settings = Settings(kafka=KafkaSettings(bootstrap=bootstrap),
                            store=StoreSettings(path=Path(folder), index_min_points=10**9), instance_id="bench")
        process = CascadeProcess(settings, {"ingest", "query"})
        await process.start()
        assert process.store is not None and process.bi_encoder is not None
        try:
            await load_points(process.store, points, process.bi_encoder.dim)
            async with SearchClient(bootstrap, topic_prefix=settings.kafka.topic_prefix) as client:
                await paced_searches(client, qps, for_seconds(5), 0)  # warm-up, groups settled
                joins_before = joins.joins
                before = await paced_searches(client, qps, for_seconds(10), 10_000)
                began = time.monotonic()
                build = asyncio.ensure_future(process.store.build_index(COLLECTION))
                during = await paced_searches(client, qps, build.done, 20_000)
                await build
                build_span = (began, time.monotonic())
                after = await paced_searches(client, qps, for_seconds(10), 30_000)
            pending = await process.store.pending_index_points(COLLECTION)
        finally:
            await process.stop()
    plot(before, during, after, build_span, BENCH_DIR / "index_build.png")
    during_stats = _percentiles(during)
    return {
        "points": points, "build_s": round(build_span[1] - build_span[0], 2),
        "query_p50_ms": during_stats["p50_ms"], "query_p99_ms": during_stats["p99_ms"],
        "rebalances": joins.joins - joins_before, "unindexed_after_build": pending,
        "before": _percentiles(before), "during": during_stats, "after": _percentiles(after),
        "qps": qps, "vectors": "synthetic: 200 Gaussian clusters (sigma 0.6) on the 384-d unit sphere",
        "queries": "unique mode-bi searches through Kafka with the SDK, encoded by all-MiniLM-L6-v2",
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--qps", type=float, default=20.0)
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    result = asyncio.run(run(args.points, args.qps))
    path = write_result("index_build", result)
    print(f"{result['points']} points: build {result['build_s']} s in a child process; queries during the build "
          f"p50 {result['query_p50_ms']} ms p99 {result['query_p99_ms']} ms ({result['during']['queries']} "
          f"queries); before p50 {result['before']['p50_ms']} ms p99 {result['before']['p99_ms']} ms; "
          f"rebalances {result['rebalances']} -> {path}")


if __name__ == "__main__":
    main()
