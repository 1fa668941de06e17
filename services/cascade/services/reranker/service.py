"""The reranker's consumers, one per lane: interactive candidate sets, and bulk ones that give way to them. One
group member per pod on each, scaled by partitions."""

from __future__ import annotations

from cascade.contracts import Topic
from cascade.services.consumers import BatchConsumer
from cascade.services.publishing import Publisher
from cascade.services.reranker.processor import RerankProcessor
from cascade.services.settings import Settings

__all__ = ["reranker_consumers"]


def reranker_consumers(settings: Settings, publisher: Publisher, processor: RerankProcessor) -> list[BatchConsumer]:
    """Both lanes share the processor (and so the cross-encoder's batching queue); the bulk lane's partitions are
    paused while interactive candidate sets are in hand."""
    topics = settings.kafka.topics
    interactive = BatchConsumer(
        settings, publisher, topic=topics.name(Topic.CANDIDATES), role="reranker",
        max_records=settings.batching.rerank_max_records, handler=processor.process, refuse=processor.refuse,
        description="Scores candidate sets with the cross-encoder (dynamic batching) and publishes ranked results.",
    )
    bulk = BatchConsumer(
        settings, publisher, topic=topics.name(Topic.CANDIDATES_BULK), role="reranker-bulk",
        max_records=settings.batching.rerank_max_records, handler=processor.process, refuse=processor.refuse,
        description="Scores bulk-lane candidate sets while no interactive ones wait.", gives_way_to=interactive,
    )
    return [interactive, bulk]
