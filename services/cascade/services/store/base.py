"""The vector store interface: one API, an embedded (Qdrant Edge) and a server (Qdrant) implementation."""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from cascade.contracts.messages import FILTER_KEY_PATTERN, Passages

__all__ = [
    "RRF_K",
    "TEXT_FIELDS",
    "TOKEN_VECTORS",
    "VERSION_MARK",
    "DocumentText",
    "FieldNotFilterable",
    "FilterFieldKind",
    "FilterValue",
    "ScoredDocument",
    "StoredDocument",
    "StoredState",
    "UnknownCollectionError",
    "VectorSizeMismatch",
    "VectorStore",
    "base_name",
    "build_point",
    "dense_query",
    "field_key",
    "field_path",
    "fields_to_index",
    "filter_field_kind",
    "first_version",
    "point_id",
    "unfilterable",
    "version_of",
]

FilterValue = str | int | bool
FILTER_KEY = re.compile(FILTER_KEY_PATTERN)
FilterFieldKind = Literal["bool", "integer", "keyword"]
_POINT_NAMESPACE = uuid.UUID("6f1b9a6e-4b5c-5d2e-9a1f-0c3a7e5b8d21")


VERSION_MARK = "@v"
"""Versions of a collection (built by a reindex) are named `<name>@v<N>`; users' names cannot hold an "@", and
`<name>` becomes an alias of the version being served."""


def base_name(collection: str) -> str:
    """The name a collection's versions share: `docs@v2` -> `docs`."""
    return collection.split(VERSION_MARK, 1)[0]


def first_version(collection: str) -> str:
    """The collection made for a new name: `docs` is made as `docs@v1` behind the alias `docs` (so a reindex can
    switch it to `docs@v2`); a version's own name as it is."""
    return collection if VERSION_MARK in collection else f"{collection}{VERSION_MARK}1"


def version_of(collection: str) -> int:
    """A version's number: `docs@v2` -> 2."""
    return int(collection.partition(VERSION_MARK)[2])


def point_id(collection: str, doc_id: str) -> str:
    """Deterministic point id (UUIDv5 of the collection's base name and the doc id), so replaying an upsert is
    idempotent and a document keeps its id in every version of its collection."""
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{base_name(collection)}\x1f{doc_id}"))


def filter_field_kind(value: FilterValue) -> FilterFieldKind:
    """The payload index a filter matching `value` needs (a bool is checked first: Python's bools are ints)."""
    return "bool" if isinstance(value, bool) else "integer" if isinstance(value, int) else "keyword"


class UnknownCollectionError(LookupError):
    def __init__(self, collection: str) -> None:
        super().__init__(f"collection {collection!r} does not exist")
        self.collection = collection


class FieldNotFilterable(ValueError):
    """A filter on a metadata field the collection has no payload index for: searches never make one (junk keys
    in queries would use up the cap), writes do, for the fields documents bring, up to the cap."""

    def __init__(self, collection: str, field: str, cap: int) -> None:
        super().__init__(f"collection {base_name(collection)!r} cannot filter on metadata field {field!r}: no "
                         f"document brought it while the collection had fewer than {cap} filterable fields "
                         "(CASCADE_STORE_MAX_FILTER_FIELDS)")


_METADATA = "metadata."


def field_path(key: str) -> str:
    """Where a metadata field lives in a point's payload: what its payload index and a filter on it name."""
    return f"{_METADATA}{key}"


def field_key(path: str) -> str | None:
    """The metadata field a payload index is on (None for an index on anything else)."""
    return path.removeprefix(_METADATA) if path.startswith(_METADATA) else None


def unfilterable(conditions: Iterable[str], indexed: Collection[str]) -> str | None:
    """The first field of a filter that has no payload index (a search refuses it: it never makes one)."""
    return next((key for key in conditions if field_path(key) not in indexed), None)


def fields_to_index(metadata: Iterable[Mapping[str, Any]], indexed: Collection[str], cap: int
                    ) -> dict[str, FilterFieldKind]:
    """The payload indexes (path -> kind) that writes of `metadata` call for: each field not indexed yet, in the
    order they come, while the collection has fewer than `cap`. Left out: keys a filter cannot name (a space, a dot
    would make another path), and floats (filters match str, int and bool); a list is indexed by its first item."""
    wanted: dict[str, FilterFieldKind] = {}
    if len(indexed) >= cap:  # the usual case once a collection is set up: nothing to look at
        return wanted
    for fields in metadata:
        for key, value in fields.items():
            path = field_path(key)
            sample = value[0] if isinstance(value, list) and value else value
            if path in indexed or path in wanted or not FILTER_KEY.fullmatch(key) or isinstance(sample, float) \
                    or not isinstance(sample, str | int | bool):
                continue
            if len(indexed) + len(wanted) >= cap:
                return wanted
            wanted[path] = filter_field_kind(sample)
    return wanted


class VectorSizeMismatch(ValueError):
    """A collection built by one model, used with another: its vectors cannot be compared."""

    def __init__(self, collection: str, stored: int, given: int, model_id: str) -> None:
        super().__init__(
            f"collection {collection!r} holds {stored}-dimensional vectors but the bi-encoder {model_id!r} makes "
            f"{given}-dimensional ones: serve it with the model that built it, or index it anew under another name")


@dataclass(frozen=True)
class StoredState:
    """What the store holds of a document, to decide whether an upsert changes anything."""

    content_hash: str
    metadata: Mapping[str, Any]

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> StoredState:
        return cls(payload["content_hash"], payload.get("metadata", {}))


@dataclass(frozen=True)
class Sparse:
    """A sparse term vector (BM25 term weights by token id); the store applies IDF at search time."""

    indices: list[int]
    values: list[float]


SPARSE_VECTOR = "bm25"
"""The name of every collection's sparse vector (the dense one is unnamed)."""
TOKEN_VECTORS = "colbert"
"""The name of the multivector of token vectors (ColBERT) in collections made with late interaction."""
RRF_K = 60
"""Reciprocal rank fusion's constant (hybrid search), as in the original paper; both stores pass it."""
QUANTIZATION_QUANTILE = 0.99
"""Scalar quantisation's range: the central 99% of values, so a few outliers do not coarsen every step."""


@dataclass(frozen=True)
class StoredDocument:
    """A document as stored: its vectors and the payload a search returns."""

    doc_id: str
    vector: Sequence[float]
    title: str
    text: str
    content_hash: str
    model_id: str
    ingested_at_ms: float
    metadata: Mapping[str, Any] = field(default_factory=dict)
    sparse: Sparse | None = None
    """The document's term vector, for the sparse and hybrid first stages."""
    passage_vectors: Sequence[Sequence[float]] | None = None
    """In a collection of passages (see `passages`): each passage's vector, stored instead of `vector` as one
    multivector compared by MaxSim, so a query's score for the document is that of its best passage."""
    tokens: npt.NDArray[np.float32] | None = None
    """The document's token vectors (tokens x dim), stored when the collection has them (see `token_dim`). An
    array: a batch's token vectors are millions of floats, made into lists only where a store converts them,
    in a worker thread."""

    @property
    def stored_sparse(self) -> Sparse | None:
        """The term vector to store: none for an empty one (a document of stop words only), which the store
        could not index and which would be counted as an indexed vector."""
        return self.sparse if self.sparse and self.sparse.indices else None

    def payload(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id, "title": self.title, "text": self.text, "metadata": dict(self.metadata),
            "content_hash": self.content_hash, "model_id": self.model_id, "ingested_at_ms": self.ingested_at_ms,
        }


@dataclass(frozen=True)
class DocumentText:
    """What a reindex reads back of a stored document to encode it anew."""

    doc_id: str
    title: str
    text: str
    metadata: Mapping[str, Any]
    content_hash: str

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> DocumentText:
        return cls(payload["doc_id"], payload.get("title", ""), payload.get("text", ""), payload.get("metadata", {}),
                   payload["content_hash"])


_P = TypeVar("_P", covariant=True)


class PointType(Protocol[_P]):
    """A point's class in either store's library: both take these keywords."""

    def __call__(self, *, id: str, payload: dict[str, Any], vector: list[float] | list[list[float]] | dict[str, Any]
                 ) -> _P: ...


class SparseVectorType(Protocol):
    """A sparse vector's class in either store's library: both take these keywords."""

    def __call__(self, *, indices: list[int], values: list[float]) -> Any: ...


def dense_query(vector: Sequence[float], passages: Passages | None) -> list[float] | list[list[float]]:
    """A query vector as a collection compares it: as it is, or for a collection of passages a one-row
    multivector, whose MaxSim against a document's passages is its best passage's cosine."""
    return [list(vector)] if passages is not None else list(vector)


def build_point(collection: str, doc: StoredDocument, point: PointType[_P], sparse_vector: SparseVectorType) -> _P:
    """`doc` as a point of `point`'s library: its payload, and its dense vector alone or, with a term vector or
    token vectors, named "" beside them."""
    dense: list[float] | list[list[float]] = list(doc.vector) if doc.passage_vectors is None else [
        list(row) for row in doc.passage_vectors]
    named: dict[str, Any] = {}
    if (terms := doc.stored_sparse) is not None:
        named[SPARSE_VECTOR] = sparse_vector(indices=terms.indices, values=terms.values)
    if doc.tokens is not None:
        named[TOKEN_VECTORS] = doc.tokens.tolist()
    return point(id=point_id(collection, doc.doc_id), payload=doc.payload(),
                 vector={"": dense, **named} if named else dense)


TEXT_FIELDS = ["doc_id", "title", "text", "metadata", "content_hash"]
"""The payload fields `DocumentText` reads."""


@dataclass(frozen=True)
class ScoredDocument:
    doc_id: str
    score: float
    title: str
    text: str
    metadata: Mapping[str, Any]

    @classmethod
    def from_payload(cls, score: float, payload: Mapping[str, Any]) -> ScoredDocument:
        return cls(payload["doc_id"], score, payload.get("title", ""), payload.get("text", ""),
                   payload.get("metadata", {}))


class VectorStore(ABC):
    """Collections of unit vectors under cosine distance, addressed by document id."""

    @abstractmethod
    async def ensure_collection(self, collection: str, dim: int, model: str, token_dim: int | None = None,
                                passages: Passages | None = None) -> None:
        """Create the collection for vectors of `model` (a catalogue name or folder) if it does not exist; with
        `token_dim`, it stores each document's token vectors too (a MaxSim multivector, not indexed); with
        `passages`, each document's dense vector is its passages' vectors (a MaxSim multivector, indexed), split
        as `passages` says, which the collection records."""

    @abstractmethod
    async def passages(self, collection: str) -> Passages | None:
        """How the collection splits documents into passages, if it stores them (see `ensure_collection`)."""

    @abstractmethod
    async def collection_model(self, collection: str) -> str:
        """The model the collection was created for."""

    @abstractmethod
    async def has_collection(self, collection: str) -> bool: ...

    @abstractmethod
    async def collections(self) -> list[str]:
        """The names users address: the aliases (every collection is made behind one, see `first_version`)."""

    @abstractmethod
    async def resolve(self, collection: str) -> str:
        """The collection an alias names; any other name as it is. Every method resolves names itself; callers
        resolve once when several calls must see the same version (a query)."""

    @abstractmethod
    async def switch_alias(self, alias: str, collection: str) -> None:
        """Point `alias` at `collection` atomically: a reader sees the previous target or the new one."""

    @abstractmethod
    async def scroll(self, collection: str, offset: str | None, limit: int
                     ) -> tuple[list[DocumentText], str | None]:
        """Up to `limit` stored documents from `offset` (None: the start), and the offset of the next page (None:
        the end)."""

    @abstractmethod
    async def vector_size(self, collection: str) -> int:
        """The dimension of the collection's vectors."""

    async def stored_states(self, collection: str, doc_ids: Sequence[str]) -> dict[str, StoredState]:
        """The content hash and metadata of each of `doc_ids` that the collection holds."""
        payloads = await self._payloads(collection, doc_ids, ["doc_id", "content_hash", "metadata"])
        return {payload["doc_id"]: StoredState.from_payload(payload) for payload in payloads}

    async def documents(self, collection: str, doc_ids: Sequence[str]) -> dict[str, DocumentText]:
        """The stored text of each of `doc_ids` that the collection holds (what a reindex encodes anew)."""
        payloads = await self._payloads(collection, doc_ids, TEXT_FIELDS)
        return {payload["doc_id"]: DocumentText.from_payload(payload) for payload in payloads}

    @abstractmethod
    async def _payloads(self, collection: str, doc_ids: Sequence[str], fields: list[str]) -> list[dict[str, Any]]:
        """The payload `fields` of each of `doc_ids` that the collection holds."""

    @abstractmethod
    async def update_metadata(self, collection: str, metadata: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the metadata of stored documents (doc id -> metadata), keeping their vectors."""

    @abstractmethod
    async def upsert(self, collection: str, documents: Sequence[StoredDocument]) -> None: ...

    @abstractmethod
    async def delete(self, collection: str, doc_ids: Sequence[str]) -> None: ...

    @abstractmethod
    async def filter_fields(self, collection: str) -> dict[str, FilterFieldKind]:
        """The metadata fields the collection can filter on (those with a payload index), and the kind of each."""

    @abstractmethod
    async def add_filter_fields(self, collection: str, fields: Mapping[str, FilterFieldKind]) -> None:
        """Make these fields filterable whatever the cap: a reindex gives its new version the old one's, rather
        than those its copies happen to bring first."""

    @abstractmethod
    async def token_dim(self, collection: str) -> int | None:
        """The width of the collection's token vectors; None for a collection without them."""

    @abstractmethod
    async def search(
        self, collection: str, vector: Sequence[float] | None, limit: int,
        filter: Mapping[str, FilterValue] | None = None, exact: bool = False, sparse: Sparse | None = None,
        tokens: Sequence[Sequence[float]] | None = None,
    ) -> list[ScoredDocument]:
        """The `limit` best documents: nearest to the dense `vector`, best matches of the `sparse` one, or
        with both, the two lists fused by reciprocal rank (RRF) inside the store. With `tokens` (a query's
        token vectors), the dense `limit` nearest are rescored by MaxSim with the documents' token vectors,
        inside the store. `filter` matches metadata fields exactly; `exact` bypasses the HNSW index (brute
        force), for measuring recall."""

    @abstractmethod
    async def count(self, collection: str) -> int: ...

    @abstractmethod
    async def pending_index_points(self, collection: str) -> int:
        """How many stored points are not yet in the HNSW index (searched brute force until built)."""

    @abstractmethod
    async def build_index(self, collection: str) -> None:
        """Bring the HNSW index up to date with every stored point (may take seconds on large collections)."""

    @abstractmethod
    async def close(self) -> None: ...
