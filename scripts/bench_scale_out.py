"""Autoscaling shown: flood the reranker, watch its group's lag as KEDA's Kafka scaler does, add a second pod.

    python -m scripts.bench_scale_out [--sets 1500] [--candidates 10] [--threshold 50] [--poll-s 15] [--threads 1]

A real `cascade serve rerank` process (the bundled cross-encoder) consumes a backlog of candidate sets (demo
corpus texts, `--candidates` each) published at the start. Every `--poll-s` seconds the lag is read the way
KEDA's Kafka scaler computes it (per partition: log end offset minus the group's committed offset, summed);
when lag per reranker exceeds `--threshold` (KEDA's `lagThreshold`), a second reranker process is started, as
KEDA would add a pod. The drain rate (committed candidate sets per second) is measured with one reranker (from
its first commit until the second one holds partitions) and with two (from then until the backlog is gone).

Each reranker gets `--threads` torch threads, like a pod given that many CPUs; on this 2-core machine two
one-thread pods are the most that can run side by side, so the ratio is bounded by the cores, not by Kafka.
The same run first measures one reranker given every core (never scaled) as the baseline a single pod could
reach on this machine.
Writes bench/scale_out.json and bench/scale_out.png (lag over time, the scale-out marked).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tqdm import tqdm

from cascade.contracts import Candidate, CandidateSet, SearchRequest, StageTimings, Topic, TopicRegistry, encode
from cascade.infra.local_kafka import kafka_bootstrap
from cascade.runtime.provision import provision_topics
from cascade.sdk import read_jsonl_documents
from cascade.services.lag import group_lag
from scripts.benchlib import BENCH_DIR, ROOT, machine, write_result

DEMO_CORPUS = ROOT / "scripts" / "demo" / "corpus.jsonl"


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    """(seconds, lag, committed, members)"""
    scaled_at: float | None = None

    def add(self, lag: int, committed: int, members: int) -> None:
        self.samples.append((time.monotonic() - self.started, lag, committed, members))


def candidate_sets(count: int, candidates: int) -> list[tuple[str, bytes]]:
    documents = list(read_jsonl_documents(DEMO_CORPUS))
    out = []
    for i in range(count):
        picked = [documents[(i * 7 + j) % len(documents)] for j in range(candidates)]
        request = SearchRequest(request_id=f"scale-{i}", collection="demo", query=picked[0]["text"][:60],
                                k=min(10, candidates), candidates=candidates, mode="rerank")
        found = CandidateSet(request=request, timings=StageTimings(), candidates=[
            Candidate(doc_id=doc["doc_id"], title=doc.get("title", ""), text=doc["text"], score=0.5)
            for doc in picked])
        out.append((request.request_id, encode(found)))
    return out


def start_reranker(bootstrap: str, prefix: str, name: str, threads: int) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "CASCADE_KAFKA_BOOTSTRAP": bootstrap, "CASCADE_KAFKA_TOPIC_PREFIX": prefix, "CASCADE_INSTANCE_ID": name,
        "CASCADE_METRICS_PORT": "0", "CASCADE_LOG_LEVEL": "WARNING", "OMP_NUM_THREADS": str(threads),
        "CASCADE_BATCH_SCORE_CACHE_SIZE": "0",  # the demo corpus's candidate sets repeat: every set scored
        "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    }
    return subprocess.Popen([sys.executable, "-m", "cascade.runtime.cli", "serve", "rerank"], env=env)


async def _members(admin: AIOKafkaAdminClient, group: str) -> int:
    [response] = await admin.describe_consumer_groups([group])
    [description] = response.to_object()["groups"]
    return sum(1 for member in description["members"] if member["member_assignment"])


def _rate(samples: list[tuple[float, int, int, int]], start: float, end: float) -> float:
    window = [sample for sample in samples if start <= sample[0] <= end]
    if len(window) < 2 or window[-1][0] <= window[0][0]:
        return 0.0
    return (window[-1][2] - window[0][2]) / (window[-1][0] - window[0][0])


async def run(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    """The baseline (one reranker given every core, never scaled), then the scale-out run."""
    cores = os.cpu_count() or 1
    baseline = argparse.Namespace(**{**vars(args), "sets": max(args.sets // 3, 100), "threads": cores,
                                     "threshold": float("inf")})
    whole_machine = summarise(await drain(bootstrap, baseline))
    result = summarise(await drain(bootstrap, args))
    result["one_reranker_all_cores"] = {"drain_sets_per_s": whole_machine["one_reranker"]["drain_sets_per_s"],
                                        "threads": cores}
    result["ratio_vs_all_cores"] = round(result["two_rerankers"]["drain_sets_per_s"]
                                         / whole_machine["one_reranker"]["drain_sets_per_s"], 3)
    result |= {"lag_threshold": args.threshold, "sets": args.sets, "candidates_per_set": args.candidates,
               "poll_s": args.poll_s, "threads_per_reranker": args.threads, "machine": machine(),
               "note": (f"pods of {args.threads} thread(s) on a {cores}-core machine: two of them use every core, "
                        "so the gain over one pod given every core (ratio_vs_all_cores) is what the cores allow")}
    plot(result, BENCH_DIR / "scale_out.png")
    return result


async def drain(bootstrap: str, args: argparse.Namespace) -> Timeline:
    registry = TopicRegistry(prefix=f"scale{uuid.uuid4().hex[:6]}.")
    group = f"{registry.prefix}reranker"
    await provision_topics(registry, bootstrap_servers=bootstrap)
    sets = candidate_sets(args.sets, args.candidates)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=2_000_000)
    await producer.start()
    try:
        for key, value in tqdm(sets, desc="publish candidate sets", unit="set"):
            await producer.send(registry.name(Topic.CANDIDATES), value, key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()

    rerankers = [start_reranker(bootstrap, registry.prefix, "reranker-1", args.threads)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    timeline = Timeline()
    next_poll = args.poll_s
    try:
        with tqdm(total=args.sets, desc="drained", unit="set") as bar:
            while True:
                await asyncio.sleep(0.5)
                lag = await group_lag(admin, consumer, group, _partitions(registry))
                total_lag = sum(lag.values())
                committed = args.sets - total_lag
                timeline.add(total_lag, committed, await _members(admin, group))
                bar.n = committed
                bar.refresh()
                now = timeline.samples[-1][0]
                if len(rerankers) == 1 and now >= next_poll:  # KEDA's polling interval
                    next_poll += args.poll_s
                    if total_lag / len(rerankers) > args.threshold:
                        timeline.scaled_at = now
                        rerankers.append(start_reranker(bootstrap, registry.prefix, "reranker-2", args.threads))
                if total_lag == 0 or now > args.max_s:
                    break
    finally:
        await consumer.stop()
        await admin.close()
        for process in rerankers:
            process.terminate()
        for process in rerankers:
            process.wait(timeout=60)
    return timeline


def _partitions(registry: TopicRegistry) -> list[TopicPartition]:
    topic = registry.name(Topic.CANDIDATES)
    return [TopicPartition(topic, p) for p in range(registry.spec(Topic.CANDIDATES).partitions)]


def summarise(timeline: Timeline) -> dict[str, Any]:
    samples = timeline.samples
    first_progress = next((t for t, _, committed, _ in samples if committed > 0), samples[-1][0])
    two_from = next((t for t, _, _, members in samples if members >= 2), None)
    drained_at = next((t for t, lag, _, _ in samples if lag == 0), samples[-1][0])
    one_rate = _rate(samples, first_progress, two_from if two_from is not None else drained_at)
    two_rate = _rate(samples, two_from, drained_at) if two_from is not None else 0.0
    return {
        "one_reranker": {"drain_sets_per_s": round(one_rate, 2),
                         "window_s": [round(first_progress, 1), round(two_from or drained_at, 1)]},
        "two_rerankers": {"drain_sets_per_s": round(two_rate, 2),
                          "window_s": [round(two_from, 1) if two_from else None, round(drained_at, 1)]},
        "ratio": round(two_rate / one_rate, 3) if one_rate else None,
        "scaled_out_at_s": round(timeline.scaled_at, 1) if timeline.scaled_at is not None else None,
        "second_member_assigned_at_s": round(two_from, 1) if two_from is not None else None,
        "timeline": [{"t_s": round(t, 2), "lag": lag, "committed": committed, "members": members}
                     for t, lag, committed, members in samples],
    }


def plot(result: dict[str, Any], path: Path) -> None:
    timeline = result["timeline"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([each["t_s"] for each in timeline], [each["lag"] for each in timeline],
            label="reranker group lag (candidate sets)")
    ax.axhline(result["lag_threshold"], color="grey", linestyle=":", label="KEDA lagThreshold")
    if result["scaled_out_at_s"] is not None:
        ax.axvline(result["scaled_out_at_s"], color="tab:red", linestyle="--", label="second reranker started")
    if result["second_member_assigned_at_s"] is not None:
        ax.axvline(result["second_member_assigned_at_s"], color="tab:green", linestyle="--",
                   label="second reranker holds partitions")
    ax.set_xlabel("seconds")
    ax.set_ylabel("lag")
    ax.set_title(f"Scale-out: {result['one_reranker']['drain_sets_per_s']} -> "
                 f"{result['two_rerankers']['drain_sets_per_s']} sets/s (x{result['ratio']}); one reranker on "
                 f"all cores: {result['one_reranker_all_cores']['drain_sets_per_s']}", fontsize=10)
    ax.legend()
    fig.tight_layout()
    BENCH_DIR.mkdir(exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, default=1500)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--threshold", type=int, default=50)
    parser.add_argument("--poll-s", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-s", type=float, default=600.0)
    args = parser.parse_args()
    with kafka_bootstrap(os.environ.get("CASCADE_KAFKA_BOOTSTRAP")) as bootstrap:
        result = asyncio.run(run(bootstrap, args))
    path = write_result("scale_out", result)
    print(f"one reranker {result['one_reranker']['drain_sets_per_s']} sets/s, two "
          f"{result['two_rerankers']['drain_sets_per_s']} sets/s, ratio {result['ratio']}; one reranker on all "
          f"cores {result['one_reranker_all_cores']['drain_sets_per_s']} sets/s "
          f"(ratio {result['ratio_vs_all_cores']}) -> {path}")


if __name__ == "__main__":
    main()
