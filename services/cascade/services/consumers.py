"""The one way Cascade's services consume: a batch consumer (one aiokafka consumer, one task) around a handler.

The task polls, gathers a batch, hands it to the handler (which turns raw records into messages to
publish), sends those at once and polls again while the cluster confirms them: an `OffsetCommitter`
commits each batch's offsets only after every one of its messages is confirmed, in the order the batches
were handled (pipelining, `kafka.pipeline_depth` batches deep). Meanwhile aiokafka's fetcher already
fetches the next records. A poll waits on the broker's long poll, so an idle consumer costs no CPU, and
a record reaching an idle consumer is handled the moment it arrives. A consumer that is behind (records
were waiting when it polled) gathers what arrives for `batching.max_wait_ms` more: under load, requests
come spread out and larger batches encode far more cheaply per request (measured: bench/e2e.json).

Only cluster faults rewind a batch, after a capped, logged backoff. Anything else is one record's failure:
if a batch fails, its records are handled one at a time, and a record that fails on its own is refused
(dead letter, and an error answer for whoever waits), so one poisoned record never stalls a partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from cascade.services.commits import Batch, Committable, OffsetCommitter, Seekable, spans_of
from cascade.services.faults import ServiceFault, is_transient
from cascade.services.messaging import RawRecord
from cascade.services.publishing import Outgoing
from cascade.services.settings import Settings

__all__ = ["BatchConsumer", "BatchHandler", "PolledConsumer", "Refuse", "Sender", "Subscription", "handle_isolated"]

log = structlog.get_logger(__name__)

BatchHandler = Callable[[Sequence[RawRecord]], Awaitable[list[Outgoing]]]
Refuse = Callable[[RawRecord, str], list[Outgoing]]
"""What a record that failed on its own produces: a dead letter, and an error answer where someone waits."""

_POLL_MS = 1_000
"""The longest an idle poll waits (the broker answers as soon as a record arrives)."""
_BACKLOG_S = 0.001
"""A poll that returns within this had records waiting already: the consumer is behind, so it gathers."""
_GIVE_WAY_S = 0.1
"""How long after its last records a consumer still counts as busy for those that give way to it: the moment
between handing a batch over and its next poll bringing more."""


class PolledConsumer(Seekable, Committable, Protocol):
    """The part of aiokafka's consumer the consuming task uses."""

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def paused(self) -> set[TopicPartition]: ...


class Sender(Protocol):
    """Sends a batch's outputs; what it returns completes once the cluster confirmed them (`Publisher`)."""

    async def send(self, messages: Sequence[Outgoing]) -> Awaitable[None]: ...


def _describe(error: BaseException) -> str:
    return f"processing failed: {type(error).__name__}: {error}"


async def handle_isolated(handler: BatchHandler, refuse: Refuse, records: Sequence[RawRecord]) -> list[Outgoing]:
    """`handler(records)`; if it fails for any reason but the cluster, each record alone, refusing the ones
    that still fail. Cluster faults propagate (the batch is retried)."""
    try:
        return await handler(records)
    except Exception as exc:
        if is_transient(exc):
            raise
        if len(records) == 1:
            return refuse(records[0], _describe(exc))
        log.error("batch.failed", records=len(records), error=repr(exc), next="one record at a time")
    out: list[Outgoing] = []
    for record in records:
        try:
            out += await handler([record])
        except Exception as exc:
            if is_transient(exc):
                raise
            out += refuse(record, _describe(exc))
    return out


@dataclass(frozen=True)
class Subscription:
    """A topic and the consumer group (one per role and topic prefix) that consumes it."""

    topic: str
    group: str
    pattern: str | None = None
    """Where set, the group consumes every topic matching it (every tenant's `topic`), `topic` among them."""


class _ForgetRewinds(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    """After a rebalance, positions come from the group's committed offsets, not from this member's rewinds."""

    def __init__(self, committer: OffsetCommitter) -> None:
        self._committer = committer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._committer.forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._committer.forget(assigned)


class BatchConsumer:
    """`handler` on batches of `topic`, in the consumer group of `role` (see the module docstring)."""

    def __init__(
        self, settings: Settings, publisher: Sender, *, topic: str, role: str, max_records: int,
        handler: BatchHandler, refuse: Refuse, description: str, gives_way_to: BatchConsumer | None = None,
        pattern: str | None = None, partition_fetch_bytes: int | None = None,
    ) -> None:
        """`partition_fetch_bytes`: the most bytes fetched from one partition at a time (Kafka's default, 1 MiB,
        where None); small, partitions take turns at a finer grain."""
        kafka = settings.kafka
        self.subscription = Subscription(topic, kafka.group(role), pattern)
        self.description = description
        self._settings = settings
        self._publisher = publisher
        self._name = f"{role}:{topic}"
        self._max_records = max_records
        self._gather_s = settings.batching.max_wait_ms / 1000
        self._handler = handler
        self._refuse = refuse
        self._gives_way_to = gives_way_to
        """A consumer of more urgent work: while it is busy, this one's partitions are paused."""
        self._fetch_options = {} if partition_fetch_bytes is None else {
            "max_partition_fetch_bytes": partition_fetch_bytes}
        self._backoff = kafka.retry_backoff()
        self.committer = OffsetCommitter(self._name, kafka.pipeline_depth, kafka.retry_backoff())
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._handling = False
        self._stopping = False
        self.last_records_at = 0.0
        """When a poll last brought records, or their handling ended (monotonic seconds)."""

    def busy(self) -> bool:
        """Whether this consumer has records in hand, had some a moment ago (`_GIVE_WAY_S`), or is stopping (the
        process is going down: those giving way to it take nothing new either)."""
        return self._stopping or self._handling or time.monotonic() - self.last_records_at < _GIVE_WAY_S

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and self.committer.failure is None

    async def start(self) -> asyncio.Task[None]:
        """Join the group; the returned task runs until `stop` (it ends early only if the consumer fails)."""
        kafka = self._settings.kafka
        self._consumer = AIOKafkaConsumer(
            group_id=self.subscription.group, enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=kafka.session_timeout_ms, heartbeat_interval_ms=max(kafka.session_timeout_ms // 3, 100),
            max_poll_interval_ms=kafka.max_poll_interval_ms, metadata_max_age_ms=kafka.tenant_discovery_ms,
            **self._fetch_options, **kafka.client_options())
        listener = _ForgetRewinds(self.committer)
        if self.subscription.pattern is None:
            self._consumer.subscribe([self.subscription.topic], listener=listener)
        else:  # a tenant added later is found at the next metadata refresh
            self._consumer.subscribe(pattern=self.subscription.pattern, listener=listener)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(self._consumer), name=f"consume:{self._name}")
        log.info("consumer.started", consumer=self._name, group=self.subscription.group, does=self.description)
        return self._task

    async def stop(self) -> None:
        """Finish the batch in hand, commit what was handled once it is confirmed, and leave the group."""
        self._stopping = True
        await self.committer.close()  # from now on each batch is committed before the next poll
        if self._task is not None:
            if not self._handling:
                self._task.cancel()  # it waits in a poll: nothing taken yet
            with contextlib.suppress(asyncio.CancelledError, ServiceFault):  # a death the process was told of
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        await self.consume(consumer)

    async def consume(self, consumer: PolledConsumer) -> None:
        """Poll, handle and hand over batches until `stop` (public so that a fake broker can drive it in tests)."""
        while not self._stopping:
            self.committer.check_alive()  # a dead committing task fails this task, and so the process
            self.committer.apply_rewinds(consumer)
            paused = self._give_way(consumer)
            read_at = self.committer.read_at
            try:
                records = await self._gather(consumer, int(_GIVE_WAY_S * 1000) if paused else _POLL_MS)
            except ConsumerStoppedError:
                return
            except KafkaError as exc:  # the cluster away: aiokafka reconnects, polling again later
                await self._backoff.wait(f"poll {self._name}", exc)
                continue
            if not records:
                continue
            self.last_records_at = time.monotonic()
            self._handling = True
            try:
                await self._handle(consumer, records, read_at)
            finally:
                self._handling = False
                self.last_records_at = time.monotonic()

    def _give_way(self, consumer: PolledConsumer) -> bool:
        """Pause every assigned partition while the consumer this one gives way to is busy (partitions assigned
        since are paused on the next round); resume after. A paused consumer keeps polling, briefly, so it keeps
        its group membership and resumes within `_GIVE_WAY_S`. Whether it is paused now."""
        if self._gives_way_to is None:
            return False
        if self._gives_way_to.busy():
            consumer.pause(*consumer.assignment())
            return True
        if paused := consumer.paused():
            consumer.resume(*paused)
        return False

    async def _gather(self, consumer: PolledConsumer, poll_ms: int) -> list[RawRecord]:
        """The records of one poll (waiting up to `poll_ms`); if they were already waiting (a backlog: the
        consumer is behind), also those arriving within `max_wait_ms`, up to `max_records`. A record that arrives
        at an idle consumer is handled at once. Records that arrive across a rebalance are put back (see
        `_poll`)."""
        began = time.monotonic()
        records = await self._poll(consumer, self._max_records, poll_ms)
        if time.monotonic() - began > _BACKLOG_S:
            return records
        until = time.monotonic() + self._gather_s
        while records and len(records) < self._max_records and (left := until - time.monotonic()) > 0:
            try:
                more = await self._poll(consumer, self._max_records - len(records), int(left * 1000) or 1)
            except KafkaError:  # handle what is in hand; the next poll meets the fault
                break
            if not more:
                break
            records += more
        return records

    async def _poll(self, consumer: PolledConsumer, max_records: int, timeout_ms: int) -> list[RawRecord]:
        """One `getmany`. Records of a partition that a rebalance moved while it waited come from a position the
        committer has not seen: they are put back (seek to their first offset) and read again next poll."""
        since = self.committer.read_at
        records = _flat(await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records))
        if self.committer.read_at == since:  # no rewind nor rebalance meanwhile (the usual case)
            return records
        moved = {partition: span for partition, span in spans_of(records).items()
                 if self.committer.moved_since(since, partition)}
        if not moved:
            return records
        assigned = consumer.assignment()
        for partition, span in moved.items():
            if partition in assigned:
                consumer.seek(partition, span.first)
        return [record for record in records if TopicPartition(record.topic, record.partition) not in moved]

    async def _handle(self, consumer: PolledConsumer, records: list[RawRecord], read_at: int) -> None:
        spans = spans_of(records)
        try:
            confirmed = await self._publisher.send(await handle_isolated(self._handler, self._refuse, records))
        except Exception as exc:  # a cluster fault (handle_isolated lets only those through)
            await self._backoff.wait(f"{self._name} batch of {len(records)}", exc)
            self.committer.rewind(spans, read_at)
            return
        self._backoff.reset()
        await self.committer.hand_over(Batch(consumer, spans, read_at, confirmed))


def _flat(polled: dict[TopicPartition, list[object]]) -> list[RawRecord]:
    return [RawRecord.of(record) for records in polled.values() for record in records]
