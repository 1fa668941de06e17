"""The one way Cascade's services consume: a FastStream batch subscriber around a batch handler.

The handler turns raw records into messages to publish. Offsets are committed only after every one of
them is confirmed by the cluster (AckPolicy.NACK_ON_ERROR: commit on success; on an unexpected failure,
rewind to the batch's first offsets so it is delivered again). Bad input never raises: handlers turn it
into dead letters and error results, so one poisoned record cannot stall a partition.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.messaging import Outgoing, RawRecord, publish_confirmed
from services.settings import Settings

__all__ = ["BatchHandler", "subscribe_batches"]

BatchHandler = Callable[[list[RawRecord]], Awaitable[list[Outgoing]]]


def subscribe_batches(
    broker: KafkaBroker, settings: Settings, *, topic: str, role: str, max_records: int, handler: BatchHandler,
    description: str,
) -> None:
    """Subscribe `handler` to `topic` in the consumer group of `role` (one group per role and topic prefix)."""
    kafka = settings.kafka

    @broker.subscriber(
        topic,
        group_id=f"{kafka.topic_prefix}{role}",
        batch=True,
        max_records=max_records,
        batch_timeout_ms=settings.batching.max_wait_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=max(kafka.session_timeout_ms // 3, 100),
        title=f"{role}:{topic}",
        description=description,
    )
    async def consume(message: KafkaMessage) -> None:
        records = [RawRecord.of(record) for record in message.raw_message]  # a batch: a tuple of records
        await publish_confirmed(broker, await handler(records))
