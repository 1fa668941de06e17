"""Publishing a batch's outputs so that no single message can hold the partition its batch came from.

Every message is encoded and checked against the contract's size limit (`MAX_MESSAGE_BYTES`, below the
producer's `max_request_size`) before it is sent. An answer for a reply topic that no longer exists (its
client went away) is dropped with a warning: nobody is listening. A reply topic can also vanish while an answer
to it is in flight: an answer not confirmed within `reply_probe_ms` has its topic looked up again, and if the
topic is gone the producer abandons it (`abandon_topic`), instead of refreshing metadata in a tight loop until
the answer expires. A message refused for its own sake (too large, an invalid topic) is replaced by its
fallback (`Outgoing.instead`: an error result and a dead letter). Only faults of the cluster are retried,
message by message, with capped exponential backoff, for at most `publish_retry_s`; after that the batch is
rewound by its consumer (at-least-once, never lost).

The publisher owns its aiokafka producer (acks from every in-sync replica, idempotent) rather than FastStream's:
abandoning a vanished topic needs the producer itself, which FastStream keeps private.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    UnknownTopicOrPartitionError,
)
from aiokafka.protocol.metadata import MetadataRequest
from pydantic import BaseModel

from cascade.contracts import TopicRegistry, encode
from cascade.contracts.limits import MAX_MESSAGE_BYTES
from cascade.services.faults import ClusterFault, is_transient
from cascade.services.settings import KafkaSettings
from cascade.services.vanished_topics import abandon_topic

__all__ = ["MessageTooLarge", "Outgoing", "Publisher", "TopicDirectory", "is_too_large"]

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


_JSON = [("content-type", b"application/json")]


class MessageTooLarge(ValueError):
    def __init__(self, out: Outgoing, size: int) -> None:
        super().__init__(f"{type(out.message).__name__} for {out.topic!r} encodes to {size} bytes, more than "
                         f"the message limit of {MAX_MESSAGE_BYTES}")


def is_too_large(error: BaseException) -> bool:
    return isinstance(error, MessageSizeTooLargeError | RecordTooLargeError)


def _observed(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a confirmation nobody waits for any more (no "never retrieved" warning)."""
    if not future.cancelled():
        future.exception()


class _NoListener(Exception):
    """The reply topic does not exist: its client closed or crashed."""


def _remember(remembered: OrderedDict[str, Any], topic: str, value: Any) -> None:
    """`topic` as the newest entry of `remembered`, which keeps the last `TopicDirectory._REMEMBERED`."""
    remembered[topic] = value
    remembered.move_to_end(topic)
    while len(remembered) > TopicDirectory._REMEMBERED:
        remembered.popitem(last=False)


_EXISTING = {0, LeaderNotAvailableError.errno}
"""Metadata error codes of a topic that exists (a leader is elected a moment after creation)."""


class TopicDirectory:
    """Which reply topics exist. A topic seen once is remembered (the last `_REMEMBERED`; `still_exists` looks
    again); an unknown one is looked up on its own (a metadata request naming just it, which never creates it on
    a cluster that auto-creates topics), at most every `recheck_s`, so junk reply topics cost one small lookup a
    second each."""

    _REMEMBERED = 10_000

    def __init__(self, recheck_s: float = 1.0, **client_options: Any) -> None:
        self._client_options = client_options
        self._client: AIOKafkaClient | None = None
        self._recheck_s = recheck_s
        self._known: OrderedDict[str, None] = OrderedDict()
        self._missing: OrderedDict[str, float] = OrderedDict()

    async def start(self) -> None:
        self._client = AIOKafkaClient(**self._client_options)  # inside the event loop, as aiokafka requires
        try:
            await self._client.bootstrap()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def exists(self, topic: str) -> bool:
        if topic in self._known:
            self._known.move_to_end(topic)
            return True
        checked = self._missing.get(topic)
        if checked is not None and time.monotonic() - checked < self._recheck_s:
            return False
        if self._existing(await self._metadata([topic])):
            self._missing.pop(topic, None)
            _remember(self._known, topic, None)
            return True
        _remember(self._missing, topic, time.monotonic())
        return False

    async def still_exists(self, topic: str) -> bool:
        """Look `topic` up again now, whatever was known of it."""
        self._known.pop(topic, None)
        self._missing.pop(topic, None)
        return await self.exists(topic)

    async def ping(self) -> None:
        """Raise unless the cluster answers a metadata request (one naming no topic: cheap)."""
        await self._metadata([])

    async def _metadata(self, topics: list[str]) -> dict[str, Any]:
        if self._client is None:
            raise ClusterFault("the topic directory is not started")
        node = self._client.get_random_node()
        if node is None:
            raise ClusterFault("no broker known")
        try:
            response = await self._client.send(node, MetadataRequest(topics, allow_auto_topic_creation=False))
        except KafkaError as exc:
            raise ClusterFault(f"no metadata for {topics!r}: {exc!r}") from exc
        return dict(response.to_object())

    @staticmethod
    def _existing(metadata: dict[str, Any]) -> bool:
        return any(topic["error_code"] in _EXISTING for topic in metadata["topics"])


class Publisher:
    """Publishes outputs through its producer; see the module docstring for what happens on failure."""

    def __init__(self, settings: KafkaSettings, on_published: Callable[[Outgoing], None] | None = None) -> None:
        self._on_published = on_published
        self._topics: TopicRegistry = settings.topics
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self.directory = TopicDirectory(**settings.client_options())
        self.counts: Counter[str] = Counter()
        """published, dropped_no_listener, refused, retried."""

    async def start(self) -> None:
        """Connect the producer and the topic directory (raises what the cluster raises: the caller retries)."""
        settings = self._settings
        producer = AIOKafkaProducer(
            acks="all", enable_idempotence=True, max_request_size=MAX_MESSAGE_BYTES + 64 * 1024,
            linger_ms=settings.linger_ms, **settings.client_options())
        try:
            await producer.start()
            await self.directory.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def close(self) -> None:
        """Flush what is queued, then disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await self.directory.close()

    async def ping(self, timeout_s: float) -> bool:
        """True if the cluster answers within `timeout_s` (readiness)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.directory.ping()
        except (TimeoutError, KafkaError, ClusterFault):
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
                if self._topics.is_reply_topic(out.topic) and not await self.directory.exists(out.topic):
                    raise _NoListener
                if self._producer is None:
                    raise ClusterFault("the publisher is not started")
                async with asyncio.timeout(self._settings.send_timeout_ms / 1000):
                    future = await self._producer.send(
                        out.topic, value, key=out.key.encode() if out.key else None,
                        headers=[*_JSON, *((name, text.encode()) for name, text in out.headers.items())])
                sent.append((out, future))
            except _NoListener:
                self._no_listener(out)
            except TimeoutError:  # no metadata: for a reply topic known once, its client may have gone since
                if self._topics.is_reply_topic(out.topic) and not await self._exists_now(out.topic):
                    self._abandon(out.topic)
                    self._no_listener(out)
                else:
                    failures.append((out, KafkaTimeoutError(f"no metadata for {out.topic!r}")))
            except Exception as exc:
                failures.append((out, exc))
        return sent, failures

    async def _exists_now(self, topic: str) -> bool:
        """Whether `topic` exists, looked up now; True when the cluster cannot say (the message is retried)."""
        try:
            return await self.directory.still_exists(topic)
        except ClusterFault:
            return True

    def _abandon(self, topic: str) -> None:
        if self._producer is not None:
            abandon_topic(self._producer, topic, UnknownTopicOrPartitionError(f"{topic!r} was deleted"))

    async def _confirm(self, sent: list[tuple[Outgoing, asyncio.Future[Any]]]
                       ) -> list[tuple[Outgoing, BaseException]]:
        """Wait for every confirmation; return the messages that failed, and why."""
        failures: list[tuple[Outgoing, BaseException]] = []
        for out, future in sent:
            try:
                if self._topics.is_reply_topic(out.topic):
                    await self._reply_confirmed(out.topic, future)
                else:
                    await future
                self.counts["published"] += 1
                if self._on_published:
                    self._on_published(out)
            except _NoListener:
                self._no_listener(out)
            except Exception as exc:
                failures.append((out, exc))
        return failures

    async def _reply_confirmed(self, topic: str, future: asyncio.Future[Any]) -> None:
        """Wait for an answer's confirmation; if it is slow, look its reply topic up again: a topic deleted
        meanwhile is abandoned by the producer (until its batches are failed) and _NoListener raised. Past
        `send_timeout_ms`, a timeout."""
        settings = self._settings
        give_up_at = time.monotonic() + settings.send_timeout_ms / 1000
        missing = 0  # lookups in a row that found no topic: two, so that one broker's stale answer drops nothing
        while (left := give_up_at - time.monotonic()) > 0:
            done, _ = await asyncio.wait({future}, timeout=min(settings.reply_probe_ms / 1000, left))
            if done:
                if missing >= 2 and future.exception() is not None:
                    raise _NoListener
                future.result()
                return
            if missing < 2:
                missing = 0 if await self._exists_now(topic) else missing + 1
            if missing >= 2:
                self._abandon(topic)  # again at each probe: a batch in flight comes back when the broker refuses it
        future.add_done_callback(_observed)  # it may still be delivered; the retry sends it again (at-least-once)
        if missing >= 2:
            raise _NoListener
        raise KafkaTimeoutError(f"{topic!r} did not confirm in time")

    def _no_listener(self, out: Outgoing) -> None:
        self.counts["dropped_no_listener"] += 1
        log.warning("publish.no_listener", topic=out.topic, key=out.key,
                    reason="the reply topic does not exist (its client went away); answer dropped")
