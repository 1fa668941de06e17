"""An LRU cache of query vectors by (model, query): a repeated query skips the bi-encoder."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import numpy.typing as npt

__all__ = ["QueryVectorCache"]

Vector = npt.NDArray[np.float32]
Key = tuple[str, str]
"""(model name, query text)"""


class QueryVectorCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Key, Vector] = OrderedDict()

    def get(self, key: Key) -> Vector | None:
        vector = self._entries.get(key)
        if vector is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return vector

    def put(self, key: Key, vector: Vector) -> None:
        if self.capacity <= 0:
            return
        self._entries[key] = vector
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
