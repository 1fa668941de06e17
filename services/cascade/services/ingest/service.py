"""The ingest consumer on the documents topic: one IngestAck per document, dead letters for bad input."""

from __future__ import annotations

from collections.abc import Sequence

from cascade.contracts import ContractError, ReindexRequest, ReindexStatus, Topic, TopicRegistry, decode
from cascade.contracts.messages import DeadLetterReason
from cascade.services.consumers import BatchConsumer
from cascade.services.ingest.indexing import IndexScheduler
from cascade.services.ingest.processor import IngestOutcome, IngestProcessor
from cascade.services.ingest.reindex import Reindexer
from cascade.services.messaging import RawRecord, dead_letter
from cascade.services.publishing import Outgoing, Publisher
from cascade.services.settings import Settings
from cascade.services.tenancy import stored_collection, tenant_topics

__all__ = ["ingest_consumer", "reindex_consumer"]


def ingest_consumer(settings: Settings, publisher: Publisher, processor: IngestProcessor, scheduler: IndexScheduler
                    ) -> BatchConsumer:
    """Every tenant's documents; each tenant's acks go to its own acks topic, under the names it knows."""
    topics = settings.kafka.topics

    def outputs(outcome: IngestOutcome, tenant: TopicRegistry) -> list[Outgoing]:
        return [
            *(Outgoing(topics.name(Topic.DLQ), letter.key, letter) for letter in outcome.dead_letters),
            *(Outgoing(tenant.name(Topic.ACKS), ack.doc_id, ack) for ack in outcome.acks),
        ]

    async def handle(records: Sequence[RawRecord]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for tenant, own in _by_tenant(topics, records):  # each tenant's from topics of its own: no order is lost
            outcome = await processor.process(own, tenant.tenant)
            scheduler.written({stored_collection(tenant.tenant, ack.collection) for ack in outcome.acks
                               if ack.collection and ack.status == "indexed"})
            out += outputs(outcome, tenant)
        return out

    def refuse(record: RawRecord, error: str) -> list[Outgoing]:
        outcome = IngestOutcome()
        processor.reject(record, "processing_failed", error, outcome)
        return outputs(outcome, tenant_topics(topics, record))

    return BatchConsumer(
        settings, publisher, topic=topics.name(Topic.DOCUMENTS), pattern=topics.pattern(Topic.DOCUMENTS),
        role="ingest",
        max_records=settings.batching.ingest_max_records, handler=handle, refuse=refuse,
        description="Embeds new or changed documents into the vector store; one IngestAck per document.",
    )


def _by_tenant(topics: TopicRegistry, records: Sequence[RawRecord]) -> list[tuple[TopicRegistry, list[RawRecord]]]:
    """`records` by tenant, each tenant's in the order they came."""
    grouped: dict[str, list[RawRecord]] = {}
    for record in records:
        grouped.setdefault(tenant_topics(topics, record).tenant, []).append(record)
    return [(topics.for_tenant(tenant), own) for tenant, own in grouped.items()]


def reindex_consumer(settings: Settings, publisher: Publisher, reindexer: Reindexer) -> BatchConsumer:
    """Reindex requests: each starts a background reindex and is answered `started` (or `failed`) at once; the
    outcome follows on the status topic when the reindex ends."""
    topics = settings.kafka.topics

    def status(tenant: TopicRegistry, message: ReindexStatus) -> Outgoing:
        return Outgoing(tenant.name(Topic.REINDEX_STATUS), message.collection, message)

    async def handle(records: Sequence[RawRecord]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for record in records:
            tenant = tenant_topics(topics, record)
            try:
                request = decode(record.value, ReindexRequest)
            except ContractError as exc:
                out.append(filed(record, exc.reason, str(exc)))
                continue

            async def report(message: ReindexStatus, tenant: TopicRegistry = tenant) -> None:
                await publisher.publish([status(tenant, message)])

            if (answer := await reindexer.start(request, report, tenant)) is not None:
                out.append(status(tenant, answer))
        return out

    def filed(record: RawRecord, reason: DeadLetterReason, error: str) -> Outgoing:
        letter = dead_letter(record, reason, error, f"ingest@{settings.instance_name}")
        return Outgoing(topics.name(Topic.DLQ), letter.key, letter)

    def refuse(record: RawRecord, error: str) -> list[Outgoing]:
        return [filed(record, "processing_failed", error)]

    return BatchConsumer(
        settings, publisher, topic=topics.name(Topic.REINDEX), pattern=topics.pattern(Topic.REINDEX),
        role="ingest-reindex", max_records=1, handler=handle, refuse=refuse,
        description="Builds collections anew with another model and switches them when complete.",
    )
