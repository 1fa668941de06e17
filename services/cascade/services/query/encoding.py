"""Query encoding for a batch of admitted requests: dense vectors through a cache, token vectors for mode colbert."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import numpy.typing as npt

from cascade.services.encoders import BiEncoder, LateInteractionLoader
from cascade.services.encoders.late_interaction import TokenVectors
from cascade.services.lru import LruCache

__all__ = ["QueryEncoder", "QueryVectorCache", "Vector"]

Vector = npt.NDArray[np.float32]
QueryVectorCache = LruCache[tuple[str, str], Vector]
"""Query vectors by (model name, query text): a repeated query skips the bi-encoder."""


class QueryEncoder:
    def __init__(self, cache: QueryVectorCache, late_interaction: LateInteractionLoader) -> None:
        self._cache = cache
        self._late_interaction = late_interaction

    async def vectors(self, queries: list[tuple[BiEncoder, str]]) -> tuple[list[Vector], float]:
        """A vector per (encoder, query), encoding only cache misses (once each, a batch per model), and the
        milliseconds it took."""
        began = time.perf_counter()
        encoders = {encoder.name: encoder for encoder, _ in queries}
        keys = [(encoder.name, query) for encoder, query in queries]
        found = {key: vector for key in set(keys) if (vector := self._cache.get(key)) is not None}
        for name, encoder in encoders.items():
            missing = sorted(query for model, query in set(keys) - set(found) if model == name)
            if missing:
                encoded = await asyncio.to_thread(encoder.encode_queries, missing)
                for query, vector in zip(missing, encoded, strict=True):
                    self._cache.put((name, query), vector)
                    found[name, query] = vector
        return [found[key] for key in keys], (time.perf_counter() - began) * 1000

    async def tokens(self, queries: list[str]) -> tuple[list[TokenVectors], float]:
        """The token vectors of mode colbert's queries (one batch), and the milliseconds it took."""
        if not queries:
            return [], 0.0
        began = time.perf_counter()
        late = await self._late_interaction.get()
        encoded = await asyncio.to_thread(late.encode_queries, queries)
        return encoded, (time.perf_counter() - began) * 1000
