"""QdrantStore: a Qdrant server or cluster through qdrant-client's async client (what a multi-pod deployment uses).

It knows every peer of a cluster (`CASCADE_STORE_URL`, comma-separated) and moves to the next one when the peer it
uses cannot be reached: any peer serves any call, forwarding to the shards' holders.

A collection `docs` is made as `docs@v1` behind the alias `docs` (Qdrant switches aliases atomically), so a reindex
can build `docs@v2` and switch; names are resolved on every call, so every pod sees a switch at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple, TypeVar, cast

import httpx
import structlog
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from cascade.contracts import Passages
from cascade.services.settings import StoreSettings
from cascade.services.store.base import (
    QUANTIZATION_QUANTILE,
    RRF_K,
    SPARSE_VECTOR,
    TEXT_FIELDS,
    TOKEN_VECTORS,
    VERSION_MARK,
    DocumentText,
    FieldNotFilterable,
    FilterFieldKind,
    FilterValue,
    ScoredDocument,
    Sparse,
    StoredDocument,
    UnknownCollectionError,
    VectorStore,
    build_point,
    dense_query,
    field_key,
    field_path,
    fields_to_index,
    first_version,
    point_id,
    unfilterable,
)

__all__ = ["QdrantStore"]

_MODEL = "cascade_model"
_PASSAGES = "cascade_passages"
_T = TypeVar("_T")
_REREAD_S = 1.0
_UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout)
"""What a peer that cannot be reached fails with (nothing was sent to it)."""

log = structlog.get_logger(__name__)


class _Described(NamedTuple):
    dim: int
    model: str
    token_dim: int | None
    passages: Passages | None


class QdrantStore(VectorStore):
    def __init__(self, settings: StoreSettings) -> None:
        self._settings = settings
        self._rescore = models.QuantizationSearchParams(rescore=True, oversampling=settings.oversampling)
        """For int8 collections: candidates found on the int8 copies are rescored with the float vectors."""
        self._described_collections: dict[str, _Described] = {}
        self._indexes: dict[str, tuple[float, set[str]]] = {}
        """Payload indexes by collection: when they were last read from the server, and their paths."""
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        self._peers = [AsyncQdrantClient(url=url, api_key=api_key, timeout=settings.request_timeout_s)
                       for url in settings.peer_urls]
        self._peer = 0
        """The peer in use."""

    async def _on_peer(self, call: Callable[[AsyncQdrantClient], Awaitable[_T]]) -> _T:
        """`call` on the peer in use; if that peer cannot be reached (no connection: a call that reached it and
        timed out may have been applied, and is not sent again), on the next peer, each at most once."""
        for attempt in range(len(self._peers)):
            peer = self._peer
            try:
                return await call(self._peers[peer])
            except ResponseHandlingException as exc:
                if attempt == len(self._peers) - 1 or not isinstance(exc.source, _UNREACHABLE):
                    raise
                if self._peer == peer:  # a call that failed meanwhile may have moved on already
                    self._peer = (peer + 1) % len(self._peers)
                log.warning("qdrant.failover", unreachable=self._settings.peer_urls[peer],
                            next=self._settings.peer_urls[self._peer], error=repr(exc.source))
        raise AssertionError("unreachable: the loop returns or raises")

    async def resolve(self, collection: str) -> str:
        if VERSION_MARK in collection:  # a version already (names users give cannot hold the mark): no round trip
            return collection
        aliases = (await self._on_peer(lambda client: client.get_aliases())).aliases
        return next((alias.collection_name for alias in aliases if alias.alias_name == collection), collection)

    async def _exists(self, collection: str) -> bool:
        return await self._on_peer(lambda client: client.collection_exists(collection))

    async def _require(self, collection: str) -> str:
        """The collection the name resolves to (UnknownCollectionError if none)."""
        resolved = await self.resolve(collection)
        if not await self._exists(resolved):
            raise UnknownCollectionError(collection)
        return resolved

    async def switch_alias(self, alias: str, collection: str) -> None:
        collection = await self._require(collection)
        create = models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection,
                                                                             alias_name=alias))
        operations: list[models.AliasOperations] = [create]
        if await self.resolve(alias) != alias:
            operations.insert(0, models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        await self._on_peer(lambda client: client.update_collection_aliases(operations))

    async def scroll(self, collection: str, offset: str | None, limit: int
                     ) -> tuple[list[DocumentText], str | None]:
        resolved = await self._require(collection)
        records, following = await self._on_peer(lambda client: client.scroll(
            resolved, limit=limit, offset=offset, with_payload=TEXT_FIELDS, with_vectors=False))
        return ([DocumentText.from_payload(record.payload) for record in records if record.payload],
                None if following is None else str(following))

    async def ensure_collection(self, collection: str, dim: int, model: str, token_dim: int | None = None,
                                passages: Passages | None = None) -> None:
        if await self.has_collection(collection):
            return
        made = first_version(collection)
        quantized = self._settings.quantization == "int8"
        vectors = {"": models.VectorParams(
            size=dim, distance=models.Distance.COSINE, on_disk=quantized or None,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
            if passages is not None else None)}
        if token_dim is not None:  # rescoring only: no HNSW graph (m=0), half precision (tokens outnumber docs)
            vectors[TOKEN_VECTORS] = models.VectorParams(
                size=token_dim, distance=models.Distance.COSINE, datatype=models.Datatype.FLOAT16,
                multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
                hnsw_config=models.HnswConfigDiff(m=0))
        settings = self._settings
        try:
            await self._on_peer(lambda client: client.create_collection(
                made, metadata={_MODEL: model, **({_PASSAGES: passages.model_dump()} if passages is not None else {})},
                vectors_config=vectors, shard_number=settings.shards, replication_factor=settings.copies,
                quantization_config=models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
                    type=models.ScalarType.INT8, quantile=QUANTIZATION_QUANTILE, always_ram=True)
                ) if quantized else None,
                sparse_vectors_config={SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                hnsw_config=models.HnswConfigDiff(m=settings.hnsw_m, ef_construct=settings.hnsw_ef_construct,
                                                  full_scan_threshold=settings.full_scan_threshold),
            ))
        except UnexpectedResponse:
            if not await self._exists(made):
                raise  # else another pod made it meanwhile, or a crash came between it and its alias
        if made != collection:
            await self.switch_alias(collection, made)

    async def has_collection(self, collection: str) -> bool:
        return await self._exists(await self.resolve(collection))

    async def collections(self) -> list[str]:
        return sorted(alias.alias_name for alias in (await self._on_peer(lambda client: client.get_aliases())).aliases)

    async def _info(self, collection: str) -> models.CollectionInfo:
        return await self._on_peer(lambda client: client.get_collection(collection))

    async def _described(self, collection: str) -> _Described:
        """Its vector sizes and model, asked per request, so cached: none of them ever changes."""
        collection = await self.resolve(collection)  # per call: a switch must be seen at once
        if collection not in self._described_collections:
            await self._require(collection)
            config = (await self._info(collection)).config
            vectors = config.params.vectors
            named = vectors if isinstance(vectors, dict) else {"": vectors}
            tokens = named.get(TOKEN_VECTORS)
            assert named[""] is not None and config.metadata is not None
            self._described_collections[collection] = _Described(
                named[""].size, str(config.metadata[_MODEL]), tokens.size if tokens else None,
                Passages.model_validate(config.metadata[_PASSAGES]) if _PASSAGES in config.metadata else None)
        return self._described_collections[collection]

    async def vector_size(self, collection: str) -> int:
        return (await self._described(collection)).dim

    async def collection_model(self, collection: str) -> str:
        return (await self._described(collection)).model

    async def token_dim(self, collection: str) -> int | None:
        return (await self._described(collection)).token_dim

    async def passages(self, collection: str) -> Passages | None:
        return (await self._described(collection)).passages

    async def _payloads(self, collection: str, doc_ids: Sequence[str], fields: list[str]) -> list[dict[str, Any]]:
        resolved = await self._require(collection)
        records = await self._on_peer(lambda client: client.retrieve(
            resolved, [point_id(resolved, doc_id) for doc_id in doc_ids], with_payload=fields, with_vectors=False))
        return [record.payload for record in records if record.payload]

    async def update_metadata(self, collection: str, metadata: Mapping[str, Mapping[str, Any]]) -> None:
        resolved = await self._require(collection)
        await self._index_fields(resolved, metadata.values())
        operations: list[models.UpdateOperation] = [
            models.SetPayloadOperation(set_payload=models.SetPayload(payload={"metadata": dict(fields)},
                                                                     points=[point_id(resolved, doc_id)]))
            for doc_id, fields in metadata.items()]
        await self._on_peer(lambda client: client.batch_update_points(resolved, operations, wait=True))

    async def upsert(self, collection: str, documents: Sequence[StoredDocument]) -> None:
        resolved = await self._require(collection)
        await self._index_fields(resolved, (doc.metadata for doc in documents))
        points = await asyncio.to_thread(lambda: [  # off the loop
            build_point(resolved, doc, models.PointStruct, models.SparseVector) for doc in documents])
        await self._on_peer(lambda client: client.upsert(resolved, points, wait=True))

    async def delete(self, collection: str, doc_ids: Sequence[str]) -> None:
        resolved = await self._require(collection)
        selector = models.PointIdsList(points=[point_id(resolved, doc_id) for doc_id in doc_ids])
        await self._on_peer(lambda client: client.delete(resolved, selector, wait=True))

    async def _indexed(self, collection: str, fresh: bool = False) -> set[str]:
        """The collection's payload indexes, as last read from the server (`fresh`: read again if that was over
        `_REREAD_S` ago, since another pod may have made one; filters on junk keys cost one read a second)."""
        read_at, indexed = self._indexes.get(collection, (None, set()))
        if read_at is None or (fresh and time.monotonic() - read_at > _REREAD_S):
            indexed = set((await self._info(collection)).payload_schema)
            self._indexes[collection] = (time.monotonic(), indexed)
        return indexed

    async def _index_fields(self, collection: str, metadata: Iterable[Mapping[str, Any]]) -> None:
        """Payload indexes for the fields these writes bring (`fields_to_index`), made before the points; the
        server is asked again only when the cached set says some are due."""
        metadata = list(metadata)
        cap = self._settings.max_filter_fields
        if fields_to_index(metadata, await self._indexed(collection), cap):
            await self._make_indexes(collection, fields_to_index(metadata, await self._indexed(collection, True), cap))

    async def _make_indexes(self, collection: str, wanted: Mapping[str, FilterFieldKind]) -> None:
        """A payload index on each of these paths the collection has none on (another pod may have made it)."""
        indexed = await self._indexed(collection, fresh=True)
        for path, kind in wanted.items():
            if path not in indexed:
                await self._on_peer(partial(AsyncQdrantClient.create_payload_index, collection_name=collection,
                                            field_name=path, field_schema=models.PayloadSchemaType(kind), wait=True))
                indexed.add(path)

    async def filter_fields(self, collection: str) -> dict[str, FilterFieldKind]:
        schema = (await self._info(await self._require(collection))).payload_schema
        return {key: cast(FilterFieldKind, index.data_type.value) for path, index in schema.items()
                if (key := field_key(path)) is not None and index.data_type.value in ("bool", "integer", "keyword")}

    async def add_filter_fields(self, collection: str, fields: Mapping[str, FilterFieldKind]) -> None:
        await self._make_indexes(await self._require(collection),
                                 {field_path(key): kind for key, kind in fields.items()})

    async def _filter(self, collection: str, conditions: Mapping[str, FilterValue]) -> models.Filter:
        """Exact matches on metadata fields, each through its payload index (a search never makes one). A field the
        cached set lacks is looked up again first: another pod's writes may have made its index."""
        if unfilterable(conditions, await self._indexed(collection)) is not None and (
                key := unfilterable(conditions, await self._indexed(collection, fresh=True))) is not None:
            raise FieldNotFilterable(collection, key, self._settings.max_filter_fields)
        return models.Filter(must=[models.FieldCondition(key=field_path(key), match=models.MatchValue(value=value))
                                   for key, value in conditions.items()])

    async def search(
        self, collection: str, vector: Sequence[float] | None, limit: int,
        filter: Mapping[str, FilterValue] | None = None, exact: bool = False, sparse: Sparse | None = None,
        tokens: Sequence[Sequence[float]] | None = None,
    ) -> list[ScoredDocument]:
        resolved = await self._require(collection)
        query_filter = await self._filter(resolved, filter) if filter else None
        params = models.SearchParams(hnsw_ef=max(self._settings.hnsw_ef, limit), exact=exact,
                                     quantization=self._rescore)
        stages = [models.Prefetch(query=dense_query(vector, (await self._described(resolved)).passages),
                                  limit=limit, filter=query_filter, params=params)] if vector is not None else []
        if sparse is not None:
            stages.append(models.Prefetch(query=models.SparseVector(indices=sparse.indices, values=sparse.values),
                                          using=SPARSE_VECTOR, limit=limit, filter=query_filter))
        if tokens is not None:
            query: dict[str, Any] = {"prefetch": stages, "query": [list(row) for row in tokens],
                                     "using": TOKEN_VECTORS}
        elif len(stages) == 1:
            [stage] = stages
            query = {"query": stage.query, "using": stage.using, "query_filter": query_filter,
                     "search_params": params}
        else:
            query = {"prefetch": stages, "query": models.RrfQuery(rrf=models.Rrf(k=RRF_K))}
        response = await self._on_peer(lambda client: client.query_points(
            resolved, limit=limit, with_payload=True, **query))
        return [ScoredDocument.from_payload(point.score, point.payload or {}) for point in response.points]

    async def count(self, collection: str) -> int:
        resolved = await self._require(collection)
        return (await self._on_peer(lambda client: client.count(resolved, exact=True))).count

    async def pending_index_points(self, collection: str) -> int:
        return 0  # the server's optimizer indexes new points in the background

    async def build_index(self, collection: str) -> None:
        await self._require(collection)  # nothing to do: the server indexes by itself

    async def close(self) -> None:
        for peer in self._peers:
            await peer.close()
