"""An LRU cache of query vectors: a repeated query skips the bi-encoder."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import numpy.typing as npt

__all__ = ["QueryVectorCache"]

Vector = npt.NDArray[np.float32]


class QueryVectorCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, Vector] = OrderedDict()

    def get(self, query: str) -> Vector | None:
        vector = self._entries.get(query)
        if vector is None:
            self.misses += 1
            return None
        self._entries.move_to_end(query)
        self.hits += 1
        return vector

    def put(self, query: str, vector: Vector) -> None:
        if self.capacity <= 0:
            return
        self._entries[query] = vector
        self._entries.move_to_end(query)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
