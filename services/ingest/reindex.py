"""Reindexing without downtime: a collection's stored documents encoded anew into a new version, then its name
switched to that version atomically.

`docs` is served from version `docs@vN` (both stores make a new collection as `docs@v1`). A reindex to
model M: creates `docs@v(N+1)` recording M; registers it as the collection's shadow, so that every write to `docs`
from then on is applied to it too; copies the stored documents page by page (scrolling the serving version),
each page under the shadow's lock, skipping documents that changed or were written to the new version meanwhile
(those writes are newer); then switches the alias `docs` to the new version. Queries resolve the name once each,
so every query is answered wholly by one version, the old one until the switch, the new one after. The previous
version is kept (switching back is one more alias switch).

A reindex runs as a task of the ingest process that received the request; if that process stops first, the
request is lost with it (its `failed` status says so when the stop is orderly) and can be sent again: the
partial version is built anew.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from contracts import DocumentEvent, ReindexRequest, ReindexStatus
from services.encoders import BiEncoders, UnknownModel
from services.ingest.indexing import IndexScheduler
from services.ingest.processor import IngestProcessor, Received, Shadow
from services.messaging import RawRecord
from services.store import VERSION_MARK, DocumentText, VectorStore, base_name, version_of

__all__ = ["Reindexer"]

log = structlog.get_logger(__name__)

Report = Callable[[ReindexStatus], Awaitable[None]]


class Reindexer:
    def __init__(self, store: VectorStore, encoders: BiEncoders, processor: IngestProcessor,
                 scheduler: IndexScheduler, page_size: int = 64) -> None:
        self._store = store
        self._encoders = encoders
        self._processor = processor
        self._scheduler = scheduler
        self._page_size = page_size
        self._running: dict[str, asyncio.Task[None]] = {}

    async def start(self, request: ReindexRequest, report: Report) -> ReindexStatus:
        """Create the new version and start copying in the background (`report` is told the outcome); the status
        returned says `started`, or `failed` with the reason when the request cannot be served."""
        name = request.collection
        status = ReindexStatus(request_id=request.request_id, collection=name, state="failed")
        if name in self._running:
            return status.model_copy(update={"error": f"a reindex of {name!r} is running already"})
        if not await self._store.has_collection(name):
            return status.model_copy(update={"error": f"collection {name!r} does not exist"})
        source = await self._store.resolve(name)
        try:
            encoder = await self._encoders.get(request.model)
            late = request.late_interaction
            if late is None:
                late = await self._store.token_dim(source) is not None
            tokens = await self._encoders.late_interaction() if late else None
        except UnknownModel as exc:
            return status.model_copy(update={"source": source, "error": f"model_unavailable: {exc}"})
        version = version_of(source) + 1
        while await self._store.has_collection(target := f"{base_name(name)}{VERSION_MARK}{version}"):
            version += 1  # left by a reindex that did not finish
        await self._store.ensure_collection(target, encoder.dim, encoder.name, tokens.dim if tokens else None)
        await self._store.add_filter_fields(target, await self._store.filter_fields(source))  # the same as served
        shadow = self._processor.shadows[name] = Shadow(target)
        started = status.model_copy(update={"state": "started", "source": source, "target": target,
                                            "model": encoder.name})
        self._running[name] = asyncio.create_task(self._copy(name, source, shadow, started, report),
                                                  name=f"reindex:{name}")
        log.info("reindex.started", collection=name, source=source, target=target, model=encoder.name)
        return started

    async def _copy(self, name: str, source: str, shadow: Shadow, started: ReindexStatus, report: Report) -> None:
        began, copied = time.monotonic(), 0

        def ended(**fields: object) -> ReindexStatus:
            return started.model_copy(update={"documents": copied, "seconds": round(time.monotonic() - began, 3),
                                              **fields})

        try:
            offset: str | None = None
            while True:
                page, offset = await self._store.scroll(source, offset, self._page_size)
                copied += await self._copy_page(name, source, shadow, page)
                if offset is None:
                    break
            async with shadow.lock:  # no write between the last copy and the switch
                await self._store.switch_alias(name, shadow.target)
                del self._processor.shadows[name]
            self._scheduler.written({shadow.target})
            log.info("reindex.switched", collection=name, target=shadow.target, documents=copied)
            await report(ended(state="switched"))
        except Exception as exc:
            self._processor.shadows.pop(name, None)
            log.error("reindex.failed", collection=name, target=shadow.target, error=str(exc))
            await report(ended(state="failed", error=f"{type(exc).__name__}: {exc}"[:2000]))
        except asyncio.CancelledError:
            self._processor.shadows.pop(name, None)
            await report(ended(state="failed", error="the ingest process stopped before the switch: send it again"))
            raise
        finally:
            self._running.pop(name, None)

    async def _copy_page(self, name: str, source: str, shadow: Shadow, page: list[DocumentText]) -> int:
        """Copy the page's documents that are still as read and not yet in the new version."""
        ids = [doc.doc_id for doc in page]
        async with shadow.lock:
            current = await self._store.stored_states(source, ids)
            written = await self._store.stored_states(shadow.target, ids)
            due = [doc for doc in page if doc.doc_id not in written and doc.doc_id in current
                   and current[doc.doc_id].content_hash == doc.content_hash]
            received: list[Received] = [
                (RawRecord("reindex", 0, 0, doc.doc_id.encode(), b""),
                 DocumentEvent(collection=name, doc_id=doc.doc_id, title=doc.title, text=doc.text,
                               metadata=dict(doc.metadata)))
                for doc in due]
            if received:
                await self._processor.apply_copies(shadow.target, received)
        return len(due)

    async def stop(self) -> None:
        """Cancel running reindexes (their `failed` status is reported)."""
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
