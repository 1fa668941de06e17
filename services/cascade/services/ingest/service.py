"""The ingest consumer on the documents topic: one IngestAck per document, dead letters for bad input."""

from __future__ import annotations

from collections.abc import Sequence

from cascade.contracts import ContractError, ReindexRequest, ReindexStatus, Topic, decode
from cascade.contracts.messages import DeadLetterReason
from cascade.services.consumers import BatchConsumer
from cascade.services.ingest.indexing import IndexScheduler
from cascade.services.ingest.processor import IngestOutcome, IngestProcessor
from cascade.services.ingest.reindex import Reindexer
from cascade.services.messaging import RawRecord, dead_letter
from cascade.services.publishing import Outgoing, Publisher
from cascade.services.settings import Settings

__all__ = ["ingest_consumer", "reindex_consumer"]


def ingest_consumer(settings: Settings, publisher: Publisher, processor: IngestProcessor, scheduler: IndexScheduler
                    ) -> BatchConsumer:
    topics = settings.kafka.topics

    def outputs(outcome: IngestOutcome) -> list[Outgoing]:
        return [
            *(Outgoing(topics.name(Topic.DLQ), letter.key, letter) for letter in outcome.dead_letters),
            *(Outgoing(topics.name(Topic.ACKS), ack.doc_id, ack) for ack in outcome.acks),
        ]

    async def handle(records: Sequence[RawRecord]) -> list[Outgoing]:
        outcome = await processor.process(records)
        scheduler.written({ack.collection for ack in outcome.acks if ack.collection and ack.status == "indexed"})
        return outputs(outcome)

    def refuse(record: RawRecord, error: str) -> list[Outgoing]:
        outcome = IngestOutcome()
        processor.reject(record, "processing_failed", error, outcome)
        return outputs(outcome)

    return BatchConsumer(
        settings, publisher, topic=topics.name(Topic.DOCUMENTS), role="ingest",
        max_records=settings.batching.ingest_max_records, handler=handle, refuse=refuse,
        description="Embeds new or changed documents into the vector store; one IngestAck per document.",
    )


def reindex_consumer(settings: Settings, publisher: Publisher, reindexer: Reindexer) -> BatchConsumer:
    """Reindex requests: each starts a background reindex and is answered `started` (or `failed`) at once; the
    outcome follows on the status topic when the reindex ends."""
    topics = settings.kafka.topics

    def status(message: ReindexStatus) -> Outgoing:
        return Outgoing(topics.name(Topic.REINDEX_STATUS), message.collection, message)

    async def report(message: ReindexStatus) -> None:
        await publisher.publish([status(message)])

    async def handle(records: Sequence[RawRecord]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for record in records:
            try:
                request = decode(record.value, ReindexRequest)
            except ContractError as exc:
                out.append(filed(record, exc.reason, str(exc)))
            else:
                if (answer := await reindexer.start(request, report)) is not None:
                    out.append(status(answer))
        return out

    def filed(record: RawRecord, reason: DeadLetterReason, error: str) -> Outgoing:
        letter = dead_letter(record, reason, error, f"ingest@{settings.instance_name}")
        return Outgoing(topics.name(Topic.DLQ), letter.key, letter)

    def refuse(record: RawRecord, error: str) -> list[Outgoing]:
        return [filed(record, "processing_failed", error)]

    return BatchConsumer(
        settings, publisher, topic=topics.name(Topic.REINDEX), role="ingest-reindex", max_records=1, handler=handle,
        refuse=refuse, description="Builds collections anew with another model and switches them when complete.",
    )
