"""Two reranker processes share the candidates topic; SIGKILL one mid-run and nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner

from cascade.contracts import SearchRequest, SearchResult, Topic, encode
from cascade.runtime.process import CascadeProcess
from cascade.sdk import SearchClient
from tests.conftest import addressed_to
from tests.kafka_helpers import Collector, produce
from tests.processes import CLI_HANG_GUARD_S, start_reranker

REQUESTS = 500
KILL_AFTER = 100
"""Results received when one reranker is killed: most requests are still to be answered."""
AFTER_KILL = 60
"""Requests published once the killed reranker is dead: they reach every partition, its former ones included."""
_PARTITIONER = DefaultPartitioner()


def partition_of(request_id: str, partitions: int) -> int:
    """The candidates partition of a request (keyed by its id, Kafka's default murmur2 partitioner)."""
    return int(_PARTITIONER(request_id.encode(), list(range(partitions)), list(range(partitions))))


def ids_of(requests: list[SearchRequest]) -> list[str]:
    return [request.request_id for request in requests]


def _request(i: int, client: SearchClient) -> SearchRequest:
    return addressed_to(client, SearchRequest(request_id=f"q{i}", collection="c", query=f"document about topic {i % 7}",
                                              k=10, mode="rerank"))


async def test_killing_a_reranker_loses_no_request(first_stage: CascadeProcess, tiny_cross_encoder: Path) -> None:
    settings = first_stage.settings
    kafka = settings.kafka
    partitions = kafka.topics.spec(Topic.CANDIDATES).partitions
    rerankers = {name: start_reranker(settings, tiny_cross_encoder, name) for name in ("rerank-a", "rerank-b")}
    try:
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix))
            await client.index([{"doc_id": f"d{i}", "text": f"document {i} about topic {i % 7}"} for i in range(120)],
                               collection="c")
            served: set[str] = set()
            async with asyncio.timeout(CLI_HANG_GUARD_S):  # both members joined and serving (a cold start imports
                while served != set(rerankers):            # torch and loads the model: only a hang guard)
                    result = await client.search("topic 3", collection="c", k=5, timeout_s=60)
                    served.add(result.served_by["reranker"])

            on_the_wire = await stack.enter_async_context(
                Collector(kafka.bootstrap, client.replies.topic, SearchResult))  # duplicates included
            stream = client.results()
            requests = [_request(i, client) for i in range(REQUESTS)]
            after_kill = [_request(i, client) for i in range(REQUESTS, REQUESTS + AFTER_KILL)]
            assert {partition_of(r.request_id, partitions) for r in after_kill} == set(range(partitions))
            await produce(kafka.bootstrap, kafka.topics.name(Topic.QUERIES),
                          [(request.request_id, encode(request)) for request in requests])
            received: list[SearchResult] = []
            killed: int | None = None
            async with asyncio.timeout(CLI_HANG_GUARD_S):  # only against a hang: the test checks what happened
                while len({result.request_id for result in received}) < REQUESTS + AFTER_KILL:
                    received.append(await anext(stream))
                    if len(received) == KILL_AFTER:
                        rerankers["rerank-a"].send_signal(signal.SIGKILL)
                        killed = await asyncio.to_thread(rerankers["rerank-a"].wait)
                        await produce(kafka.bootstrap, kafka.topics.name(Topic.QUERIES),
                                      [(request.request_id, encode(request)) for request in after_kill])
            load = set(ids_of(requests + after_kill))
            wire = await on_the_wire.wait_for(lambda items: {r.request_id for r in items} >= load)
            await asyncio.sleep(1)  # late duplicates, if any, arrive too
        ids = [result.request_id for result in received]
        assert set(ids) == load
        assert all(result.error is None for result in received)
        assert len(ids) == len(set(ids))  # the SDK delivers each request's result once
        assert killed == -signal.SIGKILL  # it served until the kill ended it, mid-run

        # The takeover: requests published once the killed member was dead reach every partition, and the survivor
        # answered them in all, so it took over the killed member's partitions. How soon depends on the session
        # timeout and on the machine's load, so it is not bounded here (the hang guard above is the only clock).
        late = set(ids_of(after_kill))
        survivor = {partition_of(r.request_id, partitions) for r in wire
                    if r.request_id in late and r.served_by["reranker"] == "rerank-b"}
        assert survivor == set(range(partitions)), survivor
        killed_served = sorted({partition_of(r.request_id, partitions) for r in wire
                                if r.request_id in load and r.served_by["reranker"] == "rerank-a"})

        # Duplicates on the reply topic itself (the load's requests; the warm-up searches ran across the join's
        # rebalance): only records handled but not committed when positions were reset come again. A member's
        # committer (cascade.services.commits) settles one batch while at most `pipeline_depth` more wait in its queue,
        # and its consumer holds one more, handled and sent, while it waits for room: pipeline_depth + 2 batches of
        # at most rerank_max_records candidate sets, each answered once more. That holds for the killed member
        # (its partitions are read again from their committed offsets by the survivor) and for the survivor (the
        # rebalance revokes its partitions: what it read before is read again, not committed). One rebalance
        # resets each position once, so no request is answered more than twice.
        batches = kafka.pipeline_depth + 2
        most_duplicated = len(rerankers) * batches * settings.batching.rerank_max_records
        counts = Counter(result.request_id for result in wire if result.request_id in load)
        duplicated = {request_id for request_id, count in counts.items() if count > 1}
        assert len(duplicated) <= most_duplicated, (len(duplicated), most_duplicated)
        assert max(counts.values()) <= 2
        print(f"\nreranker killed after {KILL_AFTER} of {REQUESTS} results, having served partitions {killed_served}; "
              f"all {REQUESTS} and the {AFTER_KILL} published after the kill answered, those by the survivor in all "
              f"{partitions} partitions; "
              f"{sum(counts.values()) - len(counts)} duplicate(s) on the reply topic ({len(duplicated)} request(s), "
              f"at most {most_duplicated}: {len(rerankers)} members x {batches} batches x "
              f"{settings.batching.rerank_max_records} records)")
    finally:
        for process in rerankers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
