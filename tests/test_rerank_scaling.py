"""Two reranker processes share the candidates topic; SIGKILL one mid-run and nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from contracts import SearchRequest, SearchResult, Topic, encode
from sdk import SearchClient
from services.process import CascadeProcess
from tests.kafka_helpers import produce
from tests.processes import SESSION_TIMEOUT_MS, start_reranker

REQUESTS = 500


async def test_killing_a_reranker_loses_no_request(first_stage: CascadeProcess, tiny_cross_encoder: Path) -> None:
    settings = first_stage.settings
    kafka = settings.kafka
    rerankers = {name: start_reranker(settings, tiny_cross_encoder, name) for name in ("rerank-a", "rerank-b")}
    try:
        async with SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix) as client:
            await client.index([{"doc_id": f"d{i}", "text": f"document {i} about topic {i % 7}"} for i in range(120)],
                               collection="c")
            served: set[str] = set()
            async with asyncio.timeout(120):  # both members joined and serving
                while served != set(rerankers):
                    result = await client.search("topic 3", collection="c", k=5, timeout_s=60)
                    served.add(result.served_by["reranker"])

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
            duplicates = client.replies.duplicates_dropped
        ids = [result.request_id for _, result in received]
        assert set(ids) == {request.request_id for request in requests}
        assert all(result.error is None for _, result in received)
        after_kill = [(at, result) for at, result in received if at > killed_at + 0.5]
        assert after_kill, "the kill must happen while requests are in flight"
        assert {result.served_by["reranker"] for _, result in after_kill} == {"rerank-b"}
        recovery_s = received[-1][0] - killed_at
        assert len(ids) == len(set(ids))  # the SDK delivers each request's result once
        print(f"\nreranker killed after 100 of {REQUESTS} results; all {REQUESTS} answered "
              f"({duplicates} duplicates dropped by request id); last result {recovery_s:.1f} s "
              f"after the kill (session timeout {SESSION_TIMEOUT_MS / 1000:.0f} s)")
    finally:
        for process in rerankers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
