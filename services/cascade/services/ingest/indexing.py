"""When to build the HNSW index of an embedded store.

Qdrant Edge searches new points brute force until the index is built. The build runs in a child process on
a copy (see EdgeStore.build_index), so serving goes on, but it costs a core for tens of seconds (about 40 s
per 100k points here), while brute force costs about 0.06 ms per 1k points per query: small backlogs are
cheaper to scan than to index. The policy: build once a collection has `min_points` unindexed points and
ingestion has been quiet for `idle_s`, so a bulk load is indexed once, at its end, not every few batches.

A failed build (the optimiser killed for memory, a full disk) costs only speed: the collection is still searched
brute force, so the failure is logged and counted, the collection stays due and is tried again after a capped
exponential backoff, and the scheduler (a task the process cannot lose) goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from cascade.services.faults import Backoff
from cascade.services.store import VectorStore

__all__ = ["IndexScheduler"]

log = structlog.get_logger(__name__)


class IndexScheduler:
    def __init__(self, store: VectorStore, min_points: int, idle_s: float,
                 on_build: Callable[[float], None] | None = None, on_failure: Callable[[], None] | None = None,
                 retry_s: float = 30.0, retry_max_s: float = 1800.0) -> None:
        """`retry_s`: the wait before building a collection again after a failed build, doubling with each
        failure in a row up to `retry_max_s`."""
        self._store = store
        self._on_build = on_build  # told each build's seconds (metrics)
        self._on_failure = on_failure  # told each failed build (metrics)
        self._min_points = min_points
        self._idle_s = idle_s
        self._retry_s, self._retry_max_s = retry_s, retry_max_s
        self._dirty: set[str] = set()
        self._last_write = time.monotonic()
        self._failures: dict[str, Backoff] = {}
        self._retry_at: dict[str, float] = {}
        """Collections whose last build failed: not tried again before this monotonic time."""

    def written(self, collections: set[str]) -> None:
        self._dirty |= collections
        self._last_write = time.monotonic()

    async def build_due(self) -> list[str]:
        """Build the indexes that are due now; returns the collections built."""
        now = time.monotonic()
        if not self._dirty or now - self._last_write < self._idle_s:
            return []
        due = sorted(collection for collection in self._dirty if self._retry_at.get(collection, now) <= now)
        self._dirty -= set(due)  # writes during a build mark their collection again
        built = []
        for collection in due:
            try:
                if await self._build(collection):
                    built.append(collection)
            except Exception as exc:
                self._failed(collection, exc)
            else:
                self._failures.pop(collection, None)
                self._retry_at.pop(collection, None)
        return built

    async def _build(self, collection: str) -> bool:
        """Build `collection`'s index if enough of its points are unindexed; whether it was built."""
        pending = await self._store.pending_index_points(collection)
        if pending < self._min_points:
            return False
        began = time.monotonic()
        await self._store.build_index(collection)
        seconds = time.monotonic() - began
        log.info("index.built", collection=collection, points=pending, seconds=round(seconds, 2))
        if self._on_build:
            self._on_build(seconds)
        return True

    def _failed(self, collection: str, error: Exception) -> None:
        backoff = self._failures.setdefault(collection, Backoff(self._retry_s, self._retry_max_s))
        delay = backoff.failed()
        self._retry_at[collection] = time.monotonic() + delay
        self._dirty.add(collection)
        log.error("index.build_failed", collection=collection, error=repr(error), failures=backoff.failures,
                  retry_in_s=round(delay, 1), consequence="searched brute force until a build succeeds")
        if self._on_failure:
            self._on_failure()

    async def run(self) -> None:
        """Check periodically until cancelled."""
        while True:
            await asyncio.sleep(max(self._idle_s / 2, 0.5))
            await self.build_due()
