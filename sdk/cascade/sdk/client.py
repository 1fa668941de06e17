"""SearchClient: the async Python client of Cascade. It speaks only Kafka and the contracts."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from cascade.contracts import (
    DEFAULT_PREFIX,
    DEFAULT_TENANT,
    DocumentEvent,
    IngestAck,
    ReindexRequest,
    ReindexStatus,
    SearchRequest,
    SearchResult,
    Topic,
    TopicRegistry,
    encode,
    now_ms,
)
from cascade.contracts.codec import describe_errors
from cascade.contracts.messages import FirstStage, Lane, Mode
from cascade.contracts.security import AUTHORIZATION_ERRORS, KafkaAccessError, KafkaSecurity, diagnose
from cascade.contracts.trace_context import trace_headers
from cascade.sdk.acks import AckWaiter, IngestRejected, ReindexWaiter
from cascade.sdk.replies import ReplyRouter, ResultStream

__all__ = ["InvalidDocuments", "SearchClient", "SearchFailed", "SearchTimeout"]

_tracer = trace.get_tracer("cascade.sdk")

DocumentLike = DocumentEvent | Mapping[str, Any]


class InvalidDocuments(ValueError):
    """Documents that break the contract; nothing was sent."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} invalid document(s), nothing sent: " + "; ".join(problems[:10]))


class SearchTimeout(TimeoutError):
    def __init__(self, request_id: str, timeout_s: float) -> None:
        super().__init__(f"no result for request {request_id} within {timeout_s:g} s")
        self.request_id = request_id


class SearchFailed(Exception):
    """The service answered with an error: `code` (see contracts.ErrorCode) and its reason."""

    def __init__(self, result: SearchResult) -> None:
        assert result.error is not None
        super().__init__(f"request {result.request_id} failed: {result.error.code}: {result.error.message}")
        self.request_id = result.request_id
        self.code = result.error.code
        self.result = result


class SearchClient:
    """Publishes documents and queries, and receives acks and results.

    Use as `async with SearchClient("host:9092") as client: ...`. `tenant` names the namespace of topics and
    collections the client works in (`cascade tenants add`; the default tenant's are an install's without
    tenants). `kafka_options` go to aiokafka as they are
    (security_protocol, sasl_mechanism, sasl_plain_username, ssl_context, ...). `linger_ms` holds requests
    for more to share a produce request: 0 (the default) sends each search at once.
    """

    def __init__(self, bootstrap_servers: str, *, topic_prefix: str = DEFAULT_PREFIX, tenant: str = DEFAULT_TENANT,
                 security: KafkaSecurity | None = None, linger_ms: int = 0, **kafka_options: Any) -> None:
        self.security = security or KafkaSecurity()
        self._linger_ms = linger_ms
        self._bootstrap = bootstrap_servers
        self._kafka_options = {"bootstrap_servers": bootstrap_servers, **self.security.client_options(),
                               **kafka_options}
        self.topics = TopicRegistry(prefix=topic_prefix, tenant=tenant)
        self._producer: AIOKafkaProducer | None = None  # made on entry: a client never entered leaks nothing
        self.replies = ReplyRouter(self.topics.name(Topic.REPLIES), **self._kafka_options)

    async def __aenter__(self) -> SearchClient:
        self._producer = AIOKafkaProducer(acks="all", enable_idempotence=True, linger_ms=self._linger_ms,
                                          **self._kafka_options)
        try:
            await self._producer.start()
            await self.replies.start()
        except KafkaConnectionError as exc:
            await self._producer.stop()
            problem = await diagnose(self._bootstrap, self.security)
            if problem is not None:
                raise problem from exc
            raise
        except AUTHORIZATION_ERRORS as exc:
            await self._producer.stop()
            raise KafkaAccessError(f"Kafka refused this client ({self.security.describe()}) at start, an ACL is "
                                   f"missing (it reads {self.replies.topic!r} and writes documents or queries): "
                                   f"{exc}") from exc
        except BaseException:
            await self._producer.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.replies.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def search(
        self, query: str, *, collection: str, k: int = 10, mode: Mode = "rerank", candidates: int | None = None,
        filter: Mapping[str, str | int | bool] | None = None, timeout_s: float = 30.0,
        first_stage: FirstStage = "dense", lane: Lane = "interactive", min_probability: float | None = None,
    ) -> SearchResult:
        """Ask and wait. Raises SearchTimeout after `timeout_s` (also sent as the request's deadline, so the
        services answer `deadline_exceeded` rather than work for nobody) and SearchFailed on an error result.
        `lane="bulk"` for work nobody waits on: its reranking gives way to interactive requests.
        `min_probability`: only hits at least this likely to be relevant (modes rerank and cross; each hit's
        `probability`), so a search can answer nothing."""
        request = SearchRequest(
            request_id=uuid.uuid4().hex, collection=collection, query=query, k=k,
            candidates=None if candidates is None else max(candidates, k),
            mode=mode, first_stage=first_stage, lane=lane, filter=dict(filter) if filter else None,
            min_probability=min_probability,
            reply_to=self.replies.topic, reply_partition=self.replies.partition,
            deadline_ms=now_ms() + timeout_s * 1000,
        )
        future = self.replies.expect(request.request_id)
        with _tracer.start_as_current_span("cascade.search", kind=SpanKind.CLIENT, attributes={
                "cascade.request_id": request.request_id, "cascade.collection": collection, "cascade.mode": mode,
        }) as span:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._publish(Topic.QUERIES, [(request.request_id, encode(request))], trace_headers())
                    result = await future
            except TimeoutError:
                raise SearchTimeout(request.request_id, timeout_s) from None
            finally:
                self.replies.forget(request.request_id)
            if result.error is not None:
                raise SearchFailed(result)  # recorded on the span, which ends with an error status
            span.set_attribute("cascade.hits", len(result.hits))
        return result

    async def search_many(
        self, queries: Sequence[str], *, concurrency: int = 16, **options: Any
    ) -> list[SearchResult | Exception]:
        """Many searches with at most `concurrency` in flight; each item is a result or the exception it raised."""
        gate = asyncio.Semaphore(concurrency)

        async def one(query: str) -> SearchResult | Exception:
            async with gate:
                try:
                    return await self.search(query, **options)
                except (SearchTimeout, SearchFailed) as exc:
                    return exc

        return list(await asyncio.gather(*(one(query) for query in queries)))

    def results(self) -> ResultStream:
        """The answer to every request this client sends, as it arrives (including those `search` also returns)."""
        return self.replies.stream()

    async def _publish(self, topic: Topic, items: Iterable[tuple[str, bytes]],
                       headers: Mapping[str, str] | None = None) -> None:
        name = self.topics.name(topic)
        if self._producer is None:
            raise RuntimeError("use the client as `async with SearchClient(...) as client:`")
        record_headers = [("content-type", b"application/json"),
                          *((header, value.encode()) for header, value in (headers or {}).items())]
        try:
            futures = [await self._producer.send(name, value, key=key.encode(), headers=record_headers)
                       for key, value in items]
            for future in futures:
                await future
        except AUTHORIZATION_ERRORS as exc:
            raise KafkaAccessError(f"this client ({self.security.describe()}) may not write to {name!r}: "
                                   f"an ACL allowing Write on it is missing ({exc})") from exc

    async def index(
        self, documents: Iterable[DocumentLike], *, collection: str | None = None, model: str | None = None,
        late_interaction: bool | None = None, passages: bool | None = None, wait: bool = True,
        timeout_s: float = 300.0, progress: Callable[[int], None] | None = None,
    ) -> list[IngestAck]:
        """Publish upserts; with `wait`, return one ack per document (raises IngestRejected if any is rejected).

        Plain mappings are validated here first (`collection`, `model`, `late_interaction` and `passages` fill in
        missing fields), so a bad document raises InvalidDocuments before anything is sent. `model` names the
        first-stage model of a collection these documents create (`cascade models list`); the services' default
        otherwise. `late_interaction=True` makes a new collection store token vectors too, for mode colbert;
        `passages=True` makes it split documents longer than the models read into passages, each document found
        and reranked by its best one.
        """
        events = _validated(documents, collection, model=model, late_interaction=late_interaction,
                            passages=passages)
        return await self._send_events(events, wait, timeout_s, progress)

    async def reindex(
        self, collection: str, *, model: str | None = None, late_interaction: bool | None = None,
        timeout_s: float = 3600.0, progress: Callable[[ReindexStatus], None] | None = None,
    ) -> ReindexStatus:
        """Rebuild `collection` from its stored documents with `model` (the ingest service's default if None) and
        return once its name serves the new version (`switched`); queries are answered throughout. Raises
        ReindexFailed with the reason; `progress` sees each status (`started` first)."""
        request = ReindexRequest(request_id=uuid.uuid4().hex, collection=collection, model=model,
                                 late_interaction=late_interaction)
        waiter = ReindexWaiter(self.topics.name(Topic.REINDEX_STATUS), **self._kafka_options)
        await waiter.start()
        try:
            await self._publish(Topic.REINDEX, [(collection, encode(request))])
            return await waiter.wait(request.request_id, timeout_s, progress)
        finally:
            await waiter.stop()

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


def _validated(documents: Iterable[DocumentLike], collection: str | None, **defaults: str | bool | None
               ) -> list[DocumentEvent]:
    events: list[DocumentEvent] = []
    problems: list[str] = []
    for position, document in enumerate(documents):
        if isinstance(document, DocumentEvent):
            events.append(document)
            continue
        fields = dict(document)
        if collection is not None:
            fields.setdefault("collection", collection)
        for name, value in defaults.items():
            if value is not None:
                fields.setdefault(name, value)
        try:
            events.append(DocumentEvent.model_validate(fields))
        except ValidationError as exc:
            problems.append(f"#{position} ({fields.get('doc_id', '?')}): {describe_errors(exc)}")
    if problems:
        raise InvalidDocuments(problems)
    return events
