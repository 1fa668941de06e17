"""Committing a consumer's offsets after the outputs of its batches are confirmed, in order, off the hot path.

A consumer hands each batch over once its outputs are sent (`Batch.confirmed` completes when the cluster has
confirmed, replaced or dropped every one of them) and goes on to poll and handle the next batch. One task owns
the queue of handed-over batches and commits them strictly in the order they were handled, each only once its
outputs are confirmed, so a crash can redeliver records but never skip one (at-least-once).

If a batch's outputs cannot be confirmed (the cluster stays unreachable past the publisher's retry window), its
partitions are rewound to the batch's first records after a capped backoff. Batches handled meanwhile from
those partitions lie beyond the rewind point: they are not committed for those partitions (their records come
again), so a later commit can never jump over the rewound records.

`depth` bounds the batches awaiting confirmation; the consumer waits for room (backpressure). Depth 0 confirms
and commits each batch before the consumer polls again (the unpipelined behaviour).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from aiokafka import TopicPartition

from services.faults import Backoff
from services.messaging import RawRecord

__all__ = ["Batch", "OffsetCommitter", "Rewinder", "first_offsets"]

log = structlog.get_logger(__name__)


class Rewinder(Protocol):
    """The part of aiokafka's consumer the committer uses."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


@dataclass(frozen=True)
class Batch:
    """A handled batch: the offsets it spans per partition, and its outputs' confirmation."""

    consumer: Rewinder
    first: dict[TopicPartition, int]
    """The first offset of its records in each partition (where a rewind goes back to)."""
    after: dict[TopicPartition, int]
    """The offset after its last record in each partition (what a commit records)."""
    confirmed: Awaitable[None]

    @classmethod
    def of(cls, consumer: Rewinder, records: Sequence[RawRecord], confirmed: Awaitable[None]) -> Batch:
        return cls(consumer, first_offsets(records), {
            partition: max(offset + 1 for offset in offsets) for partition, offsets in _by_partition(records).items()
        }, confirmed)


def first_offsets(records: Sequence[RawRecord]) -> dict[TopicPartition, int]:
    return {partition: min(offsets) for partition, offsets in _by_partition(records).items()}


def _by_partition(records: Sequence[RawRecord]) -> dict[TopicPartition, list[int]]:
    found: dict[TopicPartition, list[int]] = {}
    for record in records:
        found.setdefault(TopicPartition(record.topic, record.partition), []).append(record.offset)
    return found


class OffsetCommitter:
    """Commits handed-over batches in order once confirmed; rewinds a batch whose outputs fail (module docstring)."""

    def __init__(self, name: str, depth: int, backoff: Backoff) -> None:
        self._name = name
        self._backoff = backoff
        self._queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=max(depth, 1))
        self._inline = depth == 0
        self._rewound: dict[TopicPartition, int] = {}
        """Partitions rewound, and to where: until records from there come again, later ones are not committed."""
        self._task: asyncio.Task[None] | None = None

    async def hand_over(self, batch: Batch) -> None:
        """Queue `batch` for its commit (waiting for room); with depth 0 or after `close`, commit it now."""
        if self._inline:
            await self._queue.join()  # batches handed over before `close` are committed first
            await self._settle(batch)
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"commit:{self._name}")
        await self._queue.put(batch)

    def rewind(self, consumer: Rewinder, first: Mapping[TopicPartition, int]) -> None:
        """Go back to a batch's first records (`first_offsets`): they are delivered again."""
        for partition, offset in first.items():
            consumer.seek(partition, offset)
            self._rewound[partition] = offset

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked or newly assigned: their positions now come from the group's committed offsets."""
        for partition in partitions:
            self._rewound.pop(partition, None)

    async def close(self) -> None:
        """Commit every batch handed over so far; later ones are committed as they are handed over."""
        self._inline = True
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            batch = await self._queue.get()
            try:
                await self._settle(batch)
            finally:
                self._queue.task_done()

    async def _settle(self, batch: Batch) -> None:
        try:
            await batch.confirmed
        except Exception as exc:
            await self._backoff.wait(f"{self._name}: outputs unconfirmed, rewinding the batch", exc)
            self.rewind(batch.consumer, batch.first)
            return
        self._backoff.reset()
        offsets = {partition: after for partition, after in batch.after.items() if self._follows(batch, partition)}
        if not offsets:
            return
        try:
            await batch.consumer.commit(offsets)
        except Exception as exc:  # a rebalance or a lost coordinator: the next commit covers these records
            log.warning("commit.failed", consumer=self._name, error=repr(exc),
                        consequence="records after the last commit may be delivered again")

    def _follows(self, batch: Batch, partition: TopicPartition) -> bool:
        """False if `partition` was rewound to before this batch's records (they come again, later)."""
        rewound_to = self._rewound.get(partition)
        if rewound_to is None:
            return True
        if batch.first[partition] > rewound_to:
            return False
        del self._rewound[partition]  # the rewound records are back
        return True
