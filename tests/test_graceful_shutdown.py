"""SIGTERM a reranker mid-stream: it finishes its batch, publishes, commits and leaves; a successor resumes
exactly where it stopped (no request lost, none answered twice)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from cascade.contracts import SearchRequest, SearchResult, Topic, encode
from cascade.runtime.process import CascadeProcess
from cascade.sdk import SearchClient
from tests.conftest import addressed_to
from tests.kafka_helpers import produce
from tests.processes import start_reranker

REQUESTS = 300


async def test_sigterm_finishes_the_batch_and_commits(first_stage: CascadeProcess, tiny_cross_encoder: Path) -> None:
    settings = first_stage.settings
    kafka = settings.kafka
    async with SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix) as client:
        await client.index([{"doc_id": f"d{i}", "text": f"document {i} on theme {i % 5}"} for i in range(100)],
                           collection="c")
        first = start_reranker(settings, tiny_cross_encoder, "rerank-first")
        stream = client.results()
        requests = [addressed_to(client, SearchRequest(request_id=f"q{i}", collection="c", query=f"theme {i % 5} ({i})",
                                                       k=5, mode="rerank")) for i in range(REQUESTS)]
        await produce(kafka.bootstrap, kafka.topics.name(Topic.QUERIES),
                      [(request.request_id, encode(request)) for request in requests])
        received: list[SearchResult] = []
        async with asyncio.timeout(120):
            while len(received) < 30:
                received.append(await anext(stream))
        first.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.wait, 60) == 0  # a clean exit after the in-flight batch
        await asyncio.sleep(1)
        while True:  # everything it published before leaving
            try:
                received.append(await asyncio.wait_for(anext(stream), 0.5))
            except TimeoutError:
                break
        stopped_after = len(received)
        successor = start_reranker(settings, tiny_cross_encoder, "rerank-successor")
        try:
            async with asyncio.timeout(120):
                while len({result.request_id for result in received}) < REQUESTS:
                    received.append(await anext(stream))
            await asyncio.sleep(1)
            duplicates = client.replies.duplicates_dropped
        finally:
            successor.send_signal(signal.SIGTERM)
            successor.wait(30)
    assert stopped_after < REQUESTS, "the first reranker must stop mid-stream for this test to mean anything"
    assert {result.request_id for result in received} == {request.request_id for request in requests}
    assert duplicates == 0  # offsets were committed for everything the first reranker answered
    assert {result.served_by["reranker"] for result in received[stopped_after:]} == {"rerank-successor"}
