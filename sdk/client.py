"""SearchClient: the async Python client of Cascade. It speaks only Kafka and the contracts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from contracts import DEFAULT_PREFIX, DocumentEvent, IngestAck, Topic, TopicRegistry, encode
from contracts.codec import describe_errors
from sdk.acks import AckWaiter, IngestRejected

__all__ = ["InvalidDocuments", "SearchClient"]

DocumentLike = DocumentEvent | Mapping[str, Any]


class InvalidDocuments(ValueError):
    """Documents that break the contract; nothing was sent."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} invalid document(s), nothing sent: " + "; ".join(problems[:10]))


class SearchClient:
    """Publishes documents and queries, and receives acks and results.

    Use as `async with SearchClient("host:9092") as client: ...`. `kafka_options` go to aiokafka as they are
    (security_protocol, sasl_mechanism, sasl_plain_username, ssl_context, ...).
    """

    def __init__(self, bootstrap_servers: str, *, topic_prefix: str = DEFAULT_PREFIX, **kafka_options: Any) -> None:
        self._kafka_options = {"bootstrap_servers": bootstrap_servers, **kafka_options}
        self.topics = TopicRegistry(prefix=topic_prefix)
        self._producer = AIOKafkaProducer(acks="all", enable_idempotence=True, linger_ms=2, **self._kafka_options)

    async def __aenter__(self) -> SearchClient:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def _publish(self, topic: Topic, items: Iterable[tuple[str, bytes]]) -> None:
        name = self.topics.name(topic)
        futures = [await self._producer.send(name, value, key=key.encode()) for key, value in items]
        for future in futures:
            await future

    async def index(
        self, documents: Iterable[DocumentLike], *, collection: str | None = None, wait: bool = True,
        timeout_s: float = 300.0, progress: Callable[[int], None] | None = None,
    ) -> list[IngestAck]:
        """Publish upserts; with `wait`, return one ack per document (raises IngestRejected if any is rejected).

        Plain mappings are validated here first (`collection` fills in a missing collection), so a bad
        document raises InvalidDocuments before anything is sent.
        """
        events = _validated(documents, collection)
        return await self._send_events(events, wait, timeout_s, progress)

    async def delete(
        self, doc_ids: Iterable[str], *, collection: str, wait: bool = True, timeout_s: float = 60.0
    ) -> list[IngestAck]:
        events = [DocumentEvent(op="delete", collection=collection, doc_id=doc_id) for doc_id in doc_ids]
        return await self._send_events(events, wait, timeout_s, None)

    async def _send_events(
        self, events: list[DocumentEvent], wait: bool, timeout_s: float, progress: Callable[[int], None] | None
    ) -> list[IngestAck]:
        if not wait:
            await self._publish(Topic.DOCUMENTS, ((event.doc_id, encode(event)) for event in events))
            return []
        waiter = AckWaiter(self.topics.name(Topic.ACKS), **self._kafka_options)
        await waiter.start()
        try:
            await self._publish(Topic.DOCUMENTS, ((event.doc_id, encode(event)) for event in events))
            expected = Counter((event.collection, event.doc_id) for event in events)
            acks = await waiter.wait(dict(expected), timeout_s, progress)
        finally:
            await waiter.stop()
        if any(ack.status == "rejected" for ack in acks):
            raise IngestRejected(acks)
        return acks


def _validated(documents: Iterable[DocumentLike], collection: str | None) -> list[DocumentEvent]:
    events: list[DocumentEvent] = []
    problems: list[str] = []
    for position, document in enumerate(documents):
        if isinstance(document, DocumentEvent):
            events.append(document)
            continue
        fields = dict(document)
        if collection is not None:
            fields.setdefault("collection", collection)
        try:
            events.append(DocumentEvent.model_validate(fields))
        except ValidationError as exc:
            problems.append(f"#{position} ({fields.get('doc_id', '?')}): {describe_errors(exc)}")
    if problems:
        raise InvalidDocuments(problems)
    return events
