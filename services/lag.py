"""Consumer lag of this process's groups, per partition, refreshed every few seconds for the metrics (what
KEDA's Kafka scaler computes: the log end offset minus the group's committed offset)."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

from services.consumers import Subscription

__all__ = ["watch_lag"]

log = structlog.get_logger(__name__)


async def _lag(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, topic: str, group: str) -> dict[int, int]:
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    ends = await consumer.end_offsets(partitions)
    return {tp.partition: ends[tp] - max(committed[tp].offset, 0) if tp in committed else ends[tp]
            for tp in partitions}


async def watch_lag(gauge: Gauge, subscriptions: list[Subscription], every_s: float, **client_options: Any
                    ) -> None:
    """Set `gauge{group, topic, partition}` every `every_s` until cancelled."""
    admin = AIOKafkaAdminClient(**client_options)
    consumer = AIOKafkaConsumer(**client_options)
    await admin.start()
    await consumer.start()
    try:
        while True:
            try:
                for each in subscriptions:
                    for partition, lag in (await _lag(admin, consumer, each.topic, each.group)).items():
                        gauge.labels(each.group, each.topic, str(partition)).set(lag)
            except Exception as exc:  # the cluster away for a while: the gauge keeps its last values
                log.warning("lag.unavailable", error=repr(exc))
            await asyncio.sleep(every_s)
    finally:
        await consumer.stop()
        await admin.close()
