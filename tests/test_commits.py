"""The offset committer: in order, only after confirmation, never past a rewind (the Kafka path is covered by
test_graceful_shutdown, test_broker_restart and test_ingest_crash, which run consumers through it)."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from services.commits import Batch, OffsetCommitter
from services.faults import Backoff, ClusterFault
from services.messaging import RawRecord

A = TopicPartition("queries", 0)
B = TopicPartition("queries", 1)


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))


def records(partition: TopicPartition, *offsets: int) -> list[RawRecord]:
    return [RawRecord(partition.topic, partition.partition, offset, None, b"{}") for offset in offsets]


def committer(depth: int = 2) -> OffsetCommitter:
    return OffsetCommitter("test", depth, Backoff(0.001, 0.01))


async def test_batches_are_committed_in_order_once_confirmed() -> None:
    consumer, commits = FakeConsumer(), committer()
    first, second = asyncio.get_running_loop().create_future(), asyncio.get_running_loop().create_future()
    await commits.hand_over(Batch.of(consumer, records(A, 0, 1, 2), first))
    await commits.hand_over(Batch.of(consumer, records(A, 3, 4) + records(B, 7), second))
    second.set_result(None)  # the later batch is confirmed first: nothing may be committed yet
    await asyncio.sleep(0.01)
    assert consumer.commits == []
    first.set_result(None)
    await commits.close()
    assert consumer.commits == [{A: 3}, {A: 5, B: 8}]


async def test_an_unconfirmed_batch_is_rewound_and_nothing_after_it_is_committed_past_it() -> None:
    consumer, commits = FakeConsumer(), committer()

    async def unreachable() -> None:
        raise ClusterFault("no broker")

    async def fine() -> None:
        return None

    await commits.hand_over(Batch.of(consumer, records(A, 10, 11), unreachable()))
    await commits.hand_over(Batch.of(consumer, records(A, 12) + records(B, 3), fine()))  # handled meanwhile
    await commits.hand_over(Batch.of(consumer, records(A, 10, 11, 12), fine()))  # redelivered after the rewind
    await commits.close()
    assert consumer.seeks == [(A, 10)]
    assert consumer.commits == [{B: 4}, {A: 13}]  # A's 12 only once 10 and 11 came again


async def test_depth_zero_commits_before_handing_over_returns() -> None:
    consumer, commits = FakeConsumer(), committer(depth=0)

    async def fine() -> None:
        return None

    await commits.hand_over(Batch.of(consumer, records(A, 0), fine()))
    assert consumer.commits == [{A: 1}]


async def test_a_full_pipeline_makes_the_consumer_wait() -> None:
    consumer, commits = FakeConsumer(), committer(depth=1)
    confirmations = [asyncio.get_running_loop().create_future() for _ in range(3)]
    for offset, confirmed in enumerate(confirmations[:2]):
        await commits.hand_over(Batch.of(consumer, records(A, offset), confirmed))
    third = asyncio.create_task(commits.hand_over(Batch.of(consumer, records(A, 2), confirmations[2])))
    await asyncio.sleep(0.01)
    assert not third.done()  # one batch settling, one queued: the third waits for room
    for confirmed in confirmations:
        confirmed.set_result(None)
    await third
    await commits.close()
    assert consumer.commits == [{A: 1}, {A: 2}, {A: 3}]


async def test_a_batch_handed_over_while_closing_is_committed_after_the_queued_ones() -> None:
    consumer, commits = FakeConsumer(), committer()
    queued = asyncio.get_running_loop().create_future()
    await commits.hand_over(Batch.of(consumer, records(A, 0), queued))
    closing = asyncio.create_task(commits.close())
    await asyncio.sleep(0.01)

    async def fine() -> None:
        return None

    late = asyncio.create_task(commits.hand_over(Batch.of(consumer, records(A, 1), fine())))
    await asyncio.sleep(0.01)
    assert consumer.commits == []  # the late batch waits for the queued one
    queued.set_result(None)
    await closing
    await late
    assert consumer.commits == [{A: 1}, {A: 2}]
