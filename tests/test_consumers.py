"""The batch consumer through a real broker: bursts gathered into one batch, offsets committed only once the
outputs are confirmed, and a successor resumes after the last committed batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from cascade.contracts import DeadLetter, Topic
from cascade.contracts.topics import SPECS
from cascade.runtime.provision import provision_topics
from cascade.services.consumers import BatchConsumer
from cascade.services.messaging import RawRecord
from cascade.services.publishing import Outgoing, Publisher
from cascade.services.settings import Settings
from tests.kafka_helpers import eventually, produce


async def _committed(settings: Settings, group: str, topic: str) -> int:
    """Records committed by `group` over every partition of `topic`."""
    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **settings.kafka.client_options())
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(SPECS[Topic.DOCUMENTS].partitions)]
        return sum([await consumer.committed(partition) or 0 for partition in partitions])
    finally:
        await consumer.stop()


async def test_a_burst_is_one_batch_and_its_offsets_are_committed_after_its_outputs(settings: Settings) -> None:
    settings = settings.model_copy(update={"batching": settings.batching.model_copy(update={"max_wait_ms": 500})})
    kafka = settings.kafka
    await provision_topics(kafka.topics, **kafka.client_options())
    publisher = Publisher(kafka)
    await publisher.start()
    batches: list[int] = []
    release = asyncio.Event()
    dlq = kafka.topics.name(Topic.DLQ)

    async def handler(records: Sequence[RawRecord]) -> list[Outgoing]:
        batches.append(len(records))
        await release.wait()
        return [Outgoing(dlq, None, DeadLetter(source_topic=record.topic, partition=record.partition,
                                              offset=record.offset, key=None, raw_b64="", raw_size=0,
                                              reason="processing_failed", error="test",
                                              service="test")) for record in records]

    topic = kafka.topics.name(Topic.DOCUMENTS)
    consumer = BatchConsumer(settings, publisher, topic=topic, role="burst", max_records=64, handler=handler,
                             refuse=lambda record, reason: [], description="test")
    burst = [("one-key", b"{}")]  # one partition: the broker hands a burst over in one fetch
    await produce(kafka.bootstrap, topic, burst * 3)  # waiting before the consumer starts
    await consumer.start()
    try:
        await eventually(lambda: bool(batches), within_s=30)
        await produce(kafka.bootstrap, topic, burst * 2)  # arrives while the first batch is handled
        assert await _committed(settings, consumer.subscription.group, topic) == 0
        release.set()
        await eventually(lambda: sum(batches) == 5, within_s=30)
        await consumer.stop()
    finally:
        await publisher.close()
    assert batches == [3, 2]  # each burst one batch
    assert await _committed(settings, consumer.subscription.group, topic) == 5
