"""Faults on a cluster, and the three store deployments side by side, under real service processes.

    python -m scripts.bench_distributed [--part qdrant-kill|kafka-kill|side-by-side] [--seconds 45]

- qdrant-kill: one Kafka broker, a three-node Qdrant cluster (collections of 3 shards, 2 replicas each), `cascade
  serve ingest query` given every peer's URL. Under a steady load of documents and searches the node the services
  use (the first URL) is killed with SIGKILL, and restarted a while later: every search answered? every
  acknowledged document stored?
- kafka-kill: a three-broker Kafka (topics with 3 replicas, 2 in sync), the embedded store, `cascade serve ingest
  query rerank`. Every partition of `queries` and `candidates` is led by one broker, which is killed under load:
  the pause is the longest gap between two answered searches; no acknowledged document or request may be lost.
- side-by-side: the same documents and searches through Kafka on the embedded store, one Qdrant server and the
  three-node cluster: ingest documents/s and search latency.

Never three Kafka brokers and three Qdrant nodes at once: the machine has 2 cores. Documents are SciFact corpus
texts; searches are document titles (no judged query is read). Writes bench/distributed.json, each kill's searches
in bench/distributed/ and their latencies over time in bench/distributed.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tqdm import tqdm

from cascade.contracts import Topic, TopicRegistry
from cascade.infra.local_kafka import LocalKafka
from cascade.infra.local_qdrant import LocalQdrant
from cascade.runtime.provision import provision_topics
from cascade.sdk import SearchClient, SearchFailed, SearchTimeout
from cascade.services.settings import StoreSettings
from cascade.services.store import open_store
from scripts.benchlib import BENCH_DIR, DATA_DIR, machine, write_result

CORPUS = DATA_DIR / "scifact" / "corpus.jsonl"
COLLECTION = "bench"
SESSION_TIMEOUT_MS = 10_000
SEARCH_TIMEOUT_S = 60.0


def corpus(count: int) -> list[dict[str, str]]:
    documents = []
    with CORPUS.open("rb") as lines:
        for line in lines:
            row = orjson.loads(line)
            documents.append({"doc_id": row["_id"], "title": row["title"], "text": row["text"][:600]})
            if len(documents) == count:
                break
    return documents


@contextlib.contextmanager
def services(bootstrap: str, prefix: str, store: dict[str, str], roles: list[str]) -> Iterator[None]:
    """`cascade serve ROLES` as an operator starts it, stopped with SIGTERM."""
    env = os.environ | store | {
        "CASCADE_KAFKA_BOOTSTRAP": bootstrap, "CASCADE_KAFKA_TOPIC_PREFIX": prefix, "CASCADE_INSTANCE_ID": "bench",
        "CASCADE_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS), "CASCADE_MODELS_LATE_INTERACTION": "",
        "CASCADE_METRICS_PORT": "0", "CASCADE_LOG_LEVEL": os.environ.get("CASCADE_LOG_LEVEL", "WARNING"),
        "HF_HUB_OFFLINE": "1",
    }
    process = subprocess.Popen([sys.executable, "-m", "cascade.runtime.cli", "serve", *roles], env=env)
    try:
        yield
    finally:
        process.terminate()
        process.wait(120)


@contextlib.asynccontextmanager
async def client(bootstrap: str, prefix: str) -> AsyncIterator[SearchClient]:
    """A client once the services answer (a first document indexed and found)."""
    async with SearchClient(bootstrap, topic_prefix=prefix) as connected:
        await connected.index([{"doc_id": "warm-up", "text": "warm up"}], collection=COLLECTION, timeout_s=300)
        await connected.search("warm up", collection=COLLECTION, mode="bi", timeout_s=300)
        yield connected


@dataclass
class Load:
    """What a steady load saw: acknowledged documents, and each search's send time, answer time and outcome."""

    started: float = field(default_factory=time.monotonic)
    acked: set[str] = field(default_factory=set)
    searches: list[tuple[float, float | None, str]] = field(default_factory=list)
    timings: list[dict[str, Any]] = field(default_factory=list)
    """Each answered search's stage timings (ms), in answer order."""
    fault_at: float | None = None

    def write_run(self, name: str) -> None:
        """Each search (sent and answered, seconds into the load; its outcome) and when the fault struck, in
        bench/distributed/NAME.jsonl."""
        folder = BENCH_DIR / "distributed"
        folder.mkdir(parents=True, exist_ok=True)
        fault_s = None if self.fault_at is None else round(self.fault_at - self.started, 3)
        rows: list[dict[str, Any]] = [{"fault_s": fault_s}]
        rows += [{"sent_s": round(sent - self.started, 3),
                  "answered_s": None if answered is None else round(answered - self.started, 3), "outcome": seen}
                 for sent, answered, seen in sorted(self.searches)]
        (folder / f"{name}.jsonl").write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
        (folder / f"{name}.timings.jsonl").write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in self.timings))

    def answered_at(self) -> list[float]:
        return sorted(answered for _, answered, _ in self.searches if answered is not None)

    def latencies_ms(self) -> list[float]:
        return [(answered - sent) * 1000 for sent, answered, _ in self.searches if answered is not None]

    def count(self, outcome: str) -> int:
        return sum(1 for *_, seen in self.searches if seen == outcome)


async def steady_load(load: Load, searcher: SearchClient, documents: list[dict[str, str]], seconds: float,
                      docs_per_s: int, searches_per_s: int, mode: str) -> None:
    """Each second a batch of `docs_per_s` documents (acks awaited in the background) and `searches_per_s`
    searches, each its own task, into `load`; returns once every one has its answer or timed out."""
    load.started = time.monotonic()
    titles = [doc["title"] for doc in documents]

    async def index(batch: list[dict[str, str]]) -> None:
        acks = await searcher.index(batch, collection=COLLECTION, timeout_s=300)
        load.acked.update(ack.doc_id for ack in acks if ack.doc_id and ack.status in ("indexed", "unchanged"))

    async def search(query: str) -> None:
        sent = time.monotonic()
        try:
            answer = await searcher.search(query, collection=COLLECTION, mode=mode, k=3,  # type: ignore[arg-type]
                                           candidates=3, timeout_s=SEARCH_TIMEOUT_S)
            load.searches.append((sent, time.monotonic(), "answered"))
            load.timings.append({"sent_s": round(sent - load.started, 3)} | answer.timings.model_dump(
                exclude_none=True))
        except SearchFailed as exc:
            load.searches.append((sent, time.monotonic(), f"failed:{exc.code}"))
        except SearchTimeout:
            load.searches.append((sent, None, "unanswered"))

    tasks: list[asyncio.Task[None]] = []
    started = load.started
    for second in tqdm(range(int(seconds)), desc="load", unit="s"):
        batch = documents[second * docs_per_s : (second + 1) * docs_per_s]
        if batch:
            tasks.append(asyncio.create_task(index(batch)))
        for i in range(searches_per_s):
            tasks.append(asyncio.create_task(search(titles[(second * searches_per_s + i) % len(titles)])))
            await asyncio.sleep(1 / searches_per_s)
        await asyncio.sleep(max(0.0, started + second + 1 - time.monotonic()))
    await asyncio.gather(*tasks)


async def stored(store_settings: StoreSettings, doc_ids: set[str]) -> set[str]:
    store = open_store(store_settings)
    try:
        found: set[str] = set()
        ordered = sorted(doc_ids)
        for start in range(0, len(ordered), 500):
            found |= set(await store.stored_states(COLLECTION, ordered[start : start + 500]))
        return found
    finally:
        await store.close()


def p99(values: list[float]) -> float:
    return round(float(np.percentile(values, 99)), 1) if values else float("nan")


async def faulted_load(args: argparse.Namespace, bootstrap: str, prefix: str, store: dict[str, str],
                       roles: list[str], mode: str, fault: Callable[[], Awaitable[None]]) -> Load:
    """The steady load through `cascade serve ROLES`; a third of the way in, `fault()` strikes (its moment is
    recorded in the load)."""
    load = Load()
    with services(bootstrap, prefix, store, roles):
        async with client(bootstrap, prefix) as searcher:
            async def strike() -> None:
                await asyncio.sleep(args.seconds / 3)
                load.fault_at = time.monotonic()
                await fault()
            striking = asyncio.create_task(strike())
            await steady_load(load, searcher, corpus(args.seconds * args.docs_per_s), args.seconds, args.docs_per_s,
                              args.searches_per_s, mode)
            await striking
    return load


async def qdrant_node_kill(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"dq{uuid.uuid4().hex[:6]}."
    with LocalKafka() as kafka, LocalQdrant(nodes=3) as qdrant:
        store = {"CASCADE_STORE_KIND": "qdrant", "CASCADE_STORE_URL": ",".join(qdrant.urls),
                 "CASCADE_STORE_SHARDS": "3", "CASCADE_STORE_REPLICAS": "2"}
        await provision_topics(TopicRegistry(prefix=prefix), bootstrap_servers=kafka.bootstrap)

        async def kill_and_restart() -> None:
            qdrant.kill(0)  # the peer the services use: the first URL
            await asyncio.sleep(args.seconds / 3)
            await asyncio.to_thread(qdrant.restart, 0)
        load = await faulted_load(args, kafka.bootstrap, prefix, store, ["ingest", "query"], "bi", kill_and_restart)
        found = await stored(StoreSettings(kind="qdrant", url=",".join(qdrant.urls)), load.acked)
    load.write_run("qdrant_node_kill")
    return {"searches": len(load.searches), "failed": len(load.searches) - load.count("answered"),
            "p99_ms": p99(load.latencies_ms()), "docs_acked": len(load.acked), "docs_lost": len(load.acked - found),
            "nodes": 3, "shards": 3, "replicas": 2, "killed": "the node of the first URL (SIGKILL), restarted "
            f"{args.seconds / 3:.0f} s later"}


async def lead_from(bootstrap: str, registry: TopicRegistry, leader: int, brokers: list[int]) -> None:
    """Create `queries` and `candidates` with `leader` first in every replica list: it leads them all."""
    others = [broker for broker in brokers if broker != leader]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        specs = registry.all()
        await admin.create_topics([
            NewTopic(name, -1, -1, replica_assignments={p: [leader, *others] for p in range(specs[name].partitions)},
                     topic_configs={"min.insync.replicas": "2", "retention.ms": str(specs[name].retention_ms)})
            for name in (registry.name(Topic.QUERIES), registry.name(Topic.CANDIDATES))])
        for name in (registry.name(Topic.QUERIES), registry.name(Topic.CANDIDATES)):
            for _ in range(300):
                [described] = await admin.describe_topics([name])
                if described["partitions"] and all(p["leader"] == leader for p in described["partitions"]):
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"broker {leader} does not lead every partition of {name}: {described}")
    finally:
        await admin.close()


async def kafka_leader_kill(args: argparse.Namespace, store_path: Path) -> dict[str, Any]:
    prefix = f"dk{uuid.uuid4().hex[:6]}."
    registry = TopicRegistry(prefix=prefix)
    store = {"CASCADE_STORE_KIND": "edge", "CASCADE_STORE_PATH": str(store_path)}
    with LocalKafka(brokers=3) as kafka:
        leader = 2
        await lead_from(kafka.bootstrap, registry, leader, list(kafka.addresses))
        await provision_topics(registry, bootstrap_servers=kafka.bootstrap)

        async def kill() -> None:
            kafka.kill(leader)
        load = await faulted_load(args, kafka.bootstrap, prefix, store, ["ingest", "query", "rerank"], "rerank",
                                  kill)
    found = await stored(StoreSettings(kind="edge", path=store_path), load.acked)
    load.write_run("kafka_leader_kill")
    answered = load.answered_at()
    return {"pause_s": round(max(b - a for a, b in itertools.pairwise(answered)), 2),
            "session_timeout_s": SESSION_TIMEOUT_MS / 1000, "docs_acked": len(load.acked),
            "docs_lost": len(load.acked - found), "requests": len(load.searches),
            "unanswered": load.count("unanswered"), "failed": len(load.searches) - load.count("answered"),
            "search_p99_ms": p99(load.latencies_ms()), "brokers": 3, "replication_factor": 3,
            "min_insync_replicas": 2, "killed": f"broker {leader}, leader of every queries and candidates partition"}


async def measured(bootstrap: str, store: dict[str, str], documents: list[dict[str, str]], searches: int
                   ) -> dict[str, float]:
    prefix = f"ds{uuid.uuid4().hex[:6]}."
    await provision_topics(TopicRegistry(prefix=prefix), bootstrap_servers=bootstrap)
    with services(bootstrap, prefix, store, ["ingest", "query"]):
        async with client(bootstrap, prefix) as searcher:
            began = time.monotonic()
            await searcher.index(documents, collection=COLLECTION, timeout_s=600)
            ingest_s = time.monotonic() - began
            latencies = []
            for doc in tqdm(documents[:searches], desc="searches", unit="search"):
                began = time.monotonic()
                await searcher.search(doc["title"], collection=COLLECTION, mode="bi", k=10, timeout_s=60)
                latencies.append((time.monotonic() - began) * 1000)
    return {"ingest_docs_per_s": round(len(documents) / ingest_s, 1),
            "search_p50_ms": round(float(np.percentile(latencies, 50)), 1), "search_p99_ms": p99(latencies)}


async def side_by_side(args: argparse.Namespace, store_path: Path) -> dict[str, Any]:
    documents = corpus(args.documents)
    result: dict[str, Any] = {}
    with LocalKafka() as kafka:
        result["edge"] = await measured(kafka.bootstrap, {"CASCADE_STORE_KIND": "edge",
                                                          "CASCADE_STORE_PATH": str(store_path)},
                                        documents, args.searches)
        for name, nodes in (("server", 1), ("cluster", 3)):
            with LocalQdrant(nodes=nodes) as qdrant:
                store = {"CASCADE_STORE_KIND": "qdrant", "CASCADE_STORE_URL": ",".join(qdrant.urls),
                         "CASCADE_STORE_SHARDS": str(nodes), "CASCADE_STORE_REPLICAS": str(min(nodes, 2))}
                result[name] = await measured(kafka.bootstrap, store, documents, args.searches)
    result |= {"documents": len(documents), "searches": args.searches,
               "cluster": result["cluster"] | {"nodes": 3, "shards": 3, "replicas": 2}}
    return result


def plot(folder: Path, out: Path) -> None:
    """Each search's latency against when it was sent, one panel per kill, the kill marked."""
    runs = [(name, title) for name, title in (("qdrant_node_kill", "Qdrant: the peer in use killed (3 nodes)"),
                                              ("kafka_leader_kill", "Kafka: the leader of queries and candidates "
                                                                    "killed (3 brokers)"))
            if (folder / f"{name}.jsonl").is_file()]
    figure, axes = plt.subplots(len(runs), 1, figsize=(9, 3.2 * len(runs)), squeeze=False)
    for axis, (name, title) in zip(axes[:, 0], runs, strict=True):
        fault, *rows = [orjson.loads(line) for line in (folder / f"{name}.jsonl").read_bytes().splitlines()]
        answered = [row for row in rows if row["answered_s"] is not None]
        axis.scatter([row["sent_s"] for row in answered], [row["answered_s"] - row["sent_s"] for row in answered],
                     s=6, label="answered")
        lost = [row["sent_s"] for row in rows if row["answered_s"] is None]
        if lost:
            axis.scatter(lost, [SEARCH_TIMEOUT_S] * len(lost), s=12, marker="x", color="red", label="unanswered")
        if fault["fault_s"] is not None:
            axis.axvline(fault["fault_s"], color="black", linestyle="--", label="SIGKILL")
        axis.set_yscale("log")
        axis.set(title=title, xlabel="sent at (s into the load)", ylabel="latency (s)")
        axis.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(out, dpi=110)


async def main(args: argparse.Namespace) -> None:
    path = BENCH_DIR / "distributed.json"
    result: dict[str, Any] = orjson.loads(path.read_bytes()) if path.is_file() else {}
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"cascade-bench-{uuid.uuid4().hex[:6]}"
    parts = [args.part] if args.part else ["qdrant-kill", "kafka-kill", "side-by-side"]
    if "qdrant-kill" in parts:
        result["qdrant_node_kill"] = await qdrant_node_kill(args)
        print("qdrant node kill:", result["qdrant_node_kill"])
    if "kafka-kill" in parts:
        result["kafka_leader_kill"] = await kafka_leader_kill(args, scratch / "kafka-kill")
        print("kafka leader kill:", result["kafka_leader_kill"])
    if "side-by-side" in parts:
        result["side_by_side"] = await side_by_side(args, scratch / "side-by-side")
        print("side by side:", result["side_by_side"])
    result |= {"machine": machine(), "load": {"seconds": args.seconds, "docs_per_s": args.docs_per_s,
                                              "searches_per_s": args.searches_per_s, "k": 3, "candidates": 3}}
    plot(BENCH_DIR / "distributed", BENCH_DIR / "distributed.png")
    print("wrote", write_result("distributed", result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["qdrant-kill", "kafka-kill", "side-by-side"])
    parser.add_argument("--seconds", type=int, default=70, help="of steady load around each kill")
    parser.add_argument("--docs-per-s", type=int, default=8)
    parser.add_argument("--searches-per-s", type=int, default=3, help="(top 3 of 3 candidates) what these 2 cores "
                                                                      "keep up with in mode rerank beside 3 brokers")
    parser.add_argument("--documents", type=int, default=1000, help="side by side: documents ingested")
    parser.add_argument("--searches", type=int, default=200, help="side by side: searches, one at a time")
    asyncio.run(main(parser.parse_args()))
