"""Publishing a batch's outputs so that no single message can hold the partition its batch came from.

Every message is encoded and checked against the contract's size limit (`MAX_MESSAGE_BYTES`, below the
producer's `max_request_size`) before it is sent. A message refused for its own sake (too large, an invalid
topic) is replaced by its fallback (`Outgoing.instead`: an error result and a dead letter). Only faults of the
cluster are retried, message by message, with capped exponential backoff, for at most `publish_retry_s`; after
that the batch is rewound by its consumer (at-least-once, never lost). Every topic written to is provisioned and
never deleted (answers go to the namespace's results or replies topic), so no write waits on a topic that went
away.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.protocol.metadata import MetadataRequest
from pydantic import BaseModel

from cascade.contracts import encode
from cascade.contracts.limits import MAX_MESSAGE_BYTES
from cascade.services.faults import ClusterFault, is_transient
from cascade.services.settings import KafkaSettings

__all__ = ["MessageTooLarge", "Outgoing", "Publisher", "is_too_large"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: str | None
    message: BaseModel
    instead: Callable[[BaseException], Sequence[Outgoing]] | None = None
    """What to publish in its place, given why, if the cluster or the size limit refuses this message."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers beside the content type: the trace context (`traceparent`: the next hop's spans become children of
    this service's span), or the kind of an internal record."""
    partition: int | None = None
    """The partition the reader reads (an answer on the replies topic); None: chosen by the key."""


_JSON = [("content-type", b"application/json")]


class MessageTooLarge(ValueError):
    def __init__(self, out: Outgoing, size: int) -> None:
        super().__init__(f"{type(out.message).__name__} for {out.topic!r} encodes to {size} bytes, more than "
                         f"the message limit of {MAX_MESSAGE_BYTES}")


def is_too_large(error: BaseException) -> bool:
    return isinstance(error, MessageSizeTooLargeError | RecordTooLargeError)


class Publisher:
    """Publishes outputs through its producer; see the module docstring for what happens on failure."""

    def __init__(self, settings: KafkaSettings, on_published: Callable[[Outgoing], None] | None = None) -> None:
        self._on_published = on_published
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self.counts: Counter[str] = Counter()
        """published, refused, retried."""

    async def start(self) -> None:
        """Connect the producer (raises what the cluster raises: the caller retries)."""
        settings = self._settings
        producer = AIOKafkaProducer(
            acks="all", enable_idempotence=True, max_request_size=MAX_MESSAGE_BYTES + 64 * 1024,
            linger_ms=settings.linger_ms, **settings.client_options())
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def close(self) -> None:
        """Flush what is queued, then disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def metadata_topics(self) -> int:
        """The topics whose metadata the producer holds (and refreshes): the topics it wrote to."""
        return 0 if self._producer is None else len(self._producer.client.cluster.topics())

    async def ping(self, timeout_s: float) -> bool:
        """True if the cluster answers a metadata request naming no topic (cheap) within `timeout_s` (readiness)."""
        client = None if self._producer is None else self._producer.client
        node = None if client is None else client.get_random_node()
        if client is None or node is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await client.send(node, MetadataRequest([], allow_auto_topic_creation=False))
        except (TimeoutError, KafkaError):
            return False
        return True

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Return once each message is confirmed, replaced by its fallback or dropped; raise ClusterFault if the
        cluster stays unreachable for longer than `publish_retry_s`."""
        await (await self.send(messages))

    async def send(self, messages: Sequence[Outgoing]) -> asyncio.Task[None]:
        """Send `messages` in order now; the task returned completes as `publish` returns (or raises as it
        does), so the caller can go on while the cluster confirms."""
        sent, failures = await self._send(messages)
        return asyncio.create_task(self._settle(sent, failures), name="publish.confirm")

    async def _settle(self, sent: list[tuple[Outgoing, asyncio.Future[Any]]],
                      failures: list[tuple[Outgoing, BaseException]]) -> None:
        backoff = self._settings.retry_backoff()
        give_up_at = time.monotonic() + self._settings.publish_retry_s
        while True:
            failures += await self._confirm(sent)
            if not failures:
                return
            pending, faults = [], []
            for out, error in failures:
                if is_transient(error):
                    faults.append((out, error))
                else:
                    pending += self._replacement(out, error)
            if faults:
                if time.monotonic() > give_up_at:
                    raise ClusterFault(f"{len(faults)} message(s) unconfirmed after "
                                       f"{self._settings.publish_retry_s:g} s: {faults[0][1]!r}")
                self.counts["retried"] += len(faults)
                await backoff.wait("publish", faults[0][1])
                pending += [out for out, _ in faults]
            sent, failures = await self._send(pending)

    def _replacement(self, out: Outgoing, error: BaseException) -> list[Outgoing]:
        self.counts["refused"] += 1
        log.error("publish.refused", topic=out.topic, key=out.key, message=type(out.message).__name__,
                  error=str(error) or repr(error), replaced=out.instead is not None)
        return list(out.instead(error)) if out.instead else []

    async def _send(self, batch: Sequence[Outgoing]
                    ) -> tuple[list[tuple[Outgoing, asyncio.Future[Any]]], list[tuple[Outgoing, BaseException]]]:
        """Send `batch` in order; return the messages sent (with their confirmations) and those that failed."""
        failures: list[tuple[Outgoing, BaseException]] = []
        sent: list[tuple[Outgoing, asyncio.Future[Any]]] = []
        for out in batch:
            try:
                value = encode(out.message)
                if len(value) > MAX_MESSAGE_BYTES:
                    raise MessageTooLarge(out, len(value))
                if self._producer is None:
                    raise ClusterFault("the publisher is not started")
                async with asyncio.timeout(self._settings.send_timeout_ms / 1000):
                    future = await self._producer.send(
                        out.topic, value, key=out.key.encode() if out.key else None, partition=out.partition,
                        headers=[*_JSON, *((name, text.encode()) for name, text in out.headers.items())])
                sent.append((out, future))
            except TimeoutError:
                failures.append((out, KafkaTimeoutError(f"no metadata for {out.topic!r}")))
            except Exception as exc:
                failures.append((out, exc))
        return sent, failures

    async def _confirm(self, sent: list[tuple[Outgoing, asyncio.Future[Any]]]
                       ) -> list[tuple[Outgoing, BaseException]]:
        """Wait for every confirmation; return the messages that failed, and why."""
        failures: list[tuple[Outgoing, BaseException]] = []
        for out, future in sent:
            try:
                await future
                self.counts["published"] += 1
                if self._on_published:
                    self._on_published(out)
            except Exception as exc:
                failures.append((out, exc))
        return failures
