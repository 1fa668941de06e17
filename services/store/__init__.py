"""Vector stores: the `VectorStore` interface, `EdgeStore` (embedded, default) and `QdrantStore` (server)."""

from services.settings import StoreSettings
from services.store.base import (
    FilterFieldLimit,
    FilterValue,
    ScoredDocument,
    StoredDocument,
    StoredState,
    UnknownCollectionError,
    VectorSizeMismatch,
    VectorStore,
    point_id,
)
from services.store.edge import EdgeStore
from services.store.qdrant import QdrantStore

__all__ = [
    "EdgeStore",
    "FilterFieldLimit",
    "FilterValue",
    "QdrantStore",
    "ScoredDocument",
    "StoredDocument",
    "StoredState",
    "UnknownCollectionError",
    "VectorSizeMismatch",
    "VectorStore",
    "open_store",
    "point_id",
]


def open_store(settings: StoreSettings) -> VectorStore:
    return EdgeStore(settings) if settings.kind == "edge" else QdrantStore(settings)
