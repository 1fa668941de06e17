"""One Cascade process: the roles it serves, built around one broker (and, embedded, one vector store).

`ingest` and `query` need the bi-encoder and the vector store; an EdgeStore serves one process, so in the
embedded mode both run here around it. `rerank` needs only the cross-encoder, which `query` also uses for
mode `cross` when one is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Literal

import structlog

from infra.provision import provision_topics
from services.encoders import BiEncoder, CrossEncoder, RerankBatcher
from services.ingest import IndexScheduler, register_ingest
from services.messaging import make_broker
from services.query import QueryProcessor, QueryVectorCache, register_query
from services.reranker import RerankProcessor, register_reranker
from services.settings import Settings
from services.store import VectorStore, open_store

__all__ = ["CascadeProcess", "Role"]

Role = Literal["ingest", "query", "rerank"]
log = structlog.get_logger(__name__)


class CascadeProcess:
    """Builds the models, store and subscribers of `roles`; `start`/`stop`, or `run` until SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, roles: set[Role]) -> None:
        self.settings = settings
        self.roles = roles
        self.broker = make_broker(settings.kafka)
        models, batching = settings.models, settings.batching
        self.store: VectorStore | None = None
        self.bi_encoder: BiEncoder | None = None
        self.batcher: RerankBatcher | None = None
        self.index_scheduler: IndexScheduler | None = None
        self.query_cache: QueryVectorCache | None = None
        if roles & {"ingest", "query"}:
            self.store = open_store(settings.store)
            self.bi_encoder = BiEncoder(models.bi_encoder, max_length=models.bi_max_length,
                                        batch_size=models.encode_batch_size, device=models.device)
        if "rerank" in roles or ("query" in roles and models.cross_encoder):
            cross = CrossEncoder.load(models.cross_encoder, max_length=models.cross_max_length, device=models.device)
            self.batcher = RerankBatcher(cross, batching.rerank_gather_tokens, batching.pass_tokens(cross.device.type),
                                         batching.rerank_max_wait_ms)
        if "ingest" in roles and self.store and self.bi_encoder:
            self.index_scheduler = IndexScheduler(self.store, settings.store.index_min_points,
                                                  settings.store.index_idle_s)
            register_ingest(self.broker, settings, self.store, self.bi_encoder, self.index_scheduler)
        if "query" in roles and self.store and self.bi_encoder:
            self.query_cache = QueryVectorCache(batching.query_cache_size)
            register_query(self.broker, settings,
                           QueryProcessor(settings, self.store, self.bi_encoder, self.query_cache, self.batcher))
        if "rerank" in roles and self.batcher:
            register_reranker(self.broker, settings, RerankProcessor(settings, self.batcher))
        self._background: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        kafka = self.settings.kafka
        await provision_topics(kafka.topics, kafka.replication_factor, **kafka.client_options())
        if self.batcher:
            self.batcher.start()
        if self.index_scheduler:
            self._background.append(asyncio.create_task(self.index_scheduler.run()))
        await self.broker.start()
        log.info("process.started", roles=sorted(self.roles), instance=self.settings.instance_name)

    async def stop(self) -> None:
        """Finish in-flight batches (their offsets are committed), leave the consumer groups, close the store."""
        await self.broker.stop()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        if self.batcher:
            await self.batcher.stop()
        if self.store:
            await self.store.close()
        log.info("process.stopped", roles=sorted(self.roles))

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
