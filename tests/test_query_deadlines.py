"""A request that would hold the query consumer (mode cross over a whole collection) ends at its deadline: it is
answered deadline_exceeded, the consumer goes on to the next requests, and the scoring left is not run. Before,
the deadline was checked once at admission and the consumer waited for the scoring, however long. Real broker,
real Edge store, tiny models; the cross-encoder's forward pass is held by the test."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from cascade.contracts import SearchRequest, SearchResult, Topic, encode, now_ms
from cascade.runtime.process import CascadeProcess
from cascade.services.encoders.cross_encoder import Encoding, ScoredBatch
from cascade.services.settings import Settings
from tests.conftest import client_for
from tests.kafka_helpers import Collector, eventually, produce
from tests.processes import CLI_HANG_GUARD_S

CORPUS = [{"doc_id": f"d{i}", "title": f"Doc {i}", "text": f"the telephone was invented in 18{i:02d}"}
          for i in range(20)]


class HeldForward:
    """The real forward pass, run only once the test lets it."""

    def __init__(self, process: CascadeProcess) -> None:
        assert process.batcher is not None
        self.encoder = process.batcher.encoder
        self.forward = self.encoder.score_tokenized
        self.release = threading.Event()
        self.passes = 0

    def __call__(self, pairs: Sequence[Encoding]) -> ScoredBatch:
        self.passes += 1
        self.release.wait(CLI_HANG_GUARD_S)
        return self.forward(pairs)


@pytest.fixture
async def service(settings: Settings, tiny_cross_encoder: Path) -> AsyncIterator[CascadeProcess]:
    settings = settings.model_copy(update={
        "models": settings.models.model_copy(update={"cross_encoder": str(tiny_cross_encoder)}),
        "batching": settings.batching.model_copy(update={"rerank_pass_tokens": 64}),  # several passes for 20
    })
    process = CascadeProcess(settings, {"ingest", "query", "rerank"})
    await process.start()
    yield process
    await process.stop()


async def test_mode_cross_past_its_deadline_is_answered_and_frees_the_consumer(service: CascadeProcess) -> None:
    held = HeldForward(service)
    kafka = service.settings.kafka
    results = kafka.topics.name(Topic.RESULTS)
    async with client_for(service) as client, Collector(kafka.bootstrap, results, SearchResult) as answers:
        await client.index(CORPUS, collection="demo")
        held.encoder.score_tokenized = held  # type: ignore[method-assign]
        try:
            request = SearchRequest(request_id="slow", collection="demo", query="telephone", mode="cross",
                                    deadline_ms=now_ms() + 2_000)  # answered on the shared results topic
            await produce(kafka.bootstrap, kafka.topics.name(Topic.QUERIES), [("slow", encode(request))])
            [answer] = await answers.wait_for(lambda found: bool(found), within_s=CLI_HANG_GUARD_S)
            assert answer.error is not None and answer.error.code == "deadline_exceeded"
            # The consumer is free while the first pass is still held: the next request is answered.
            found = await client.search("telephone", collection="demo", mode="bi", k=3, timeout_s=CLI_HANG_GUARD_S)
            assert len(found.hits) == 3
            assert held.passes == 1
        finally:
            held.release.set()
        batcher = service.batcher
        assert batcher is not None
        await eventually(lambda: batcher.abandoned_jobs == 1, within_s=CLI_HANG_GUARD_S)
    assert held.passes == 1  # the passes after the held one were not run: nobody waited for them
