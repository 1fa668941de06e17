"""When to build the HNSW index of an embedded store.

Qdrant Edge searches new points brute force until the index is built. The build runs in a child process on
a copy (see EdgeStore.build_index), so serving goes on, but it costs a core for tens of seconds (about 40 s
per 100k points here), while brute force costs about 0.06 ms per 1k points per query: small backlogs are
cheaper to scan than to index. The policy: build once a collection has `min_points` unindexed points and
ingestion has been quiet for `idle_s`, so a bulk load is indexed once, at its end, not every few batches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from services.store import VectorStore

__all__ = ["IndexScheduler"]

log = structlog.get_logger(__name__)


class IndexScheduler:
    def __init__(self, store: VectorStore, min_points: int, idle_s: float,
                 on_build: Callable[[float], None] | None = None) -> None:
        self._store = store
        self._on_build = on_build  # told each build's seconds (metrics)
        self._min_points = min_points
        self._idle_s = idle_s
        self._dirty: set[str] = set()
        self._last_write = time.monotonic()

    def written(self, collections: set[str]) -> None:
        self._dirty |= collections
        self._last_write = time.monotonic()

    async def build_due(self) -> list[str]:
        """Build the indexes that are due now; returns the collections built."""
        if not self._dirty or time.monotonic() - self._last_write < self._idle_s:
            return []
        built = []
        due, self._dirty = sorted(self._dirty), set()  # writes during a build mark their collection again
        for collection in due:
            pending = await self._store.pending_index_points(collection)
            if pending >= self._min_points:
                began = time.monotonic()
                await self._store.build_index(collection)
                seconds = time.monotonic() - began
                log.info("index.built", collection=collection, points=pending, seconds=round(seconds, 2))
                if self._on_build:
                    self._on_build(seconds)
                built.append(collection)
        return built

    async def run(self) -> None:
        """Check periodically until cancelled."""
        while True:
            await asyncio.sleep(max(self._idle_s / 2, 0.5))
            await self.build_due()
