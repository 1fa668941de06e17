"""The ingest consumer on the documents topic: one IngestAck per document, dead letters for bad input."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from contracts import Topic
from services.consumers import subscribe_batches
from services.encoders import BiEncoder
from services.ingest.indexing import IndexScheduler
from services.ingest.processor import IngestProcessor
from services.messaging import Outgoing, RawRecord
from services.settings import Settings
from services.store import VectorStore

__all__ = ["register_ingest"]


def register_ingest(
    broker: KafkaBroker, settings: Settings, store: VectorStore, encoder: BiEncoder, scheduler: IndexScheduler
) -> None:
    topics = settings.kafka.topics
    processor = IngestProcessor(store, encoder, service=f"ingest@{settings.instance_name}")

    async def handle(records: list[RawRecord]) -> list[Outgoing]:
        outcome = await processor.process(records)
        scheduler.written({ack.collection for ack in outcome.acks if ack.collection and ack.status == "indexed"})
        return [
            *(Outgoing(topics.name(Topic.DLQ), letter.key, letter) for letter in outcome.dead_letters),
            *(Outgoing(topics.name(Topic.ACKS), ack.doc_id, ack) for ack in outcome.acks),
        ]

    subscribe_batches(
        broker, settings, topic=topics.name(Topic.DOCUMENTS), role="ingest",
        max_records=settings.batching.ingest_max_records, handler=handle,
        description="Embeds new or changed documents into the vector store; one IngestAck per document.",
    )
