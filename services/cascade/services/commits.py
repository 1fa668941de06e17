"""Committing a consumer's offsets after the outputs of its batches are confirmed, in order, off the hot path.

A consumer hands each batch over once its outputs are sent (`Batch.confirmed` completes when the cluster has
confirmed, replaced or dropped every one of them) and goes on to poll and handle the next batch. One task owns
the queue of handed-over batches and settles them strictly in the order they were handled, each only once its
outputs are confirmed, so a crash can redeliver records but never skip one (at-least-once).

The committer is the one owner of where each partition is read from. A batch whose outputs cannot be confirmed
(the cluster stays unreachable past the publisher's retry window) asks for its partitions to be read again from
its first records; the consumer applies those rewinds before its next poll (`apply_rewinds`), and only ever
moves a position back (two failed batches rewind to the earlier one). A rebalance (`forget`) drops the pending
rewinds of the partitions that moved: their positions come from the group's committed offsets.

Every rewind and rebalance is an event at a point in the partition. A batch read before an event whose point is
at or before the batch's first record is *covered*: its records come again, so it is neither committed (a commit
could jump over records the event sent back for) nor rewound when it fails. Batches are read in order, so an
event older than the batch being settled can never cover a later one and is forgotten.

`depth` bounds the batches awaiting confirmation; the consumer waits for room (backpressure). Depth 0 confirms
and commits each batch before the consumer polls again (the unpipelined behaviour). If the committing task dies,
`hand_over` raises instead of waiting for room that never comes, and `close` does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from aiokafka import TopicPartition

from cascade.services.faults import Backoff, ServiceFault
from cascade.services.messaging import RawRecord

__all__ = ["Batch", "Committable", "OffsetCommitter", "Seekable", "Span", "spans_of"]

log = structlog.get_logger(__name__)


class Committable(Protocol):
    """The part of aiokafka's consumer the committing task uses."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


class Seekable(Protocol):
    """The part of aiokafka's consumer that rewinds use (only the consuming task calls it)."""

    def assignment(self) -> set[TopicPartition]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


@dataclass(frozen=True)
class Span:
    """A batch's records in one partition: the first offset (where a rewind goes back to) and the offset after
    its last record (what a commit records)."""

    first: int
    after: int


def spans_of(records: Sequence[RawRecord]) -> dict[TopicPartition, Span]:
    found: dict[TopicPartition, Span] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        span = found.get(partition)
        found[partition] = (Span(record.offset, record.offset + 1) if span is None else
                            Span(min(span.first, record.offset), max(span.after, record.offset + 1)))
    return found


@dataclass(frozen=True)
class Batch:
    """A handled batch: where its records lie, when they were read (`OffsetCommitter.read_at`), and its outputs'
    confirmation."""

    consumer: Committable
    spans: dict[TopicPartition, Span]
    read_at: int
    confirmed: Awaitable[None]


async def _outcome(confirmed: Awaitable[None]) -> BaseException | None:
    """Why `confirmed` failed, or None. A confirmation cancelled (its publisher stopped) counts as failed."""
    future = asyncio.ensure_future(confirmed)
    await asyncio.wait({future})
    if future.cancelled():
        return asyncio.CancelledError("the confirmation was cancelled")
    error = future.exception()
    if error is not None and not isinstance(error, Exception):
        raise error  # not a failure of the outputs: a bug or an exit, which the process must see
    return error


@dataclass(frozen=True)
class _Event:
    """A rewind to `point`, or a rebalance (point -1: everything read before it comes again)."""

    clock: int
    point: int


class OffsetCommitter:
    """Commits handed-over batches in order once confirmed; owns rewinds and their coverage (module docstring)."""

    def __init__(self, name: str, depth: int, backoff: Backoff) -> None:
        self._name = name
        self._backoff = backoff
        self._queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=max(depth, 1))
        self._inline = depth == 0
        self._clock = 0
        self._events: dict[TopicPartition, list[_Event]] = {}
        self._rewinds: dict[TopicPartition, int] = {}
        """Positions to seek to before the next poll: the earliest asked for per partition."""
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def read_at(self) -> int:
        """The clock to stamp on records read now (after `apply_rewinds`): later events may cover them."""
        return self._clock

    async def hand_over(self, batch: Batch) -> None:
        """Queue `batch` for its commit (waiting for room); with depth 0 or after `close`, settle it now.
        Raises ServiceFault if the committing task died (the process must restart; nothing is committed)."""
        if self._inline:
            await self._drained()  # batches handed over before `close` are settled first
            self.check_alive()  # a dead task's batches were never settled: nothing after them may be committed
            await self._settle(batch)
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"commit:{self._name}")
        self.check_alive()
        put = asyncio.ensure_future(self._queue.put(batch))
        await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            self.check_alive()

    def rewind(self, spans: Mapping[TopicPartition, Span], read_at: int) -> None:
        """Read a batch's partitions again from its first records, unless an event since it was read covers it."""
        for partition, span in spans.items():
            if self._covered(partition, span, read_at):
                continue
            self._clock += 1
            self._events.setdefault(partition, []).append(_Event(self._clock, span.first))
            self._rewinds[partition] = min(self._rewinds.get(partition, span.first), span.first)

    def apply_rewinds(self, consumer: Seekable) -> None:
        """Seek the partitions rewound since the last poll (called by the consuming task before it polls)."""
        assigned = consumer.assignment()
        for partition, offset in self._rewinds.items():
            if partition in assigned:  # a partition revoked since is read from the group's committed offset
                consumer.seek(partition, offset)
                log.info("consumer.rewound", consumer=self._name, partition=str(partition), offset=offset)
        self._rewinds.clear()

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked or newly assigned: their positions now come from the group's committed offsets,
        so whatever was read from them before is read again (by this member or another)."""
        self._clock += 1
        for partition in partitions:
            self._rewinds.pop(partition, None)
            self._events[partition] = [_Event(self._clock, -1)]

    def moved_since(self, clock: int, partition: TopicPartition) -> bool:
        """True if a rebalance after `clock` (a `read_at`) moved `partition`: records read across it must be read
        again, since the committer has not seen where they start. (Events after `clock` are never pruned yet.)"""
        return any(event.point < 0 and event.clock > clock for event in self._events.get(partition, ()))

    async def close(self) -> None:
        """Settle every batch handed over so far; later ones are settled as they are handed over."""
        self._inline = True
        if self._task is not None and not self._task.done():
            self._closed = True
            await self._drained()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def failure(self) -> BaseException | None:
        """Why the committing task died, if it did (the consumer is then not ready); cancelled by anything but
        `close`, it died too."""
        if self._task is None or not self._task.done():
            return None
        if self._task.cancelled():
            return None if self._closed else asyncio.CancelledError("the committing task was cancelled")
        return self._task.exception()

    async def _drained(self) -> None:
        """Until the queue is settled, or the committing task is dead (its batches will be delivered again)."""
        if self._task is None or self._task.done():
            return
        join = asyncio.ensure_future(self._queue.join())
        await asyncio.wait({join, self._task}, return_when=asyncio.FIRST_COMPLETED)
        join.cancel()

    def check_alive(self) -> None:
        """Raise ServiceFault if the committing task died."""
        if self.failure is not None:
            raise ServiceFault(f"{self._name}: the committing task died: {self.failure!r}") from self.failure

    async def _run(self) -> None:
        while True:
            batch = await self._queue.get()
            try:
                await self._settle(batch)
            finally:
                self._queue.task_done()

    async def _settle(self, batch: Batch) -> None:
        if (error := await _outcome(batch.confirmed)) is not None:
            await self._backoff.wait(f"{self._name}: outputs unconfirmed, rewinding the batch", error)
            self.rewind(batch.spans, batch.read_at)
            self._prune(batch)
            return
        self._backoff.reset()
        offsets = {partition: span.after for partition, span in batch.spans.items()
                   if not self._covered(partition, span, batch.read_at)}
        self._prune(batch)
        if not offsets:
            return
        try:
            await batch.consumer.commit(offsets)
        except Exception as exc:  # a rebalance or a lost coordinator: the next commit covers these records
            log.warning("commit.failed", consumer=self._name, error=repr(exc),
                        consequence="records after the last commit may be delivered again")

    def _covered(self, partition: TopicPartition, span: Span, read_at: int) -> bool:
        """True if a rewind or rebalance after `read_at` sends the consumer back to or before `span`."""
        return any(event.clock > read_at and event.point <= span.first
                   for event in self._events.get(partition, ()))

    def _prune(self, batch: Batch) -> None:
        """Batches settle in the order they were read: events before this one's reading cover no later batch."""
        for partition in batch.spans:
            events = self._events.get(partition)
            if events is not None:
                kept = [event for event in events if event.clock > batch.read_at]
                if kept:
                    self._events[partition] = kept
                else:
                    del self._events[partition]
