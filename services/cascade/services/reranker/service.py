"""The reranker consumer on the candidates topic: one group member per pod, scaled by partitions."""

from __future__ import annotations

from cascade.contracts import Topic
from cascade.services.consumers import BatchConsumer
from cascade.services.publishing import Publisher
from cascade.services.reranker.processor import RerankProcessor
from cascade.services.settings import Settings

__all__ = ["reranker_consumer"]


def reranker_consumer(settings: Settings, publisher: Publisher, processor: RerankProcessor) -> BatchConsumer:
    return BatchConsumer(
        settings, publisher, topic=settings.kafka.topics.name(Topic.CANDIDATES), role="reranker",
        max_records=settings.batching.rerank_max_records, handler=processor.process, refuse=processor.refuse,
        description="Scores candidate sets with the cross-encoder (dynamic batching) and publishes ranked results.",
    )
