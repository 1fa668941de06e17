"""Consumer lag per partition as KEDA's Kafka scaler computes it (the log end offset minus the group's committed
offset; a partition with nothing committed lags by its whole log), and the gauge refreshed from it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from cascade.contracts.topic_admin import partition_counts
from cascade.services.consumers import Subscription

__all__ = ["GroupBacklog", "group_lag", "wait_until_consumed", "watch_lag"]

log = structlog.get_logger(__name__)


async def group_lag(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str,
                    partitions: list[TopicPartition] | None = None) -> dict[TopicPartition, int]:
    """Lag of `group` on `partitions` (default: every partition it has committed an offset for)."""
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    wanted = partitions if partitions is not None else sorted(committed)
    ends = await consumer.end_offsets(wanted) if wanted else {}
    return {tp: ends[tp] - max(committed[tp].offset, 0) if tp in committed else ends[tp] for tp in wanted}


async def watch_lag(gauge: Gauge, subscriptions: list[Subscription], every_s: float, **client_options: Any
                    ) -> None:
    """Set `gauge{group, topic, partition}` every `every_s` until cancelled."""
    async with _clients(**client_options) as (admin, consumer):
        while True:
            try:
                for each in subscriptions:
                    partitions = await _partitions(admin, each.topic)
                    for tp, lag in (await group_lag(admin, consumer, each.group, partitions)).items():
                        gauge.labels(each.group, each.topic, str(tp.partition)).set(lag)
            except Exception as exc:  # the cluster away for a while: the gauge keeps its last values
                log.warning("lag.unavailable", error=repr(exc))
            await asyncio.sleep(every_s)


@asynccontextmanager
async def _clients(**client_options: Any) -> AsyncIterator[tuple[AIOKafkaAdminClient, AIOKafkaConsumer]]:
    """An admin client (committed offsets) and a consumer (log offsets), started, closed on exit."""
    admin = AIOKafkaAdminClient(**client_options)
    consumer = AIOKafkaConsumer(**client_options)
    try:
        await admin.start()
        await consumer.start()
        yield admin, consumer
    finally:
        await consumer.stop()
        await admin.close()


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    count = (await partition_counts(admin, [topic])).get(topic, 0)
    return [TopicPartition(topic, partition) for partition in range(count)]  # Kafka numbers them from 0


async def _positions(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str,
                     partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Where `group` reads next on each partition: its commit, or the log's start where it never committed or
    retention deleted records past its commit (those can never be read, so they count as read)."""
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    starts = await consumer.beginning_offsets(partitions)
    return {tp: max(committed[tp].offset if tp in committed else 0, starts[tp]) for tp in partitions}


async def wait_until_consumed(subscription: Subscription, every_s: float = 0.2, **client_options: Any) -> None:
    """Return once the subscription's group has committed, on every partition of its topic, past each record
    published to it before this call (records published since do not delay it)."""
    async with _clients(**client_options) as (admin, consumer):
        partitions = await _partitions(admin, subscription.topic)
        ends = await consumer.end_offsets(partitions)
        while True:
            try:
                reached = await _positions(admin, consumer, subscription.group, partitions)
            except KafkaError as exc:  # the cluster away for a while: ask again
                log.warning("lag.unavailable", error=repr(exc))
            else:
                if all(reached[tp] >= end for tp, end in ends.items()):
                    return
            await asyncio.sleep(every_s)


class GroupBacklog:
    """The records a consumer group has yet to read on its topic (`records`), sampled every `every_s` by `run`:
    admission control reads it without waiting on the cluster. Records retention deleted unread do not count (a
    group that never committed reads from the log's start)."""

    def __init__(self, subscription: Subscription, every_s: float = 1.0, **client_options: Any) -> None:
        self.subscription = subscription
        self.records = 0
        self._every_s = every_s
        self._client_options = client_options
        self._failing = False
        """Whether the last try failed (its warning is written once a failure streak)."""

    async def run(self) -> None:
        """Until cancelled. While the cluster cannot answer, `records` keeps its last value and one warning says
        so (clients are made again on the next try)."""
        while True:
            try:
                await self._sample_until_failure()
            except Exception as exc:
                if not self._failing:
                    log.warning("backlog.unavailable", group=self.subscription.group, error=repr(exc),
                                consequence="admission uses the last backlog sampled")
                self._failing = True
            await asyncio.sleep(self._every_s)

    async def _sample_until_failure(self) -> None:
        topic, group = self.subscription.topic, self.subscription.group
        async with _clients(**self._client_options) as (admin, consumer):
            while True:
                partitions = await _partitions(admin, topic)
                positions = await _positions(admin, consumer, group, partitions)
                ends = await consumer.end_offsets(partitions)
                self.records = sum(ends[tp] - positions[tp] for tp in partitions)
                self._failing = False
                await asyncio.sleep(self._every_s)
