"""One Cascade process: the roles it serves, built around one broker (and, embedded, one vector store)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Literal

import structlog

from infra.provision import provision_topics
from services.encoders import BiEncoder
from services.ingest.indexing import IndexScheduler
from services.ingest.service import register_ingest
from services.messaging import make_broker
from services.settings import Settings
from services.store import open_store

__all__ = ["CascadeProcess", "Role"]

Role = Literal["ingest"]
log = structlog.get_logger(__name__)


class CascadeProcess:
    """Builds the models, store and subscribers of `roles`; `start`/`stop`, or `run` until SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, roles: set[Role]) -> None:
        self.settings = settings
        self.roles = roles
        self.broker = make_broker(settings.kafka)
        self.store = open_store(settings.store)
        models = settings.models
        self.bi_encoder = BiEncoder(models.bi_encoder, max_length=models.bi_max_length,
                                    batch_size=models.encode_batch_size, device=models.device)
        self.index_scheduler = IndexScheduler(self.store, settings.store.index_min_points, settings.store.index_idle_s)
        if "ingest" in roles:
            register_ingest(self.broker, settings, self.store, self.bi_encoder, self.index_scheduler)
        self._background: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        kafka = self.settings.kafka
        await provision_topics(kafka.topics, kafka.replication_factor, **kafka.client_options())
        await self.broker.start()
        if "ingest" in self.roles:
            self._background.append(asyncio.create_task(self.index_scheduler.run()))
        log.info("process.started", roles=sorted(self.roles), instance=self.settings.instance_name)

    async def stop(self) -> None:
        """Finish in-flight batches (their offsets are committed), leave the consumer groups, close the store."""
        await self.broker.stop()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
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
