"""The one way Cascade's services consume: a FastStream batch subscriber around a batch handler.

The handler turns raw records into messages to publish. Offsets are committed only after every one of
them is confirmed by the cluster (AckPolicy.NACK_ON_ERROR: commit on success, rewind on failure). Only
cluster faults rewind a batch, after a capped, logged backoff. Anything else is one record's failure: if
a batch fails, its records are handled one at a time, and a record that fails on its own is refused
(dead letter, and an error answer for whoever waits), so one poisoned record never stalls a partition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.faults import Backoff, is_transient
from services.messaging import RawRecord
from services.publishing import Outgoing, Publisher
from services.settings import Settings

__all__ = ["BatchHandler", "Refuse", "Subscription", "handle_isolated", "subscribe_batches"]

log = structlog.get_logger(__name__)

BatchHandler = Callable[[Sequence[RawRecord]], Awaitable[list[Outgoing]]]
Refuse = Callable[[RawRecord, str], list[Outgoing]]
"""What a record that failed on its own produces: a dead letter, and an error answer where someone waits."""


async def tolerant_parse(records: tuple[Any, ...], original: Callable[[tuple[Any, ...]], Awaitable[Any]]) -> Any:
    """FastStream decodes every header as UTF-8 and fails the whole batch on one that is not, rewinding it
    forever (found by the fuzz test). Cascade reads only the trace context, so each is made valid text first."""
    def readable(record: Any) -> Any:
        headers = [(name, value.decode(errors="replace").encode()) for name, value in record.headers or ()]
        return dataclasses.replace(record, headers=headers)
    return await original(tuple(readable(record) for record in records))


def _describe(error: BaseException) -> str:
    return f"processing failed: {type(error).__name__}: {error}"


async def handle_isolated(handler: BatchHandler, refuse: Refuse, records: Sequence[RawRecord]) -> list[Outgoing]:
    """`handler(records)`; if it fails for any reason but the cluster, each record alone, refusing the ones
    that still fail. Cluster faults propagate (the batch is retried)."""
    try:
        return await handler(records)
    except Exception as exc:
        if is_transient(exc):
            raise
        if len(records) == 1:
            return refuse(records[0], _describe(exc))
        log.error("batch.failed", records=len(records), error=repr(exc), next="one record at a time")
    out: list[Outgoing] = []
    for record in records:
        try:
            out += await handler([record])
        except Exception as exc:
            if is_transient(exc):
                raise
            out += refuse(record, _describe(exc))
    return out


@dataclass(frozen=True)
class Subscription:
    """A topic and the consumer group (one per role and topic prefix) that consumes it."""

    topic: str
    group: str


def subscribe_batches(
    broker: KafkaBroker, settings: Settings, publisher: Publisher, *, topic: str, role: str, max_records: int,
    handler: BatchHandler, refuse: Refuse, description: str,
) -> Subscription:
    """Subscribe `handler` to `topic` in the consumer group of `role` (one group per role and topic prefix)."""
    kafka = settings.kafka
    subscription = Subscription(topic, f"{kafka.topic_prefix}{role}")
    backoff = Backoff(kafka.retry_backoff_ms / 1000, kafka.retry_backoff_max_ms / 1000)

    @broker.subscriber(
        topic,
        group_id=subscription.group,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=settings.batching.max_wait_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=max(kafka.session_timeout_ms // 3, 100),
        parser=tolerant_parse,
        title=f"{role}:{topic}",
        description=description,
    )
    async def consume(message: KafkaMessage) -> None:
        records = [RawRecord.of(record) for record in message.raw_message]  # a batch: a tuple of records
        try:
            await publisher.publish(await handle_isolated(handler, refuse, records))
        except Exception as exc:
            await backoff.wait(f"{role} batch of {len(records)} from {topic}", exc)
            raise  # rewound: delivered again
        backoff.reset()

    return subscription
