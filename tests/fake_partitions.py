"""A fake broker for the offset tests: partitions of a log, a consumer over them, and a sender whose
confirmations the test decides. The code under test (BatchConsumer, OffsetCommitter) is the real one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from cascade.services.consumers import BatchConsumer
from cascade.services.faults import Backoff, ClusterFault
from cascade.services.messaging import RawRecord, dead_letter
from cascade.services.publishing import Outgoing
from cascade.services.settings import BatchingSettings, KafkaSettings, Settings

TOPIC = "queries"


class FakeRecord:
    """What aiokafka's getmany returns (the fields RawRecord.of reads)."""

    def __init__(self, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = TOPIC, partition, offset
        self.key, self.value, self.headers = None, b"{}", ()


class FakeConsumer:
    """Partitions of `length` records each. A poll waits for the test to allow it (`allow`), then returns up
    to that many records of one partition (or of each assigned one) from its position, as aiokafka does. A
    commit naming a partition not assigned fails, as aiokafka's does."""

    def __init__(self, partitions: int, length: int) -> None:
        self.length = length
        self.partitions = [TopicPartition(TOPIC, p) for p in range(partitions)]
        self.assigned: set[TopicPartition] = set(self.partitions)
        self.positions = dict.fromkeys(self.partitions, 0)
        self.committed: dict[TopicPartition, int] = {}
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self._polls: asyncio.Queue[tuple[TopicPartition | None, int]] = asyncio.Queue()

    def allow(self, partition: TopicPartition | None, records: int) -> None:
        """Let one poll return up to `records` of `partition`, or of every assigned partition (None)."""
        self._polls.put_nowait((partition, records))

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        partition, count = await self._polls.get()
        polled: dict[TopicPartition, list[Any]] = {}
        left = max_records or count * len(self.partitions)
        for each in sorted(self.assigned if partition is None else self.assigned & {partition}):
            start = self.positions[each]
            end = min(start + count, self.length, start + left)
            if end > start:
                self.positions[each] = end
                polled[each] = [FakeRecord(each.partition, offset) for offset in range(start, end)]
                left -= end - start
        return polled

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if partition not in self.assigned:
            raise IllegalStateError(f"No current assignment for partition {partition}")
        self.seeks.append((partition, offset))
        self.positions[partition] = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not set(offsets) <= self.assigned:
            raise CommitFailedError(f"partitions {sorted(set(offsets) - self.assigned)} are not assigned")
        self.commits.append(dict(offsets))
        self.committed.update(offsets)

    def rebalance(self, consumer: BatchConsumer, partitions: Sequence[TopicPartition]) -> None:
        """Revoke and assign `partitions` again: their positions come from the committed offsets."""
        consumer.committer.forget(partitions)
        for partition in partitions:
            self.positions[partition] = self.committed.get(partition, 0)


class FakeSender:
    """Keeps each batch's confirmation pending until the test confirms or fails it."""

    def __init__(self) -> None:
        self.pending: list[tuple[list[RawRecord], asyncio.Future[None]]] = []
        self.refuse_next = False
        self.handled: list[RawRecord] = []
        """What the handler was given since the last send."""

    async def send(self, messages: Sequence[Outgoing]) -> Awaitable[None]:
        if self.refuse_next:
            self.refuse_next = False
            self.handled = []
            raise ClusterFault("the cluster is away")
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((self.handled, confirmed))
        self.handled = []
        return confirmed

    async def handler(self, records: Sequence[RawRecord]) -> list[Outgoing]:
        self.handled = list(records)
        return []

    def refuse(self, record: RawRecord, reason: str) -> list[Outgoing]:
        return [Outgoing("dlq", None, dead_letter(record, "processing_failed", reason, "test"))]


class _InstantRetry(KafkaSettings):
    """Retries at once, so that a test's schedule runs without sleeping."""

    def retry_backoff(self) -> Backoff:
        return Backoff(0.0, 0.0)


def batch_consumer(sender: FakeSender, depth: int = 2) -> BatchConsumer:
    settings = Settings(kafka=_InstantRetry(bootstrap="fake:9092", pipeline_depth=depth),
                        batching=BatchingSettings(max_wait_ms=0), metrics_port=None)
    return BatchConsumer(settings, sender, topic=TOPIC, role="test", max_records=64, handler=sender.handler,
                         refuse=sender.refuse, description="offsets under test")


async def settle() -> None:
    """Let every task run until it waits on the test (a poll, a confirmation)."""
    for _ in range(40):
        await asyncio.sleep(0)


async def stop_consuming(sender: FakeSender, consumer: BatchConsumer, task: asyncio.Task[None]) -> None:
    """Confirm what is pending (so that the consumer can settle it), stop the consumer and end its task."""
    for _, confirmed in sender.pending:
        if not confirmed.done():
            confirmed.set_result(None)
    await consumer.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
