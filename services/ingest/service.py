"""The ingest consumer on the documents topic: one IngestAck per document, dead letters for bad input."""

from __future__ import annotations

from collections.abc import Sequence

from contracts import Topic
from services.consumers import BatchConsumer
from services.encoders import BiEncoders
from services.ingest.indexing import IndexScheduler
from services.ingest.processor import IngestOutcome, IngestProcessor
from services.messaging import RawRecord
from services.publishing import Outgoing, Publisher
from services.settings import Settings
from services.store import VectorStore

__all__ = ["ingest_consumer"]


def ingest_consumer(
    settings: Settings, publisher: Publisher, store: VectorStore, encoders: BiEncoders, scheduler: IndexScheduler,
) -> BatchConsumer:
    topics = settings.kafka.topics
    processor = IngestProcessor(store, encoders, service=f"ingest@{settings.instance_name}",
                                max_collections=settings.store.max_collections)

    def outputs(outcome: IngestOutcome) -> list[Outgoing]:
        return [
            *(Outgoing(topics.name(Topic.DLQ), letter.key, letter) for letter in outcome.dead_letters),
            *(Outgoing(topics.name(Topic.ACKS), ack.doc_id, ack) for ack in outcome.acks),
        ]

    async def handle(records: Sequence[RawRecord]) -> list[Outgoing]:
        outcome = await processor.process(records)
        scheduler.written({ack.collection for ack in outcome.acks if ack.collection and ack.status == "indexed"})
        return outputs(outcome)

    def refuse(record: RawRecord, reason: str) -> list[Outgoing]:
        outcome = IngestOutcome()
        processor.reject(record, reason, outcome)
        return outputs(outcome)

    return BatchConsumer(
        settings, publisher, topic=topics.name(Topic.DOCUMENTS), role="ingest",
        max_records=settings.batching.ingest_max_records, handler=handle, refuse=refuse,
        description="Embeds new or changed documents into the vector store; one IngestAck per document.",
    )
