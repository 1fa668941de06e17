"""Reindexing without downtime, with any number of ingest pods: a collection's stored documents encoded anew into
a new version, then its name switched to that version atomically.

`docs` is served from version `docs@vN` (both stores make a new collection as `docs@v1`). A reindex to model M:
1. makes `docs@v(N+1)` recording M (or resumes the one a reindex to M left unfinished). From then on every ingest
   pod applies each write to `docs` to it too: the pods read which versions exist from the store before each batch
   (cascade.services.ingest.versions), so they agree without being told;
2. waits until the ingest group has consumed every document record published before that, so the served version
   holds them all;
3. scrolls the served version and publishes one ReindexCopy per document to the documents topic, keyed by its
   doc_id: it lands in the document's partition, ordered with the document's own events, and the pod that owns
   the partition makes the new version hold what the served one holds at that point (a write after the copy
   reaches both versions; one before it was read by the copy). No lock is shared between pods, none is needed;
4. waits until the ingest group has consumed the copies, checks that the new version is still the newest and holds
   as many documents as the served one, then switches the alias `docs` to it.
Queries resolve the name once each, so every query is answered wholly by one version. The previous version is kept
as it was at the switch (switching back is one more alias switch, to a version that missed the writes since; the
newer one keeps receiving them, so switching forward again loses nothing).

A reindex runs as a task of the ingest pod that received the request; if that pod stops first, the request is
lost with it (its `failed` status says so when the stop is orderly) and can be sent again: it resumes the version
left behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import structlog

from cascade.contracts import REINDEX_COPY_HEADER, ReindexCopy, ReindexRequest, ReindexStatus, Topic, TopicRegistry
from cascade.services.consumers import Subscription
from cascade.services.encoders import BiEncoders, LateInteractionLoader, UnknownModel
from cascade.services.ingest.indexing import IndexScheduler
from cascade.services.ingest.versions import versions
from cascade.services.lag import wait_until_consumed
from cascade.services.publishing import Outgoing, Publisher
from cascade.services.store import VERSION_MARK, VectorStore, base_name, version_of
from cascade.services.tenancy import shown_collection, stored_collection

__all__ = ["Reindexer"]

log = structlog.get_logger(__name__)

Report = Callable[[ReindexStatus], Awaitable[None]]


def _copy_of(topic: str, collection: str, doc_id: str) -> Outgoing:
    header, kind = REINDEX_COPY_HEADER
    return Outgoing(topic, doc_id, ReindexCopy(collection=collection, doc_id=doc_id), headers={header: kind})


class ReindexSuperseded(RuntimeError):
    """A newer version was made for the collection while this reindex copied."""


class ReindexIncomplete(RuntimeError):
    """The new version lacks documents the served one holds: switching would lose them."""


class Reindexer:
    def __init__(self, store: VectorStore, encoders: BiEncoders, late_interaction: LateInteractionLoader,
                 scheduler: IndexScheduler, publisher: Publisher, documents: Subscription, page_size: int = 64,
                 **client_options: Any) -> None:
        self._store = store
        self._encoders = encoders
        self._late_interaction = late_interaction
        self._scheduler = scheduler
        self._publisher = publisher
        self._documents = documents
        """The documents topics and the ingest group that consumes them."""
        self._page_size = page_size
        self._client_options = client_options
        self._running: dict[str, tuple[str, asyncio.Task[None]]] = {}
        """Collection -> the request id and task of the reindex running for it."""

    async def start(self, request: ReindexRequest, report: Report, topics: TopicRegistry) -> ReindexStatus | None:
        """Make (or resume) the new version of the collection of the tenant of `topics` and start copying in the
        background (`report` is told the outcome); the status returned says `started`, or `failed` with the reason
        when the request cannot be served (None: the same request delivered again, a rebalance before its commit,
        while it is being served). Statuses name collections and versions as the tenant knows them."""
        name = stored_collection(topics.tenant, request.collection)
        status = ReindexStatus(request_id=request.request_id, collection=request.collection, state="failed")
        if (running := self._running.get(name)) is not None:
            if running[0] == request.request_id:
                return None
            return status.model_copy(update={"error": f"a reindex of {request.collection!r} is running already"})
        if not await self._store.has_collection(name):
            return status.model_copy(update={"error": f"collection {request.collection!r} does not exist"})
        held = await versions(self._store, name)
        source = held.served
        try:
            encoder = await self._encoders.get(request.model)
            late = request.late_interaction
            if late is None:
                late = await self._store.token_dim(source) is not None
            tokens = await self._late_interaction.get() if late else None
        except UnknownModel as exc:
            return status.model_copy(update={"source": shown_collection(source), "error": f"model_unavailable: {exc}"})
        token_dim = tokens.dim if tokens else None
        passages = await self._store.passages(source)  # a document's passages are how it is found: kept
        if passages is not None and token_dim is not None:
            return status.model_copy(update={"source": shown_collection(source), "error": (
                f"collection {request.collection!r} stores passages: a version of it cannot store token vectors "
                "(late_interaction) too")})
        target = held.building
        if (target is None or await self._store.collection_model(target) != encoder.name
                or await self._store.token_dim(target) != token_dim or await self._store.passages(target) != passages):
            target = f"{base_name(name)}{VERSION_MARK}{version_of(target or source) + 1}"
            await self._store.ensure_collection(target, encoder.dim, encoder.name, token_dim, passages)
        await self._store.add_filter_fields(target, await self._store.filter_fields(source))  # the same as served
        started = status.model_copy(update={"state": "started", "source": shown_collection(source),
                                            "target": shown_collection(target), "model": encoder.name})
        documents = replace(self._documents, topic=topics.name(Topic.DOCUMENTS), pattern=None)
        self._running[name] = (request.request_id, asyncio.create_task(
            self._copy(name, source, target, started, report, documents), name=f"reindex:{name}"))
        log.info("reindex.started", collection=name, source=source, target=target, model=encoder.name)
        return started

    async def _copy(self, name: str, source: str, target: str, started: ReindexStatus, report: Report,
                    documents: Subscription) -> None:
        """Copies go to the tenant's own documents topic (under the name it knows the collection by), ordered with
        its documents' events."""
        began, copied = time.monotonic(), 0

        def ended(**fields: object) -> ReindexStatus:
            return started.model_copy(update={"documents": copied, "seconds": round(time.monotonic() - began, 3),
                                              **fields})

        try:
            await self._consumed(documents)  # every write from before the new version existed is in the served one
            offset: str | None = None
            while True:
                page, offset = await self._store.scroll(source, offset, self._page_size)
                await self._publisher.publish([_copy_of(documents.topic, started.collection, doc.doc_id)
                                               for doc in page])
                copied += len(page)
                if offset is None:
                    break
            await self._check_complete(name, source, target, documents)
            await self._store.switch_alias(name, target)
            self._scheduler.written({target})
            log.info("reindex.switched", collection=name, target=target, documents=copied)
            await report(ended(state="switched"))
        except Exception as exc:
            log.error("reindex.failed", collection=name, target=target, error=str(exc))
            await report(ended(state="failed", error=f"{type(exc).__name__}: {exc}"[:2000]))
        except asyncio.CancelledError:
            await report(ended(state="failed", error="the ingest process stopped before the switch: send it again"))
            raise
        finally:
            self._running.pop(name, None)

    async def _consumed(self, documents: Subscription) -> None:
        await wait_until_consumed(documents, **self._client_options)

    async def _check_complete(self, name: str, source: str, target: str, documents: Subscription,
                              tries: int = 3) -> None:
        """Once the copies are consumed, the new version must still be the one writes reach, and hold as many
        documents as the served one (a pod that could not load the new model refuses its copies, and only logs
        it). Writes arriving meanwhile can make the counts differ for a moment: they are compared again after
        those are consumed too."""
        for _ in range(tries):
            await self._consumed(documents)
            if (building := (await versions(self._store, name)).building) != target:
                raise ReindexSuperseded(f"{shown_collection(target)} is no longer the version writes reach "
                                        f"({building and shown_collection(building)} is): another reindex took over")
            held, built = await self._store.count(source), await self._store.count(target)
            if held == built:
                return
        raise ReindexIncomplete(f"{shown_collection(target)} holds {built} documents, {shown_collection(source)} "
                                f"{held}: some copies were refused (every ingest pod logs reindex.copy_refused with "
                                "the reason, e.g. a model it lacks)")

    async def stop(self) -> None:
        """Cancel running reindexes (their `failed` status is reported)."""
        tasks = [task for _, task in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
