"""Request/reply over Kafka: each client owns a reply topic, and one background task routes what arrives.

Why a topic per client: every result a service publishes goes to the requester's `reply_to`, so a client
reads only its own answers however many clients share the cluster (reading a shared results topic would
cost every client every other client's traffic). The topic is created at start with one partition and a
short retention, and deleted at close; a crashed client's topic expires with its retention.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from cascade.contracts import ContractError, SearchResult, decode
from cascade.contracts.topic_admin import TopicToCreate, admin_client, create_topics

__all__ = ["ReplyRouter", "ReplyRouterFailed", "ResultStream", "ResultStreamOverflow"]

log = structlog.get_logger(__name__)
_RETENTION_MS = 3_600_000
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
    def __init__(self, topic: str, stream_buffer: int = 10_000, **kafka_options: Any) -> None:
        self.topic = topic
        self._stream_buffer = stream_buffer
        self.failure: ReplyRouterFailed | None = None
        self._kafka_options = kafka_options
        self._consumer: AIOKafkaConsumer | None = None  # made in `start`: a client that never starts leaks nothing
        self._waiting: dict[str, asyncio.Future[SearchResult]] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._streams: list[ResultStream] = []
        self._task: asyncio.Task[None] | None = None
        self.duplicates_dropped = 0

    async def start(self) -> None:
        async with admin_client(**self._kafka_options) as admin:
            await create_topics(admin, [TopicToCreate(self.topic, 1, {"retention.ms": str(_RETENTION_MS)})])
        self._consumer = AIOKafkaConsumer(enable_auto_commit=False, **self._kafka_options)
        await self._consumer.start()
        partition = TopicPartition(self.topic, 0)
        self._consumer.assign([partition])
        await self._consumer.seek_to_beginning(partition)
        self._task = asyncio.create_task(self._route(), name=f"replies:{self.topic}")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """If routing dies, every waiting call and stream fails at once with the cause, and so do later ones."""
        if task.cancelled():
            return
        cause = task.exception() or RuntimeError("the reply consumer stopped")
        log.error("sdk.reply_router_died", topic=self.topic, error=repr(cause))
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
        try:
            async with admin_client(**self._kafka_options) as admin:
                await admin.delete_topics([self.topic])
        except Exception as exc:  # best effort: retention removes it anyway
            log.warning("sdk.reply_topic_not_deleted", topic=self.topic, error=repr(exc))

    def expect(self, request_id: str) -> asyncio.Future[SearchResult]:
        if self.failure is not None:
            raise self.failure
        future: asyncio.Future[SearchResult] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        return future

    def forget(self, request_id: str) -> None:
        self._waiting.pop(request_id, None)

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
            self._answered[result.request_id] = None
            if len(self._answered) > _REMEMBERED:
                self._answered.popitem(last=False)
            future = self._waiting.pop(result.request_id, None)
            if future is not None and not future.done():
                future.set_result(result)
            for stream in list(self._streams):
                stream.offer(result)
