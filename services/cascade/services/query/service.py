"""The query consumer on the queries topic: first-stage retrieval, then a result or a CandidateSet."""

from __future__ import annotations

from cascade.contracts import Topic
from cascade.services.consumers import BatchConsumer
from cascade.services.publishing import Publisher
from cascade.services.query.processor import QueryProcessor
from cascade.services.settings import Settings

__all__ = ["query_consumer"]


def query_consumer(settings: Settings, publisher: Publisher, processor: QueryProcessor) -> BatchConsumer:
    return BatchConsumer(
        settings, publisher, topic=settings.kafka.topics.name(Topic.QUERIES),
        pattern=settings.kafka.topics.pattern(Topic.QUERIES), role="query",
        max_records=settings.batching.query_max_records, partition_fetch_bytes=settings.batching.query_fetch_bytes,
        handler=processor.process, refuse=processor.refuse,
        description="Encodes queries (batched, cached) and searches HNSW; answers mode bi and cross, "
                    "forwards mode rerank to the candidates topic.",
    )
