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
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts import ContractError, SearchResult, decode

__all__ = ["ReplyRouter", "ResultStream"]

log = structlog.get_logger(__name__)
_RETENTION_MS = 3_600_000
_REMEMBERED = 100_000


class ResultStream:
    """An async iterator over results as they arrive. Unlike an async generator, a cancelled `anext`
    (a timeout while waiting) leaves it open. It ends when its client closes; `close()` unsubscribes."""

    def __init__(self, subscribers: list[asyncio.Queue[SearchResult | None]]) -> None:
        self._subscribers = subscribers
        self._queue: asyncio.Queue[SearchResult | None] = asyncio.Queue()
        subscribers.append(self._queue)

    def __aiter__(self) -> ResultStream:
        return self

    async def __anext__(self) -> SearchResult:
        result = await self._queue.get()
        if result is None:
            self.close()
            raise StopAsyncIteration
        return result

    def close(self) -> None:
        if self._queue in self._subscribers:
            self._subscribers.remove(self._queue)


class ReplyRouter:
    def __init__(self, topic: str, **kafka_options: Any) -> None:
        self.topic = topic
        self._kafka_options = kafka_options
        self._consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka_options)
        self._waiting: dict[str, asyncio.Future[SearchResult]] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._streams: list[asyncio.Queue[SearchResult | None]] = []
        self._task: asyncio.Task[None] | None = None
        self.duplicates_dropped = 0

    async def _admin(self) -> AIOKafkaAdminClient:
        options = {key: value for key, value in self._kafka_options.items() if key != "client_id"}
        admin = AIOKafkaAdminClient(**options)
        await admin.start()
        return admin

    async def start(self) -> None:
        admin = await self._admin()
        try:
            await admin.create_topics([NewTopic(self.topic, 1, 1, topic_configs={"retention.ms": str(_RETENTION_MS)})])
        finally:
            await admin.close()
        await self._consumer.start()
        partition = TopicPartition(self.topic, 0)
        self._consumer.assign([partition])
        await self._consumer.seek_to_beginning(partition)
        self._task = asyncio.create_task(self._route(), name=f"replies:{self.topic}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()
        for future in self._waiting.values():
            future.cancel()
        for queue in self._streams:
            queue.put_nowait(None)  # ends every open stream
        admin = await self._admin()
        try:
            await admin.delete_topics([self.topic])
        except Exception as exc:  # best effort: retention removes it anyway
            log.warning("sdk.reply_topic_not_deleted", topic=self.topic, error=repr(exc))
        finally:
            await admin.close()

    def expect(self, request_id: str) -> asyncio.Future[SearchResult]:
        future: asyncio.Future[SearchResult] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        return future

    def forget(self, request_id: str) -> None:
        self._waiting.pop(request_id, None)

    def stream(self) -> ResultStream:
        """Results from now on; the subscription starts at this call, not at the first iteration."""
        return ResultStream(self._streams)

    async def _route(self) -> None:
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
            for queue in self._streams:
                queue.put_nowait(result)
