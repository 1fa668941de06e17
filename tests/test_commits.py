"""The offset committer and the consuming loop over a fake broker: in order, only after confirmation, never past
a record that must come again (the Kafka path is covered by test_graceful_shutdown, test_broker_restart and
test_ingest_crash; random schedules by test_offsets_model)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import TopicPartition

from cascade.services.commits import Batch, OffsetCommitter, Span
from cascade.services.consumers import BatchConsumer
from cascade.services.faults import Backoff, ClusterFault, ServiceFault
from tests.fake_partitions import TOPIC, FakeConsumer, FakeSender, batch_consumer, settle, stop_consuming

A = TopicPartition(TOPIC, 0)
B = TopicPartition(TOPIC, 1)


class Consuming:
    """A real BatchConsumer polling a FakeConsumer in a task, and its FakeSender."""

    def __init__(self, depth: int = 2, partitions: int = 2, length: int = 8) -> None:
        self.sender = FakeSender()
        self.broker = FakeConsumer(partitions, length)
        self.consumer: BatchConsumer = batch_consumer(self.sender, depth)
        self.task = asyncio.create_task(self.consumer.consume(self.broker))

    async def poll(self, partition: TopicPartition, records: int) -> None:
        self.broker.allow(partition, records)
        await settle()

    async def outcome(self, index: int, error: BaseException | None = None) -> None:
        _, confirmed = self.sender.pending[index]
        if error is None:
            confirmed.set_result(None)
        else:
            confirmed.set_exception(error)
        await settle()

    async def stop(self) -> None:
        await stop_consuming(self.sender, self.consumer, self.task)

    def offsets_handled(self, partition: TopicPartition) -> list[int]:
        return [record.offset for records, _ in self.sender.pending for record in records
                if record.partition == partition.partition]


@pytest.fixture
async def consuming() -> AsyncIterator[Consuming]:
    running = Consuming()
    yield running
    await running.stop()


async def test_batches_are_committed_in_order_once_confirmed(consuming: Consuming) -> None:
    await consuming.poll(A, 3)
    await consuming.poll(B, 2)
    await consuming.outcome(1)  # the later batch is confirmed first: nothing may be committed yet
    assert consuming.broker.commits == []
    await consuming.outcome(0)
    assert consuming.broker.commits == [{A: 3}, {B: 2}]


async def test_two_failed_batches_rewind_to_the_earlier_one(consuming: Consuming) -> None:
    """Batches 0-1 and 2-3 both unconfirmed: reading goes back to 0, not to 2 (records 0-1 were skipped)."""
    await consuming.poll(A, 2)
    await consuming.poll(A, 2)
    await consuming.outcome(0, ClusterFault("no broker"))
    await consuming.outcome(1, ClusterFault("no broker"))
    await consuming.poll(A, 8)  # the poll already waiting reads on from 4; the rewind applies before the next
    await consuming.poll(A, 8)
    assert consuming.offsets_handled(A) == [0, 1, 2, 3, 4, 5, 6, 7, *range(8)]
    assert consuming.broker.seeks == [(A, 0)]
    await consuming.outcome(2)  # read before the rewind: its records came again, so it commits nothing
    await consuming.outcome(3)
    assert consuming.broker.commits == [{A: 8}]


async def test_a_batch_read_before_a_rewind_is_not_committed_past_it(consuming: Consuming) -> None:
    await consuming.poll(A, 2)
    await consuming.poll(A, 1)  # handled while the first batch awaits its confirmation
    await consuming.outcome(0, ClusterFault("no broker"))
    await consuming.outcome(1)  # confirmed, but its records come again after the rewind: not committed
    assert consuming.broker.commits == []
    await consuming.poll(A, 1)  # read before the rewind applied
    await consuming.poll(A, 4)
    assert consuming.offsets_handled(A) == [0, 1, 2, 3, 0, 1, 2, 3]
    await consuming.outcome(2)
    await consuming.outcome(3)
    assert consuming.broker.seeks == [(A, 0)]
    assert consuming.broker.commits == [{A: 4}]


async def test_a_rewind_of_a_revoked_partition_neither_crashes_nor_stalls(consuming: Consuming) -> None:
    """The rewind's seek used to raise in the committing task (which died unwatched: a silent stall)."""
    await consuming.poll(A, 2)
    consuming.broker.assigned.discard(A)  # revoked while its batch awaits confirmation
    consuming.consumer.committer.forget([A])
    await consuming.outcome(0, ClusterFault("no broker"))
    for offset in range(4):  # more batches than the pipeline holds: each is handed over and committed
        await consuming.poll(B, 1)
        await consuming.outcome(1 + offset)
    assert not consuming.task.done()
    assert consuming.broker.seeks == []
    assert consuming.broker.commits == [{B: 1}, {B: 2}, {B: 3}, {B: 4}]


async def test_a_failed_send_rewinds_the_batch_in_hand(consuming: Consuming) -> None:
    consuming.sender.refuse_next = True
    await consuming.poll(A, 3)
    await consuming.poll(A, 3)
    assert consuming.offsets_handled(A) == [0, 1, 2]


async def test_records_read_across_a_rebalance_are_read_again(consuming: Consuming) -> None:
    """A poll that returns after a rebalance may hold records from positions the committer never saw."""
    await consuming.poll(A, 2)
    await consuming.outcome(0)
    consuming.broker.rebalance(consuming.consumer, [A])  # while the consumer waits in its poll
    await consuming.poll(A, 2)  # returned across the rebalance: put back
    await consuming.poll(A, 2)
    assert consuming.offsets_handled(A) == [0, 1, 2, 3]
    assert consuming.broker.seeks == [(A, 2)]


class Boom(BaseException):
    """Not a failure of the outputs: a bug that kills the committing task."""


async def test_a_dead_committing_task_fails_the_handover_instead_of_blocking_it() -> None:
    committer, broker = OffsetCommitter("test", 1, Backoff(0.0, 0.0)), FakeConsumer(1, 8)

    async def bug() -> None:
        raise Boom

    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    async with asyncio.timeout(30):  # a hang guard: before, the third hand-over waited for ever
        await committer.hand_over(Batch(broker, {A: Span(0, 1)}, 0, bug()))
        await committer.hand_over(Batch(broker, {A: Span(1, 2)}, 0, never))
        with pytest.raises(ServiceFault, match="committing task died"):
            await committer.hand_over(Batch(broker, {A: Span(2, 3)}, 0, never))
        await committer.close()  # returns: nothing waits on the dead task's queue
    assert isinstance(committer.failure, Boom)  # what the consumer's readiness and its next poll look at
    with pytest.raises(ServiceFault):
        committer.check_alive()
    assert broker.commits == []


async def test_after_close_nothing_is_committed_past_a_dead_tasks_batches() -> None:
    """A batch handed over after `close` is settled at once, but not past the batches the dead task never
    settled: it used to commit {A: 3} over the unconfirmed [1, 2)."""
    committer, broker = OffsetCommitter("test", 2, Backoff(0.0, 0.0)), FakeConsumer(1, 8)

    async def bug() -> None:
        raise Boom

    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    confirmed.set_result(None)
    await committer.hand_over(Batch(broker, {A: Span(0, 1)}, 0, bug()))
    await committer.hand_over(Batch(broker, {A: Span(1, 2)}, 0, never))
    await settle()
    await committer.close()
    with pytest.raises(ServiceFault, match="committing task died"):
        await committer.hand_over(Batch(broker, {A: Span(2, 3)}, 0, confirmed))
    assert broker.commits == []


async def test_a_committing_task_cancelled_by_anything_but_close_counts_as_dead() -> None:
    committer, broker = OffsetCommitter("test", 2, Backoff(0.0, 0.0)), FakeConsumer(1, 8)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    await committer.hand_over(Batch(broker, {A: Span(0, 1)}, 0, never))
    task = committer._task
    assert task is not None
    task.cancel()
    await settle()
    assert isinstance(committer.failure, asyncio.CancelledError)
    with pytest.raises(ServiceFault):
        await committer.hand_over(Batch(broker, {A: Span(1, 2)}, 0, never))


async def test_a_cancelled_confirmation_rewinds_its_batch(consuming: Consuming) -> None:
    await consuming.poll(A, 2)
    consuming.sender.pending[0][1].cancel()  # its publisher stopped
    await settle()
    await consuming.poll(A, 2)  # read before the rewind applied
    await consuming.poll(A, 2)
    assert consuming.offsets_handled(A) == [0, 1, 2, 3, 0, 1]
    assert not consuming.task.done()


async def test_depth_zero_commits_before_the_next_poll() -> None:
    running = Consuming(depth=0)
    await running.poll(A, 2)
    await running.outcome(0)
    assert running.broker.commits == [{A: 2}]
    await running.stop()


async def test_a_full_pipeline_makes_the_consumer_wait() -> None:
    running = Consuming(depth=1)
    for _ in range(4):
        await running.poll(A, 1)
    assert len(running.sender.pending) == 3  # one settling, one queued, one waiting for room: no fourth poll
    await running.outcome(0)
    assert len(running.sender.pending) == 4
    await running.stop()


async def test_a_batch_handed_over_while_closing_is_committed_after_the_queued_ones() -> None:
    broker, commits = FakeConsumer(1, 8), OffsetCommitter("test", 2, Backoff(0.0, 0.0))
    queued = asyncio.get_running_loop().create_future()
    await commits.hand_over(Batch(broker, {A: Span(0, 1)}, 0, queued))
    closing = asyncio.create_task(commits.close())
    await settle()

    async def fine() -> None:
        return None

    late = asyncio.create_task(commits.hand_over(Batch(broker, {A: Span(1, 2)}, 0, fine())))
    await settle()
    assert broker.commits == []  # the late batch waits for the queued one
    queued.set_result(None)
    await closing
    await late
    assert broker.commits == [{A: 1}, {A: 2}]
