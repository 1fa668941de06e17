"""Vector stores: the `VectorStore` interface, `EdgeStore` (embedded, default) and `QdrantStore` (server)."""

from services.settings import StoreSettings
from services.store.base import (
    SPARSE_VECTOR,
    FilterFieldLimit,
    FilterValue,
    ScoredDocument,
    Sparse,
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
    "SPARSE_VECTOR",
    "EdgeStore",
    "FilterFieldLimit",
    "FilterValue",
    "QdrantStore",
    "ScoredDocument",
    "Sparse",
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
