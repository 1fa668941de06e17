"""The ingest consumer: a FastStream batch subscriber on the documents topic.

Offsets are committed only after the batch's upserts are stored and its acks and dead letters are confirmed
by the cluster (AckPolicy.NACK_ON_ERROR: commit on success, rewind on failure), so nothing is lost; a
redelivered batch is harmless because point ids are deterministic and unchanged documents are skipped.
"""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts import Topic
from services.encoders import BiEncoder
from services.ingest.indexing import IndexScheduler
from services.ingest.processor import IngestProcessor
from services.messaging import Outgoing, RawRecord, publish_confirmed
from services.settings import Settings
from services.store import VectorStore

__all__ = ["register_ingest"]


def register_ingest(
    broker: KafkaBroker, settings: Settings, store: VectorStore, encoder: BiEncoder, scheduler: IndexScheduler
) -> IngestProcessor:
    """Subscribe the ingest handler on `broker`; returns the processor (its encoder counts encodes)."""
    topics = settings.kafka.topics
    processor = IngestProcessor(store, encoder, service=f"ingest@{settings.instance_name}")
    acks_topic, dlq_topic = topics.name(Topic.ACKS), topics.name(Topic.DLQ)

    @broker.subscriber(
        topics.name(Topic.DOCUMENTS),
        group_id=f"{settings.kafka.topic_prefix}ingest",
        batch=True,
        max_records=settings.batching.ingest_max_records,
        batch_timeout_ms=settings.batching.max_wait_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="ingest",
        description="Embeds new or changed documents into the vector store; one IngestAck per document.",
    )
    async def on_documents(message: KafkaMessage) -> None:
        records = [RawRecord.of(record) for record in message.raw_message]  # a batch: a tuple of records
        outcome = await processor.process(records)
        await publish_confirmed(broker, [
            *(Outgoing(dlq_topic, letter.key, letter) for letter in outcome.dead_letters),
            *(Outgoing(acks_topic, ack.doc_id, ack) for ack in outcome.acks),
        ])
        scheduler.written({ack.collection for ack in outcome.acks if ack.collection and ack.status == "indexed"})

    return processor
