"""Two reranker processes share the candidates topic; SIGKILL one mid-run and nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner

from contracts import SearchRequest, SearchResult, Topic, encode
from runtime.process import CascadeProcess
from sdk import SearchClient
from tests.kafka_helpers import Collector, produce
from tests.processes import SESSION_TIMEOUT_MS, start_reranker

REQUESTS = 500
RECOVERY_MARGIN_S = 8.0
"""Beyond the session timeout: the coordinator's rebalance and the survivor's first batch."""
_PARTITIONER = DefaultPartitioner()


def partition_of(request_id: str, partitions: int = 6) -> int:
    """The candidates partition of a request (keyed by its id, Kafka's default murmur2 partitioner)."""
    return int(_PARTITIONER(request_id.encode(), list(range(partitions)), list(range(partitions))))


def ids_of(requests: list[SearchRequest]) -> list[str]:
    return [request.request_id for request in requests]


async def test_killing_a_reranker_loses_no_request(first_stage: CascadeProcess, tiny_cross_encoder: Path) -> None:
    settings = first_stage.settings
    kafka = settings.kafka
    rerankers = {name: start_reranker(settings, tiny_cross_encoder, name) for name in ("rerank-a", "rerank-b")}
    try:
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix))
            await client.index([{"doc_id": f"d{i}", "text": f"document {i} about topic {i % 7}"} for i in range(120)],
                               collection="c")
            served: set[str] = set()
            async with asyncio.timeout(120):  # both members joined and serving
                while served != set(rerankers):
                    result = await client.search("topic 3", collection="c", k=5, timeout_s=60)
                    served.add(result.served_by["reranker"])

            on_the_wire = await stack.enter_async_context(
                Collector(kafka.bootstrap, client.replies.topic, SearchResult))  # duplicates included
            stream = client.results()
            requests = [SearchRequest(request_id=f"q{i}", collection="c", query=f"document about topic {i % 7}",
                                      k=10, mode="rerank", reply_to=client.replies.topic) for i in range(REQUESTS)]
            await produce(kafka.bootstrap, kafka.topics.name(Topic.QUERIES),
                          [(request.request_id, encode(request)) for request in requests])
            received: list[tuple[float, SearchResult]] = []
            killed_at = 0.0
            async with asyncio.timeout(180):
                while len({result.request_id for _, result in received}) < REQUESTS:
                    result = await anext(stream)
                    received.append((time.monotonic(), result))
                    if len(received) == 100:
                        rerankers["rerank-a"].send_signal(signal.SIGKILL)
                        killed_at = time.monotonic()
            wire = await on_the_wire.wait_for(lambda items: {r.request_id for r in items} >= set(ids_of(requests)))
            await asyncio.sleep(1)  # late duplicates, if any, arrive too
        ids = [result.request_id for _, result in received]
        assert set(ids) == set(ids_of(requests))
        assert all(result.error is None for _, result in received)
        assert len(ids) == len(set(ids))  # the SDK delivers each request's result once
        after_kill = [(at, result) for at, result in received if at > killed_at + 0.5]
        assert after_kill, "the kill must happen while requests are in flight"
        assert {result.served_by["reranker"] for _, result in after_kill} == {"rerank-b"}

        # Duplicates on the reply topic itself: only batches uncommitted at the rebalance may be answered twice,
        # the killed member's and the survivor's (its commit fails once the group's generation moves on).
        counts = Counter(result.request_id for result in wire)
        duplicated = {request_id for request_id, count in counts.items() if count > 1}
        assert len(duplicated) <= len(rerankers) * settings.batching.rerank_max_records
        assert max(counts.values()) <= 2

        # Recovery: the killed member's partitions are served again within the session timeout plus a margin.
        orphaned = {partition_of(result.request_id) for at, result in received
                    if at < killed_at and result.served_by["reranker"] == "rerank-a"}
        recovered_at = min(at for at, result in after_kill if partition_of(result.request_id) in orphaned)
        recovery_s = recovered_at - killed_at
        assert recovery_s <= SESSION_TIMEOUT_MS / 1000 + RECOVERY_MARGIN_S
        print(f"\nreranker killed after 100 of {REQUESTS} results; all {REQUESTS} answered; "
              f"{sum(counts.values()) - len(counts)} duplicate(s) on the reply topic ({len(duplicated)} request(s), "
              f"from the batches uncommitted at the rebalance); its partitions served again {recovery_s:.1f} s "
              f"after the kill (session timeout {SESSION_TIMEOUT_MS / 1000:.0f} s + margin {RECOVERY_MARGIN_S} s)")
    finally:
        for process in rerankers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
