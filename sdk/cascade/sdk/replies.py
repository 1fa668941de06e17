"""Request/reply over Kafka on one shared, partitioned replies topic (the pattern of Spring Kafka's
ReplyingKafkaTemplate), and one background task that routes what arrives.

Each client picks a partition of the replies topic at start and reads it without a consumer group; its requests
name the topic in `reply_to` and the partition in `reply_partition`, so it reads a share of all answers
(1/partitions), not all of them. Answers to requests it did not send (other clients on the same partition) are
dropped. Nothing is created or deleted per client: a client that goes away costs the cluster nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import OrderedDict
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError, UnknownTopicOrPartitionError

from cascade.contracts import ContractError, SearchResult, decode

__all__ = ["ReplyRouter", "ReplyRouterFailed", "ResultStream", "ResultStreamOverflow"]

log = structlog.get_logger(__name__)
_REMEMBERED = 100_000


class ReplyRouterFailed(RuntimeError):
    """The client's reply consumer died: no result can arrive any more (the cause is attached)."""


class ResultStreamOverflow(RuntimeError):
    """A result stream fell more than its buffer behind: results were dropped, so the stream ends with this."""


class ResultStream:
    """An async iterator over results as they arrive. Unlike an async generator, a cancelled `anext`
    (a timeout while waiting) leaves it open. It ends when its client closes; `close()` unsubscribes.

    It buffers at most `buffer` results: a reader that falls further behind gets ResultStreamOverflow
    (after the buffered ones) instead of the client's memory growing without bound."""

    def __init__(self, subscribers: list[ResultStream], buffer: int) -> None:
        self._subscribers = subscribers
        self._queue: asyncio.Queue[SearchResult | BaseException | None] = asyncio.Queue()
        self._buffer = buffer
        self._ended = False
        subscribers.append(self)

    def __aiter__(self) -> ResultStream:
        return self

    async def __anext__(self) -> SearchResult:
        item = await self._queue.get()
        if isinstance(item, SearchResult):
            return item
        self.close()
        if item is None:
            raise StopAsyncIteration
        raise item

    def offer(self, result: SearchResult) -> None:
        if self._queue.qsize() < self._buffer:
            self._queue.put_nowait(result)
        else:
            self.end(ResultStreamOverflow(f"the stream fell more than {self._buffer} results behind; "
                                          "later results were dropped"))

    def end(self, error: BaseException | None = None) -> None:
        """No more results: the reader gets StopAsyncIteration, or `error`, after what is buffered."""
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(error)
            self.close()

    def close(self) -> None:
        if self in self._subscribers:
            self._subscribers.remove(self)


class ReplyRouter:
    """Reads one partition of the shared replies topic and hands each answer to the call or streams that wait
    for it; see the module docstring."""

    def __init__(self, topic: str, stream_buffer: int = 10_000, **kafka_options: Any) -> None:
        self.topic = topic
        self.partition: int | None = None
        """The partition this client reads, chosen at `start`; requests name it in reply_partition."""
        self._stream_buffer = stream_buffer
        self.failure: ReplyRouterFailed | None = None
        self._kafka_options = kafka_options
        self._consumer: AIOKafkaConsumer | None = None  # made in `start`: a client that never starts leaks nothing
        self._asked: set[str] = set()
        self._waiting: dict[str, asyncio.Future[SearchResult]] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._streams: list[ResultStream] = []
        self._task: asyncio.Task[None] | None = None
        self.duplicates_dropped = 0
        self.others_dropped = 0
        """Answers on this partition to other clients' requests."""

    async def start(self) -> None:
        """Pick a partition at random, and read it from its end: answers to this client's requests can only come
        after it starts. Creates nothing on the cluster."""
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **self._kafka_options)
        await consumer.start()
        try:
            partitions = await _partitions(consumer, self.topic)
            partition = TopicPartition(self.topic, random.choice(sorted(partitions)))
            consumer.assign([partition])
            end = (await consumer.end_offsets([partition]))[partition]
            consumer.seek(partition, end)  # a fixed position before any request: no answer can slip past
        except BaseException:
            await consumer.stop()
            raise
        self._consumer, self.partition = consumer, partition.partition
        self._task = asyncio.create_task(self._route(), name=f"replies:{self.topic}[{self.partition}]")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """If routing dies, every waiting call and stream fails at once with the cause, and so do later ones."""
        if task.cancelled():
            return
        cause = task.exception() or RuntimeError("the reply consumer stopped")
        log.error("sdk.reply_router_died", topic=self.topic, partition=self.partition, error=repr(cause))
        self.failure = ReplyRouterFailed(f"the reply consumer of {self.topic!r} died: {cause!r}")
        self.failure.__cause__ = cause
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(self.failure)
        for stream in list(self._streams):
            stream.end(self.failure)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a death was reported by `_ended`
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        for future in self._waiting.values():
            future.cancel()
        for stream in list(self._streams):
            stream.end()

    def asked(self, request_id: str) -> None:
        """A request this client sent: its answer reaches the streams (answers to other requests are dropped)."""
        if self.failure is not None:
            raise self.failure
        self._asked.add(request_id)

    def expect(self, request_id: str) -> asyncio.Future[SearchResult]:
        """A request this client sent and waits for: the future gets its answer."""
        self.asked(request_id)
        future: asyncio.Future[SearchResult] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        return future

    def forget(self, request_id: str) -> None:
        """No more waiting for `request_id` (a timeout): a late answer is dropped."""
        self._waiting.pop(request_id, None)
        self._asked.discard(request_id)

    def stream(self) -> ResultStream:
        """Results from now on; the subscription starts at this call, not at the first iteration."""
        if self.failure is not None:
            raise self.failure
        return ResultStream(self._streams, self._stream_buffer)

    async def _route(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            try:
                result = decode(record.value or b"", SearchResult)
            except ContractError as exc:
                log.warning("sdk.unreadable_reply", topic=self.topic, offset=record.offset, error=str(exc))
                continue
            if result.request_id in self._answered:  # at-least-once delivery: the same answer twice
                self.duplicates_dropped += 1
                continue
            if result.request_id not in self._asked:  # another client's, on the partition it shares with this one
                self.others_dropped += 1
                continue
            self._asked.discard(result.request_id)
            self._answered[result.request_id] = None
            if len(self._answered) > _REMEMBERED:
                self._answered.popitem(last=False)
            future = self._waiting.pop(result.request_id, None)
            if future is not None and not future.done():
                future.set_result(result)
            for stream in list(self._streams):
                stream.offer(result)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of `topic`; raises TopicAuthorizationFailedError if this login may not see it, and
    UnknownTopicOrPartitionError if it does not exist (not provisioned)."""
    await consumer._client.add_topic(topic)  # aiokafka has no public metadata call for an unassigned topic
    if topic in consumer._client.cluster.unauthorized_topics:
        raise TopicAuthorizationFailedError(f"this login may not read {topic!r}")
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise UnknownTopicOrPartitionError(f"{topic!r} does not exist: provision the topics first "
                                           "(`cascade topics create`)")
    return set(partitions)
