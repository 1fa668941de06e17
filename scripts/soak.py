"""A fault soak: documents and searches through Kafka while a seeded schedule kills and restarts the broker and
every service role, forces rebalances and closes clients with answers in flight; then a ledger of what was lost.

    python -m scripts.soak [--seconds 600] [--seed 7] [--out soak]   # a quick check: --seconds 60 --out soak_quick

Cascade as operators run it: one Kafka broker, one Qdrant server, and `cascade serve` processes with the bundled
models: two ingest, two query, two rerank (the server store, so both ingest processes share it). The load is a third
of the capacity measured first in the same run (searches, a tenth of them reranked, 30 s timeouts; documents added,
rewritten and deleted in batches, each acknowledged before its document is written again). Fault kinds, each
struck in turn in a seeded order: `broker` (SIGKILL, restart), `ingest`, `query`, `reranker` (SIGKILL one of the
two, restart it), `rebalance` (a third reranker joins, and leaves 20 s later), `client_close` (a client sends
rerank requests and closes at once: its requests count as `abandoned`).

The ledger: for every document, the store holds the text of its last acknowledged write (or a later one whose
acknowledgement never came), or nothing after an acknowledged delete; every request answered or failed with a
reason (SearchTimeout counts as unanswered); duplicates (answers the SDK dropped, acks beyond one per write); log
lines a second summed over Cascade's processes in 1-second windows; the services' CPU over 30 s once idle.
Writes bench/soak.json, each fault in bench/soak/faults.jsonl, each request in bench/soak/requests.jsonl, and
bench/soak.png (log lines and answers a second, faults marked); another `--out` name writes those instead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import orjson
from aiokafka import AIOKafkaConsumer
from tqdm import tqdm

from cascade.contracts import IngestAck, Topic, TopicRegistry, decode
from cascade.infra.local_kafka import LocalKafka
from cascade.infra.local_qdrant import LocalQdrant
from cascade.runtime.provision import provision_topics
from cascade.sdk import IngestRejected, SearchClient, SearchFailed, SearchTimeout
from cascade.services.log import configure_logging
from cascade.services.settings import StoreSettings
from cascade.services.store import open_store
from scripts.benchlib import BENCH_DIR, DATA_DIR, cpu_seconds, machine, write_result

CORPUS = DATA_DIR / "scifact" / "corpus.jsonl"
COLLECTION = "soak"
TIMEOUT_S = 30.0
SESSION_TIMEOUT_MS = 10_000
ROLES = {"ingest": 2, "query": 2, "rerank": 2}
IN_FLIGHT = 8
"""Searches at once while capacity is measured."""
RERANKED = 0.1
"""The share of searches in mode rerank (the rest: bi), in the capacity measured and in the load."""
KINDS = ["broker", "ingest", "query", "reranker", "rebalance", "client_close"]
STAMP = re.compile(rb'"timestamp": ?"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)')


def corpus() -> list[dict[str, str]]:
    with CORPUS.open("rb") as lines:
        rows = [orjson.loads(line) for line in lines]
    return [{"doc_id": row["_id"], "title": row["title"], "text": row["text"][:600]} for row in rows if row["text"]]


class Services:
    """`cascade serve ROLE` processes, each logging to a file of its own (kept across its restarts)."""

    def __init__(self, bootstrap: str, prefix: str, qdrant_url: str, logs: Path) -> None:
        self._env = os.environ | {
            "CASCADE_KAFKA_BOOTSTRAP": bootstrap, "CASCADE_KAFKA_TOPIC_PREFIX": prefix,
            "CASCADE_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS), "CASCADE_STORE_KIND": "qdrant",
            "CASCADE_STORE_URL": qdrant_url, "CASCADE_MODELS_LATE_INTERACTION": "", "CASCADE_METRICS_PORT": "0",
            "CASCADE_LOG_LEVEL": "INFO", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        }
        self._logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        role = name.split("-")[0]
        with (self._logs / f"{name}.log").open("ab") as log:
            self.running[name] = subprocess.Popen(
                [sys.executable, "-m", "cascade.runtime.cli", "serve", role], stdout=log, stderr=subprocess.STDOUT,
                env=self._env | {"CASCADE_INSTANCE_ID": name})

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        process.terminate()
        process.wait(120)

    def cpu_s(self) -> float:
        """User and system CPU seconds of the running processes so far."""
        return sum(cpu_seconds(process.pid) for process in self.running.values())


@dataclass
class Ledger:
    """Every write of every document and every request, as the clients saw them."""

    started: float = field(default_factory=time.monotonic)
    writes: dict[str, list[tuple[str | None, bool]]] = field(default_factory=dict)
    """doc_id -> its writes in order: (text, or None for a delete; acknowledged)."""
    busy: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)
    abandoned: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)

    def acceptable(self, doc_id: str) -> set[str | None] | None:
        """The states the store may hold: the last acknowledged write's, or any later one (None: no write was
        acknowledged, anything goes)."""
        writes = self.writes[doc_id]
        last = max((i for i, (_, acked) in enumerate(writes) if acked), default=None)
        return None if last is None else {text for text, _ in writes[last:]}

    @property
    def acked(self) -> int:
        return sum(acked for writes in self.writes.values() for _, acked in writes)

    def outcomes(self) -> Counter[str]:
        return Counter(request["outcome"].split(":")[0] for request in self.requests)


async def search(client: SearchClient, ledger: Ledger, query: str, mode: str) -> None:
    sent = time.monotonic()
    try:
        await client.search(query, collection=COLLECTION, mode=mode, k=5, timeout_s=TIMEOUT_S)  # type: ignore[arg-type]
        outcome = "answered"
    except SearchFailed as exc:
        outcome = f"failed:{exc.code}"
    except SearchTimeout:
        outcome = "unanswered"
    except Exception as exc:  # the request could not be sent: the caller was told at once
        outcome = f"failed:{type(exc).__name__}"
    ledger.requests.append({"sent_s": round(sent - ledger.started, 3), "mode": mode, "outcome": outcome,
                            "seconds": round(time.monotonic() - sent, 3)})


async def write_batch(client: SearchClient, ledger: Ledger, batch: list[tuple[str, str | None]]) -> None:
    """Upserts, then deletes, of documents no other write is pending for; each write sent is recorded,
    acknowledged or not (a write never sent is not)."""
    ledger.busy.update(doc_id for doc_id, _ in batch)
    sent: set[str] = set()
    acked: set[str] = set()
    upserts = [{"doc_id": doc_id, "text": text} for doc_id, text in batch if text is not None]
    deletes = [doc_id for doc_id, text in batch if text is None]
    try:
        if upserts:
            sent |= {doc_id for doc_id, text in batch if text is not None}
            acks = await client.index(upserts, collection=COLLECTION, timeout_s=2 * TIMEOUT_S)
            acked |= {ack.doc_id for ack in acks if ack.doc_id}
        if deletes:
            sent |= set(deletes)
            acks = await client.delete(deletes, collection=COLLECTION, timeout_s=2 * TIMEOUT_S)
            acked |= {ack.doc_id for ack in acks if ack.doc_id and ack.status == "deleted"}
    except IngestRejected as exc:
        acked |= {ack.doc_id for ack in exc.acks if ack.doc_id and ack.status != "rejected"}
    except Exception:  # unacknowledged: its document may hold the write or not, the ledger allows both
        pass
    for doc_id, text in batch:
        if doc_id in sent:
            ledger.writes.setdefault(doc_id, []).append((text, doc_id in acked))
    ledger.busy.difference_update(doc_id for doc_id, _ in batch)


def next_batch(ledger: Ledger, documents: Iterator[dict[str, str]], rng: random.Random, size: int
               ) -> list[tuple[str, str | None]]:
    """Mostly new documents, some rewrites and deletes of documents stored and not being written."""
    stored = [doc_id for doc_id, writes in ledger.writes.items()
              if doc_id not in ledger.busy and writes[-1][0] is not None]
    batch: dict[str, str | None] = {}
    for _ in range(size):
        roll = rng.random()
        if roll < 0.2 and stored:
            doc_id = rng.choice(stored)
            batch[doc_id] = f"{doc_id} rewritten {uuid.uuid4().hex[:8]}"
        elif roll < 0.3 and stored:
            batch[rng.choice(stored)] = None
        else:
            document = next(documents)
            batch[document["doc_id"]] = document["text"]
    return list(batch.items())


async def capacity(client: SearchClient, titles: list[str], documents: Iterator[dict[str, str]],
                   seconds: float = 15.0) -> tuple[float, float]:
    """Searches a second (IN_FLIGHT at once, the load's mix of modes) and documents a second (batches of 32),
    each measured alone."""
    answered, began = 0, time.monotonic()

    async def searcher(offset: int) -> None:
        nonlocal answered
        while time.monotonic() - began < seconds:
            await client.search(titles[(offset + answered) % len(titles)], collection=COLLECTION, k=5,
                                mode="rerank" if answered % round(1 / RERANKED) == 0 else "bi", timeout_s=TIMEOUT_S)
            answered += 1

    await asyncio.gather(*(searcher(i * 97) for i in range(IN_FLIGHT)))
    searches_per_s = answered / (time.monotonic() - began)
    indexed, began = 0, time.monotonic()
    while time.monotonic() - began < seconds:
        batch = [next(documents) for _ in range(32)]
        await client.index(batch, collection=COLLECTION, timeout_s=120)
        indexed += len(batch)
    return searches_per_s, indexed / (time.monotonic() - began)


class Faults:
    """The seeded schedule's faults, each recorded in the ledger as it strikes."""

    def __init__(self, kafka: LocalKafka, services: Services, bootstrap: str, prefix: str, ledger: Ledger,
                 rng: random.Random, titles: list[str]) -> None:
        self._kafka, self._services, self._ledger, self._rng = kafka, services, ledger, rng
        self._bootstrap, self._prefix, self._titles = bootstrap, prefix, titles

    async def strike(self, kind: str) -> None:
        record: dict[str, Any] = {"at_s": round(time.monotonic() - self._ledger.started, 3), "kind": kind}
        self._ledger.faults.append(record)
        if kind == "broker":
            await asyncio.to_thread(self._kafka.kill)
            await asyncio.sleep(self._rng.uniform(1, 5))
            await asyncio.to_thread(self._kafka.restart)
        elif kind in ("ingest", "query", "reranker"):
            role = "rerank" if kind == "reranker" else kind
            record["process"] = name = f"{role}-{self._rng.choice('ab')}"
            self._services.kill(name)
            await asyncio.sleep(self._rng.uniform(1, 5))
            self._services.start(name)
        elif kind == "rebalance":
            self._services.start("rerank-extra")
            await asyncio.sleep(20)
            self._services.stop("rerank-extra")
        elif kind == "client_close":
            async with SearchClient(self._bootstrap, topic_prefix=self._prefix) as leaving:
                sent = [asyncio.create_task(leaving.search(self._rng.choice(self._titles), collection=COLLECTION,
                                                           mode="rerank", timeout_s=TIMEOUT_S)) for _ in range(3)]
                await asyncio.sleep(0.2)  # published; the answers are still being worked on
            for task in sent:
                task.cancel()
            await asyncio.gather(*sent, return_exceptions=True)
            self._ledger.abandoned += len(sent)
        record["recovered_s"] = round(time.monotonic() - self._ledger.started, 3)


async def drive(args: argparse.Namespace, client: SearchClient, faults: Faults, ledger: Ledger,
                documents: Iterator[dict[str, str]], titles: list[str], searches_per_s: float, docs_per_s: float
                ) -> None:
    """The load for `args.seconds` and the faults, evenly spaced from a tenth of the way in, in a seeded order."""
    rng = random.Random(args.seed)
    count = max(len(KINDS), round(args.seconds / 50))
    kinds = [KINDS[i % len(KINDS)] for i in range(count)]
    rng.shuffle(kinds)
    spacing = args.seconds * 0.8 / count
    schedule = [(args.seconds * 0.1 + i * spacing, kind) for i, kind in enumerate(kinds)]
    ledger.started = began = time.monotonic()
    tasks: list[asyncio.Task[None]] = []

    async def run_faults() -> None:
        for at_s, kind in schedule:
            await asyncio.sleep(max(0.0, began + at_s - time.monotonic()))
            await faults.strike(kind)

    striking = asyncio.create_task(run_faults())
    batch_size = max(1, round(docs_per_s))
    next_write = next_search = began
    with tqdm(total=int(args.seconds), desc="soak", unit="s") as bar:
        while (now := time.monotonic()) - began < args.seconds:
            if now >= next_write:
                tasks.append(asyncio.create_task(write_batch(client, ledger, next_batch(ledger, documents, rng,
                                                                                     batch_size))))
                next_write += 1.0
            if now >= next_search:
                mode = "rerank" if rng.random() < RERANKED else "bi"
                tasks.append(asyncio.create_task(search(client, ledger, rng.choice(titles), mode)))
                next_search += rng.expovariate(searches_per_s)
            bar.update(int(now - began) - bar.n)
            await asyncio.sleep(max(0.0, min(next_write, next_search) - time.monotonic()))
    await striking
    await asyncio.gather(*tasks)


async def lost_documents(store_settings: StoreSettings, ledger: Ledger) -> list[str]:
    """The documents whose stored state is none the ledger allows."""
    store = open_store(store_settings)
    lost = []
    try:
        ids = sorted(ledger.writes)
        for start in range(0, len(ids), 256):
            chunk = ids[start : start + 256]
            stored = await store.documents(COLLECTION, chunk)
            for doc_id in chunk:
                allowed = ledger.acceptable(doc_id)
                held = stored[doc_id].text if doc_id in stored else None
                if allowed is not None and held not in allowed:
                    lost.append(doc_id)
    finally:
        await store.close()
    return lost


async def duplicate_acks(bootstrap: str, topic: str, ledger: Ledger) -> int:
    """Acks beyond one per write sent (redeliveries after a crash or a rewind)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"soak-{uuid.uuid4().hex}")
    await consumer.start()
    counted: Counter[str] = Counter()
    try:
        while batch := await consumer.getmany(timeout_ms=3000):
            for records in batch.values():
                for record in records:
                    ack = decode(record.value or b"", IngestAck)
                    if ack.doc_id and ack.collection == COLLECTION:
                        counted[ack.doc_id] += 1
    finally:
        await consumer.stop()
    return sum(max(0, seen - len(ledger.writes[doc_id])) for doc_id, seen in counted.items() if doc_id in ledger.writes)


def log_lines_per_second(logs: Path) -> Counter[int]:
    """Lines of every process's log in each second (epoch); a line without a time stamp counts in the second of
    the line before it (a traceback's lines)."""
    per_second: Counter[int] = Counter()
    for path in logs.glob("*.log"):
        second: int | None = None
        for line in path.read_bytes().splitlines():
            if found := STAMP.search(line):
                second = int(datetime.fromisoformat(found.group(1).decode() + "+00:00").timestamp())
            if second is not None:
                per_second[second] += 1
    return per_second


def plot(per_second: Counter[int], ledger: Ledger, began_epoch: float, out: Path) -> None:
    """Log lines and answers in each second of the soak (a second without any counts 0)."""
    figure, axes = plt.subplots(figsize=(10, 4))
    span = range(int(max(ledger.faults[-1]["recovered_s"] if ledger.faults else 0,
                         max((r["sent_s"] + r["seconds"] for r in ledger.requests), default=0))) + 2)
    first = int(began_epoch)
    axes.plot(list(span), [per_second[first + s] for s in span], lw=0.8, label="log lines/s (all processes)")
    answered = Counter(int(r["sent_s"] + r["seconds"]) for r in ledger.requests if r["outcome"] == "answered")
    axes.plot(list(span), [answered[s] for s in span], lw=0.8, label="searches answered/s")
    for fault in ledger.faults:
        axes.axvline(fault["at_s"], color="grey", lw=0.6, ls="--")
        axes.text(fault["at_s"], axes.get_ylim()[1] * 0.95, fault["kind"], rotation=90, fontsize=7, va="top")
    axes.axhline(50, color="red", lw=0.6, label="goal: 50 lines/s")
    axes.set_xlabel("seconds into the soak")
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=120)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"soak{uuid.uuid4().hex[:8]}."
    folder = Path(tempfile.mkdtemp(prefix="cascade-soak-"))
    logs = folder / "logs"
    logs.mkdir()
    texts = corpus()
    random.Random(args.seed).shuffle(texts)
    titles = [doc["title"] for doc in texts[:2000] if doc["title"]]
    documents = iter(texts)
    ledger = Ledger()
    with LocalKafka() as kafka, LocalQdrant() as qdrant:
        await provision_topics(TopicRegistry(prefix), bootstrap_servers=kafka.bootstrap)
        services = Services(kafka.bootstrap, prefix, qdrant.url, logs)
        for role, count in ROLES.items():
            for name in "ab"[:count]:
                services.start(f"{role}-{name}")
        try:
            async with SearchClient(kafka.bootstrap, topic_prefix=prefix) as client:
                await client.index([next(documents) for _ in range(200)], collection=COLLECTION, timeout_s=600)
                await client.search("warm up", collection=COLLECTION, mode="rerank", timeout_s=600)
                searches_cap, docs_cap = await capacity(client, titles, documents)
                print(f"capacity: {searches_cap:.1f} searches/s, {docs_cap:.1f} documents/s; the soak drives a third",
                      flush=True)
                faults = Faults(kafka, services, kafka.bootstrap, prefix, ledger, random.Random(args.seed + 1), titles)
                began_epoch = time.time()
                await drive(args, client, faults, ledger, documents, titles, searches_cap / 3, docs_cap / 3)
                duplicate_answers = client.replies.duplicates_dropped
            await asyncio.sleep(10)  # settled: nothing in flight
            idle_began, idle_cpu = time.monotonic(), services.cpu_s()
            await asyncio.sleep(30)
            idle_cpu_after = (services.cpu_s() - idle_cpu) / (time.monotonic() - idle_began)
            lost = await lost_documents(StoreSettings(kind="qdrant", url=qdrant.url), ledger)
            duplicated_acks = await duplicate_acks(kafka.bootstrap, TopicRegistry(prefix).name(Topic.ACKS), ledger)
        finally:
            for name in list(services.running):
                services.stop(name)
        per_second = log_lines_per_second(logs)
    outcomes = ledger.outcomes()
    out = BENCH_DIR / args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "faults.jsonl").write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in ledger.faults))
    (out / "requests.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in ledger.requests))
    plot(per_second, ledger, began_epoch, BENCH_DIR / f"{args.out}.png")
    return {
        "seconds": args.seconds, "seed": args.seed, "began_epoch": round(began_epoch, 3),
        "faults": len(ledger.faults), "faults_by_kind": dict(Counter(f["kind"] for f in ledger.faults)),
        "documents_acked": ledger.acked, "documents_lost": len(lost), "lost_doc_ids": lost[:20],
        "requests": len(ledger.requests), "unanswered": outcomes["unanswered"], "abandoned": ledger.abandoned,
        "failed_requests": dict(Counter(r["outcome"] for r in ledger.requests if r["outcome"].startswith("failed"))),
        "duplicates": duplicate_answers + duplicated_acks,
        "duplicates_by_kind": {"answers_the_sdk_dropped": duplicate_answers,
                               "acks_beyond_one_per_write": duplicated_acks},
        "max_log_lines_per_s": max(per_second.values(), default=0),
        "idle_cpu_after": round(idle_cpu_after, 4),
        "idle_cpu_after_note": "CPU seconds a second of all service processes together over 30 s, 10 s after the load",
        "capacity": {"searches_per_s": round(searches_cap, 2), "documents_per_s": round(docs_cap, 2)},
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="soak", help="the name of what it writes in bench/ (a quick check: another)")
    args = parser.parse_args()
    configure_logging(level="WARNING")  # this client's own library lines, once a minute each
    result = asyncio.run(soak(args))
    path = write_result(args.out, result)
    print(orjson.dumps({k: v for k, v in result.items() if k != "machine"}, option=orjson.OPT_INDENT_2).decode())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
