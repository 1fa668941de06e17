"""Waiting for the ingest service's answers: per-document acks, and a reindex's outcome."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from cascade.contracts import ContractError, IngestAck, Message, ReindexStatus, decode
from cascade.contracts.topic_admin import admin_client, partition_counts

__all__ = ["AckWaiter", "IngestRejected", "ReindexFailed", "ReindexWaiter"]

M = TypeVar("M", bound=Message)


class IngestRejected(Exception):
    """Some documents were rejected by the ingest service; `acks` holds every ack, `rejected` the bad ones."""

    def __init__(self, acks: list[IngestAck]) -> None:
        self.acks = acks
        self.rejected = [ack for ack in acks if ack.status == "rejected"]
        listed = "; ".join(f"{ack.doc_id}: {ack.error}" for ack in self.rejected[:10])
        more = f" (and {len(self.rejected) - 10} more)" if len(self.rejected) > 10 else ""
        super().__init__(f"{len(self.rejected)} document(s) rejected: {listed}{more}")


def _identity(ack: IngestAck, remaining: dict[tuple[str, str], int]) -> tuple[str, str] | None:
    """Which awaited document an ack answers; a rejected event's ack names only the record key (doc id)."""
    if ack.collection is not None:
        identity = (ack.collection, ack.doc_id or "")
        return identity if identity in remaining else None
    return next((identity for identity in remaining if identity[1] == ack.doc_id), None)


class ReindexFailed(Exception):
    def __init__(self, status: ReindexStatus) -> None:
        super().__init__(f"reindex of {status.collection!r} failed: {status.error}")
        self.status = status


class _TopicTail:
    """Reads a topic from its end at `start()`, so only answers to what is published afterwards count."""

    def __init__(self, topic: str, **kafka_options: Any) -> None:
        self._topic = topic
        self._kafka_options = kafka_options
        self._consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka_options)

    async def start(self) -> None:
        """Raises what the cluster raises, having closed the consumer (a client retrying through an outage
        would otherwise leave one open a try)."""
        try:
            await self._consumer.start()
            async with admin_client(**self._kafka_options) as admin:
                partitions = range((await partition_counts(admin, [self._topic])).get(self._topic, 0))
            if not partitions:
                raise LookupError(f"topic {self._topic!r} does not exist: provision the topics (`cascade topics`)")
            assigned = [TopicPartition(self._topic, p) for p in partitions]
            self._consumer.assign(assigned)
            await self._consumer.seek_to_end(*assigned)
            for partition in assigned:  # pin the positions now: seek_to_end is lazy
                await self._consumer.position(partition)
        except BaseException:
            with contextlib.suppress(Exception):  # the reason it could not start is what the caller needs
                await self._consumer.stop()
            raise

    async def messages(self, model: type[M]) -> AsyncGenerator[M, None]:
        """Each message of `model` read from the topic, in order, skipping records that are not one."""
        while True:
            for records in (await self._consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    try:
                        message = decode(record.value or b"", model)
                    except ContractError:
                        continue
                    yield message

    async def stop(self) -> None:
        await self._consumer.stop()


class AckWaiter(_TopicTail):
    async def wait(
        self, expected: dict[tuple[str, str], int], timeout_s: float,
        progress: Callable[[int], None] | None = None,
    ) -> list[IngestAck]:
        """Collect acks until each (collection, doc id) has as many as events were sent for it."""
        remaining = dict(expected)
        acks: list[IngestAck] = []
        if not remaining:
            return acks
        async with asyncio.timeout(timeout_s), contextlib.aclosing(self.messages(IngestAck)) as messages:
            async for ack in messages:
                identity = _identity(ack, remaining)
                if identity is None:
                    continue
                remaining[identity] -= 1
                if not remaining[identity]:
                    del remaining[identity]
                acks.append(ack)
                if progress:
                    progress(1)
                if not remaining:
                    return acks
        raise AssertionError("unreachable: the loop returns or times out")


class ReindexWaiter(_TopicTail):
    async def wait(self, request_id: str, timeout_s: float,
                   progress: Callable[[ReindexStatus], None] | None = None) -> ReindexStatus:
        """The request's final status (switched), each status passed to `progress`; raises ReindexFailed."""
        async with asyncio.timeout(timeout_s), contextlib.aclosing(self.messages(ReindexStatus)) as statuses:
            async for status in statuses:
                if status.request_id != request_id:
                    continue
                if progress:
                    progress(status)
                if status.state == "failed":
                    raise ReindexFailed(status)
                if status.state == "switched":
                    return status
        raise AssertionError("unreachable: the loop returns, raises or times out")
