"""Priority lanes, through Kafka: a request names its lane; bulk candidate sets go to their own topic, and the
rerankers pause its partitions while interactive work waits, so an interactive search asked behind a bulk flood
is answered before the flood has drained."""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition

from cascade.contracts import SearchResult
from cascade.contracts.messages import Lane
from cascade.runtime.process import CascadeProcess
from cascade.services.publishing import Publisher
from cascade.services.reranker import RerankProcessor, reranker_consumers
from cascade.services.settings import Settings
from tests.conftest import client_for
from tests.kafka_helpers import eventually

DOCS = [{"doc_id": f"d{i}", "text": f"document number {i} about topic {i % 7}"} for i in range(40)]
FLOOD = 150


async def test_an_interactive_search_overtakes_a_bulk_flood(settings: Settings) -> None:
    batching = settings.batching.model_copy(update={"rerank_max_records": 4, "candidates": 20})
    process = CascadeProcess(settings.model_copy(update={"batching": batching}), {"ingest", "query", "rerank"})
    await process.start()
    answered: list[str] = []
    try:
        async with client_for(process) as client:
            await client.index(DOCS, collection="c")

            async def search(query: str, lane: Lane) -> SearchResult:
                result = await client.search(query, collection="c", mode="rerank", lane=lane, timeout_s=300)
                answered.append(lane)
                return result

            flood = [asyncio.create_task(search(f"bulk query {i}", "bulk")) for i in range(FLOOD)]
            await eventually(lambda: len(answered) >= 4, within_s=120)  # the rerankers are busy with the flood
            interactive = await search("document number 3", "interactive")
            bulk_before = answered.index("interactive")
            results = await asyncio.gather(*flood)
    finally:
        await process.stop()
    assert interactive.hits and interactive.error is None
    assert all(result.error is None for result in results)
    # Bulk answers that came first: those already in hand when the interactive request arrived (a few batches of
    # 4), never the rest of the flood.
    assert bulk_before < FLOOD // 3, f"{bulk_before} of {FLOOD} bulk searches were answered first"


class _Partitions:
    """The pause/resume part of a consumer, recording what is paused."""

    def __init__(self) -> None:
        self.assigned = {TopicPartition("bulk", 0), TopicPartition("bulk", 1)}
        self.stopped: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self.stopped |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.stopped -= set(partitions)

    def paused(self) -> set[TopicPartition]:
        return set(self.stopped)


def test_the_bulk_consumer_pauses_while_the_interactive_one_is_busy(settings: Settings) -> None:
    processor = RerankProcessor.__new__(RerankProcessor)  # never called: no records flow here
    interactive, bulk = reranker_consumers(settings, Publisher(settings.kafka), processor)
    partitions = _Partitions()
    bulk._give_way(partitions)  # type: ignore[arg-type]
    assert not partitions.stopped  # nothing interactive in hand yet
    interactive.last_records_at = time.monotonic()  # a poll just brought interactive records
    bulk._give_way(partitions)  # type: ignore[arg-type]
    assert partitions.stopped == partitions.assigned
    interactive.last_records_at = time.monotonic() - 1.0  # handed over a second ago, nothing since
    bulk._give_way(partitions)  # type: ignore[arg-type]
    assert not partitions.stopped
