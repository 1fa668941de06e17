"""The two VectorStore implementations as tests open them: the embedded store in a folder, or QdrantStore on a real
Qdrant server of its own (it starts in a fraction of a second; a missing server binary fails, never skips)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal

from cascade.infra.local_qdrant import LocalQdrant
from cascade.services.settings import StoreSettings
from cascade.services.store import VectorStore, open_store

StoreKind = Literal["edge", "server"]
STORE_KINDS: list[StoreKind] = ["edge", "server"]


@contextmanager
def store_settings(kind: StoreKind, path: Path, **settings: Any) -> Iterator[StoreSettings]:
    """Settings of a store of `kind`: a folder at `path`, or a server of its own, stopped on exit."""
    if kind == "edge":
        yield StoreSettings(kind="edge", path=path, **settings)
        return
    with LocalQdrant() as server:
        yield StoreSettings(kind="qdrant", url=server.url, **settings)


@asynccontextmanager
async def opened_store(kind: StoreKind, path: Path, **settings: Any) -> AsyncIterator[VectorStore]:
    with store_settings(kind, path, **settings) as chosen:
        store = open_store(chosen)
        try:
            yield store
        finally:
            await store.close()
