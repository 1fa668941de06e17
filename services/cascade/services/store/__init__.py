"""Vector stores: the `VectorStore` interface, `EdgeStore` (embedded, default) and `QdrantStore` (server)."""

from cascade.services.settings import StoreSettings
from cascade.services.store.base import (
    SPARSE_VECTOR,
    VERSION_MARK,
    DocumentText,
    FieldNotFilterable,
    FilterValue,
    ScoredDocument,
    Sparse,
    StoredDocument,
    StoredState,
    UnknownCollectionError,
    VectorSizeMismatch,
    VectorStore,
    base_name,
    first_version,
    point_id,
    version_of,
)
from cascade.services.store.edge import EdgeStore, StoreInUse, collection_names
from cascade.services.store.qdrant import QdrantStore

__all__ = [
    "SPARSE_VECTOR",
    "VERSION_MARK",
    "DocumentText",
    "EdgeStore",
    "FieldNotFilterable",
    "FilterValue",
    "QdrantStore",
    "ScoredDocument",
    "Sparse",
    "StoreInUse",
    "StoredDocument",
    "StoredState",
    "UnknownCollectionError",
    "VectorSizeMismatch",
    "VectorStore",
    "base_name",
    "collection_names",
    "first_version",
    "open_store",
    "point_id",
    "version_of",
]


def open_store(settings: StoreSettings) -> VectorStore:
    return EdgeStore(settings) if settings.kind == "edge" else QdrantStore(settings)
