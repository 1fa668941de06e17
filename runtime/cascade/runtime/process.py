"""One Cascade process: the roles it serves, built around one broker (and, embedded, one vector store).

`ingest` and `query` need the bi-encoder and the vector store; an EdgeStore serves one process, so in the
embedded mode both run here around it. `rerank` needs only the cross-encoder, which `query` also uses for
mode `cross` when one is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from dataclasses import asdict
from functools import partial
from typing import Any, Literal

import structlog

from cascade.contracts import Topic
from cascade.contracts.security import AUTHORIZATION_ERRORS, diagnose
from cascade.runtime.access import check_consumer_access
from cascade.runtime.health import HealthServer
from cascade.runtime.provision import provision_topics
from cascade.runtime.status import collection_status
from cascade.sdk import KafkaAccessError
from cascade.services.consumers import BatchConsumer, Subscription
from cascade.services.encoders import (
    BiEncoder,
    BiEncoders,
    CrossEncoder,
    LateInteractionEncoder,
    LateInteractionLoader,
    RerankBatcher,
    UnknownModel,
    configured_passages,
)
from cascade.services.faults import is_transient
from cascade.services.ingest import IndexScheduler, IngestProcessor, Reindexer, ingest_consumer, reindex_consumer
from cascade.services.lag import GroupBacklog, watch_lag
from cascade.services.loop_lag import watch_loop_lag
from cascade.services.metrics import Metrics
from cascade.services.publishing import Publisher
from cascade.services.query import QueryProcessor, QueryVectorCache, query_consumer
from cascade.services.reranker import RerankProcessor, reranker_consumers
from cascade.services.settings import Settings
from cascade.services.store import VectorStore, open_store

__all__ = ["CascadeProcess", "KafkaUnreachable", "ProcessFailed", "Role"]

Role = Literal["ingest", "query", "rerank"]
log = structlog.get_logger(__name__)
_BUSY_S = 5.0
"""How long after its last records a process counts as busy for the loop-lag sampler."""


class KafkaUnreachable(RuntimeError):
    """The cluster did not answer within `connect_timeout_s` at start."""


class ProcessFailed(RuntimeError):
    """A task the process depends on died; the process stops so that its supervisor restarts it."""


class CascadeProcess:
    """Builds the models, store and subscribers of `roles`; `start`/`stop`, or `run` until SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, roles: set[Role]) -> None:
        self.settings = settings
        self.roles = roles
        self.metrics = Metrics()
        self.publisher = self._counted_publisher()
        self.store: VectorStore | None = None
        self.bi_encoder: BiEncoder | None = None
        """The default first-stage model (new collections without a named model)."""
        self.bi_encoders: BiEncoders | None = None
        self.late_interaction = self._late_interaction_model()
        self.batcher: RerankBatcher | None = None
        self.index_scheduler: IndexScheduler | None = None
        self.reindexer: Reindexer | None = None
        self.query_cache: QueryVectorCache | None = None
        self.reranker_backlog: GroupBacklog | None = None
        """Candidate sets the rerankers have yet to read, for the query service's admission."""
        self.consumers: list[BatchConsumer] = []
        self._build_roles()
        self._background: list[asyncio.Task[None]] = []
        self.failure: BaseException | None = None
        self._failed = asyncio.Event()
        self._stopping = False
        self.health = self._health_server()

    def _counted_publisher(self) -> Publisher:
        """Every role publishes its outputs through one producer, whose outcomes the metrics expose."""
        publisher = Publisher(self.settings.kafka, on_published=self.metrics.published)
        self.metrics.count("cascade_publish_total", "Outputs by what became of them.", "outcome",
                           lambda: dict(publisher.counts))
        self.metrics.producer_metadata_topics.set_function(lambda: publisher.metadata_topics)
        return publisher

    def _build_roles(self) -> None:
        """Load only the models and stores the roles need: a reranking pod holds no vector store, an ingest pod
        no cross-encoder."""
        roles, models = self.roles, self.settings.models
        if roles & {"ingest", "query"}:
            self._open_first_stage()
        if "rerank" in roles or ("query" in roles and models.cross_encoder):
            self._load_cross_encoder()
        if "ingest" in roles and self.store and self.bi_encoders:
            self._serve_ingest(self.store, self.bi_encoders)
        if "query" in roles and self.store and self.bi_encoders:
            self._serve_query(self.store, self.bi_encoders)
        if "rerank" in roles and self.batcher:
            self._serve_rerank(self.batcher)

    def _open_first_stage(self) -> None:
        """Ingest and query share one store and one set of bi-encoders: an EdgeStore serves one process."""
        self.store = open_store(self.settings.store)
        models = self.settings.models

        def load(name: str) -> BiEncoder:
            return BiEncoder(name, max_length=models.bi_max_length, batch_size=models.encode_batch_size,
                             device=models.device)
        self.bi_encoder = load(models.bi_encoder)
        self.bi_encoders = BiEncoders(self.bi_encoder, load)

    def _late_interaction_model(self) -> LateInteractionLoader:
        """The ColBERT encoder, loaded on first use, where one is configured."""
        models = self.settings.models
        return LateInteractionLoader(partial(
            LateInteractionEncoder, models.late_interaction, batch_size=models.encode_batch_size,
            device=models.device) if models.late_interaction else None)

    def _load_cross_encoder(self) -> None:
        """The rerank role and the query role's mode cross share one batcher, so that the cross-encoder runs full
        batches."""
        models, batching = self.settings.models, self.settings.batching
        cross = CrossEncoder.load(models.cross_encoder, max_length=models.cross_max_length, device=models.device,
                                  precision=models.cross_precision)
        batcher = RerankBatcher(cross, batching.rerank_gather_tokens, batching.pass_tokens(cross.device.type),
                                batching.rerank_max_wait_ms, batching.rerank_queue_jobs,
                                on_batch=self.metrics.observe_batch)
        self.batcher = batcher
        self.metrics.inflight_candidate_sets.set_function(lambda: batcher.pending_jobs)
        self.metrics.count("cascade_rerank_abandoned_jobs_total", "Cross-encoder jobs whose scoring stopped "
                           "part-way: nobody waited any more (a deadline passed).", "reason",
                           lambda: {"deadline": batcher.abandoned_jobs})

    def _serve_ingest(self, store: VectorStore, bi_encoders: BiEncoders) -> None:
        """Documents and reindexes tell one scheduler what they wrote, so that a collection is indexed once its
        writes go quiet, whichever wrote them."""
        settings = self.settings
        self.index_scheduler = IndexScheduler(
            store, settings.store.index_min_points, settings.store.index_idle_s,
            on_build=self.metrics.index_builds.observe, on_failure=self.metrics.index_build_failures.inc)
        processor = IngestProcessor(store, bi_encoders, self.late_interaction,
                                    service=f"ingest@{settings.instance_name}",
                                    max_collections=settings.store.max_collections,
                                    passages=configured_passages(settings.models))
        ingest = ingest_consumer(settings, self.publisher, processor, self.index_scheduler)
        self.reindexer = Reindexer(store, bi_encoders, self.late_interaction, self.index_scheduler, self.publisher,
                                   ingest.subscription, settings.batching.reindex_page_size,
                                   **settings.kafka.client_options())
        self.consumers += [ingest, reindex_consumer(settings, self.publisher, self.reindexer)]

    def _serve_query(self, store: VectorStore, bi_encoders: BiEncoders) -> None:
        """Queries reuse cached query vectors; mode rerank is refused while the rerankers' backlog is past its limit."""
        settings, batching = self.settings, self.settings.batching
        cache = QueryVectorCache(batching.query_cache_size)
        self.query_cache = cache
        self.metrics.count("cascade_query_cache_total", "Query-vector cache lookups.", "result",
                           lambda: {"hit": cache.hits, "miss": cache.misses})
        kafka = settings.kafka
        if batching.rerank_max_backlog:
            self.reranker_backlog = GroupBacklog(Subscription(kafka.topics.name(Topic.CANDIDATES),
                                                              kafka.group("reranker")), **kafka.client_options())
        backlog = self.reranker_backlog
        self.consumers.append(query_consumer(settings, self.publisher, QueryProcessor(
            settings, store, bi_encoders, self.late_interaction, cache, self.batcher,
            lambda: backlog.records if backlog else 0)))

    def _serve_rerank(self, batcher: RerankBatcher) -> None:
        """The score cache spares the cross-encoder the pairs it has scored already."""
        reranking = RerankProcessor(self.settings, batcher)
        scores = reranking.score_cache
        self.metrics.count("cascade_rerank_score_cache_total", "Reranker score cache lookups, one per pair.",
                           "result", lambda: {"hit": scores.hits, "miss": scores.misses})
        self.consumers += reranker_consumers(self.settings, self.publisher, reranking)

    def _health_server(self) -> HealthServer | None:
        """Probes and metrics are served only where a port is configured: unset, the process serves no HTTP."""
        settings = self.settings
        if settings.metrics_port is None:
            return None
        return HealthServer(self.metrics.registry, self.problems, self.describe, settings.metrics_host,
                            settings.metrics_port)

    async def start(self) -> None:
        await self._check_collections()
        # Everything loaded so far (torch, transformers, the models: millions of objects) lives as long as the
        # process: out of the garbage collector's sight, a full collection no longer stalls the event loop
        # for a quarter of a second scanning it (done before serving: it takes that long once).
        gc.collect()
        gc.freeze()
        await self._connect()
        await check_consumer_access(self.subscriptions, self.settings.kafka.security.describe(),
                                    **self.settings.kafka.client_options())
        if self.batcher:
            self._watch(self.batcher.start())
        if self.index_scheduler:
            self._background.append(self._watch(asyncio.create_task(self.index_scheduler.run(), name="index")))
        for consumer in self.consumers:
            self._watch(await consumer.start())
        kafka = self.settings.kafka
        self._background.append(asyncio.create_task(watch_loop_lag(self.metrics.observe_loop_lag, self._busy),
                                                    name="loop-lag"))
        if self.reranker_backlog:
            self._background.append(asyncio.create_task(self.reranker_backlog.run(), name="reranker-backlog"))
        self._background.append(asyncio.create_task(watch_lag(
            self.metrics.consumer_lag, self.subscriptions, self.settings.lag_interval_s,
            **kafka.client_options()), name="lag"))
        if self.health:
            self._watch(await self.health.start())
        log.info("process.started", roles=sorted(self.roles), instance=self.settings.instance_name,
                 health_port=self.health.port if self.health else None)

    def _busy(self) -> bool:
        """Whether a consumer had records in the last `_BUSY_S` (then the loop's lag is sampled closely)."""
        last = max((consumer.last_records_at for consumer in self.consumers), default=0.0)
        return time.monotonic() - last < _BUSY_S

    @property
    def subscriptions(self) -> list[Subscription]:
        return [consumer.subscription for consumer in self.consumers]

    async def describe(self) -> dict[str, Any]:
        """What this process holds (`/status`): its roles and its store's collections."""
        collections = await collection_status(self.store) if self.store else []
        return {"roles": sorted(self.roles), "collections": [asdict(each) for each in collections]}

    async def problems(self) -> list[str]:
        """What keeps this process from being ready (`/readyz`); empty when ready."""
        found = [] if all(consumer.running for consumer in self.consumers) else ["the consumers are not running"]
        if self.failure is not None:
            found.append(f"a task died: {self.failure!r}")
        if not await self.publisher.ping(timeout_s=2.0):
            found.append(f"Kafka at {self.settings.kafka.bootstrap} does not answer")
        return found

    async def _connect(self) -> None:
        """Provision topics and open the publisher, retrying an unreachable cluster with capped backoff for
        `connect_timeout_s`, then giving up with KafkaUnreachable."""
        kafka = self.settings.kafka
        backoff = kafka.retry_backoff()
        give_up_at = time.monotonic() + kafka.connect_timeout_s
        while True:
            try:
                await provision_topics(kafka.topics, kafka.replication_factor, **kafka.client_options())
                await self.publisher.start()
                return
            except AUTHORIZATION_ERRORS as exc:  # an ACL is missing: retrying cannot help
                raise KafkaAccessError(f"Kafka at {kafka.bootstrap} refused this process "
                                       f"({kafka.security.describe()}): {exc}") from exc
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if (problem := await diagnose(kafka.bootstrap, kafka.security)) is not None:
                    raise problem from exc  # wrong credentials or an untrusted certificate
                if time.monotonic() > give_up_at:
                    raise KafkaUnreachable(f"Kafka at {kafka.bootstrap!r} did not answer within "
                                           f"{kafka.connect_timeout_s:g} s: {exc!r}") from exc
                await backoff.wait(f"connect to Kafka at {kafka.bootstrap}", exc)

    async def _check_collections(self) -> None:
        """Load the models the collections name, and say at start, not per request, which collections this
        process cannot serve."""
        if self.store is None or self.bi_encoders is None:
            return
        if self.settings.models.late_interaction:
            # Loaded now, before serving: loading holds the GIL ~0.2 s, which would stall the event loop mid-run.
            try:
                await self.late_interaction.get()
            except Exception as exc:  # a missing or broken folder: only what needs ColBERT fails, as before
                log.error("late_interaction.unavailable", error=repr(exc),
                          consequence="documents for collections with token vectors are rejected and mode "
                          "colbert is answered model_unavailable")
        for collection in await self.store.collections():
            model = await self.store.collection_model(collection)
            try:
                encoder = await self.bi_encoders.get(model)
            except UnknownModel as exc:
                log.error("collection.model_unavailable", collection=collection, model=model, error=str(exc),
                          consequence="its documents are rejected and its queries answered model_unavailable")
                continue
            size = await self.store.vector_size(collection)
            if size != encoder.dim:
                log.error("collection.model_mismatch", collection=collection, stored_dim=size,
                          model=encoder.model_id, model_dim=encoder.dim,
                          consequence="its documents are rejected and its queries answered model_mismatch")

    def _watch(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        """A task the process cannot work without: if it ends, the process fails (see `run`)."""
        def ended(done: asyncio.Task[None]) -> None:
            if done.cancelled() or self._stopping:
                return
            self.failure = done.exception() or RuntimeError(f"task {done.get_name()} returned")
            log.error("process.task_died", task=done.get_name(), error=repr(self.failure))
            self._failed.set()
        task.add_done_callback(ended)
        return task

    async def stop(self) -> None:
        """Finish in-flight batches (their offsets are committed), leave the consumer groups, close the store."""
        self._stopping = True
        gc.unfreeze()  # what `start` froze may be collected again
        if self.health:
            await self.health.stop()
        for consumer in self.consumers:
            await consumer.stop()
        if self.reindexer:
            await self.reindexer.stop()  # reports its reindexes' failure: before the producer stops
        await self.publisher.close()  # flushes what is queued
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        if self.batcher:
            await self.batcher.stop()
        if self.store:
            await self.store.close()
        log.info("process.stopped", roles=sorted(self.roles))

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT; raise ProcessFailed (after stopping) if a watched task died."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._failed.wait())]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for waiting in pending:
                waiting.cancel()
        finally:
            await self.stop()
        if self.failure is not None:
            raise ProcessFailed(f"a task this process depends on died: {self.failure!r}") from self.failure
