"""The two VectorStore implementations as tests open them: the embedded store in a folder, or QdrantStore on a real
Qdrant server of its own (it starts in a fraction of a second; a missing server binary fails, never skips)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from infra.local_qdrant import LocalQdrant
from services.settings import StoreSettings
from services.store import EdgeStore, QdrantStore, VectorStore, open_store

StoreKind = Literal["edge", "server"]
STORE_KINDS: list[StoreKind] = ["edge", "server"]


@asynccontextmanager
async def opened_store(kind: StoreKind, path: Path, **settings: Any) -> AsyncIterator[VectorStore]:
    if kind == "edge":
        store = open_store(StoreSettings(kind="edge", path=path, **settings))
        assert isinstance(store, EdgeStore)
        try:
            yield store
        finally:
            await store.close()
        return
    with LocalQdrant() as server:
        store = open_store(StoreSettings(kind="qdrant", url=server.url, **settings))
        assert isinstance(store, QdrantStore)
        try:
            yield store
        finally:
            await store.close()
