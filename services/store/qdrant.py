"""QdrantStore: a Qdrant server or cluster through qdrant-client's async client (what a multi-pod deployment uses).

With no URL configured it opens qdrant-client's local mode at the store path, which speaks the same API
(brute force, no HNSW): that is how the tests exercise this code path without a server.

A collection `docs` is made as `docs@v1` behind the alias `docs` (Qdrant switches aliases atomically), so a reindex
can build `docs@v2` and switch; names are resolved on every call, so every pod sees a switch at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from qdrant_client import AsyncQdrantClient, models

from services.settings import StoreSettings
from services.store.base import (
    QUANTIZATION_QUANTILE,
    SPARSE_VECTOR,
    TEXT_FIELDS,
    TOKEN_VECTORS,
    VERSION_MARK,
    DocumentText,
    FilterValue,
    ScoredDocument,
    Sparse,
    StoredDocument,
    StoredState,
    UnknownCollectionError,
    VectorStore,
    point_id,
)

__all__ = ["QdrantStore"]

_MODEL = "cascade_model"


class _Described(NamedTuple):
    dim: int
    model: str | None
    sparse: bool
    token_dim: int | None


def _point(collection: str, doc: StoredDocument) -> models.PointStruct:
    named: dict[str, Any] = {}
    if (terms := doc.stored_sparse) is not None:
        named[SPARSE_VECTOR] = models.SparseVector(indices=terms.indices, values=terms.values)
    if doc.tokens is not None:
        named[TOKEN_VECTORS] = doc.tokens.tolist()
    return models.PointStruct(id=point_id(collection, doc.doc_id), payload=doc.payload(),
                              vector={"": list(doc.vector), **named} if named else list(doc.vector))


class QdrantStore(VectorStore):
    def __init__(self, settings: StoreSettings) -> None:
        self._settings = settings
        self._rescore = models.QuantizationSearchParams(rescore=True, oversampling=settings.oversampling)
        """For int8 collections: candidates found on the int8 copies are rescored with the float vectors."""
        self._described_collections: dict[str, _Described] = {}
        if settings.url:
            api_key = settings.api_key.get_secret_value() if settings.api_key else None
            self._client = AsyncQdrantClient(url=settings.url, api_key=api_key)
        else:
            self._client = AsyncQdrantClient(path=str(settings.path))

    async def resolve(self, collection: str) -> str:
        aliases = (await self._client.get_aliases()).aliases
        return next((alias.collection_name for alias in aliases if alias.alias_name == collection), collection)

    async def _require(self, collection: str) -> str:
        """The collection the name resolves to (UnknownCollectionError if none)."""
        resolved = await self.resolve(collection)
        if not await self._client.collection_exists(resolved):
            raise UnknownCollectionError(collection)
        return resolved

    async def switch_alias(self, alias: str, collection: str) -> None:
        collection = await self._require(collection)
        if await self._client.collection_exists(alias):
            raise ValueError(f"{alias!r} is a collection made before versions (not an alias): it cannot be switched "
                             "to a new version; index its documents into a new collection")
        await self._client.update_collection_aliases([
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)),
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)),
        ] if await self.resolve(alias) != alias else [
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=alias))])

    async def scroll(self, collection: str, offset: str | None, limit: int
                     ) -> tuple[list[DocumentText], str | None]:
        records, following = await self._client.scroll(
            await self._require(collection), limit=limit, offset=offset, with_payload=TEXT_FIELDS, with_vectors=False)
        return ([DocumentText.from_payload(record.payload) for record in records if record.payload],
                None if following is None else str(following))

    async def ensure_collection(self, collection: str, dim: int, model: str, token_dim: int | None = None) -> None:
        if await self.has_collection(collection):
            return
        versioned = VERSION_MARK in collection
        quantized = self._settings.quantization == "int8"
        vectors = {"": models.VectorParams(size=dim, distance=models.Distance.COSINE, on_disk=quantized or None)}
        if token_dim is not None:  # rescoring only: no HNSW graph (m=0), half precision (tokens outnumber docs)
            vectors[TOKEN_VECTORS] = models.VectorParams(
                size=token_dim, distance=models.Distance.COSINE, datatype=models.Datatype.FLOAT16,
                multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
                hnsw_config=models.HnswConfigDiff(m=0))
        await self._client.create_collection(
            collection if versioned else f"{collection}{VERSION_MARK}1", metadata={_MODEL: model},
            vectors_config=vectors,
            quantization_config=models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=QUANTIZATION_QUANTILE, always_ram=True)) if quantized else None,
            sparse_vectors_config={SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            hnsw_config=models.HnswConfigDiff(
                m=self._settings.hnsw_m, ef_construct=self._settings.hnsw_ef_construct,
                full_scan_threshold=self._settings.full_scan_threshold,
            ),
        )
        if not versioned:
            await self.switch_alias(collection, f"{collection}{VERSION_MARK}1")

    async def has_collection(self, collection: str) -> bool:
        return await self._client.collection_exists(await self.resolve(collection))

    async def collections(self) -> list[str]:
        aliases = {alias.alias_name for alias in (await self._client.get_aliases()).aliases}
        made = {described.name for described in (await self._client.get_collections()).collections}
        return sorted(aliases | {name for name in made if VERSION_MARK not in name})

    async def _described(self, collection: str) -> _Described:
        """Its vector size, model and sparse vector, asked per request, so cached: none of them ever changes."""
        collection = await self.resolve(collection)  # per call: a switch must be seen at once
        if collection not in self._described_collections:
            await self._require(collection)
            config = (await self._client.get_collection(collection)).config
            vectors = config.params.vectors
            # an unnamed dense vector (collections made before token vectors: the only, unnamed one)
            named = vectors if isinstance(vectors, dict) else {"": vectors}
            tokens = named.get(TOKEN_VECTORS)
            model = (config.metadata or {}).get(_MODEL)
            assert named[""] is not None
            self._described_collections[collection] = _Described(
                named[""].size, model if isinstance(model, str) else None,
                SPARSE_VECTOR in (config.params.sparse_vectors or {}), tokens.size if tokens else None)
        return self._described_collections[collection]

    async def vector_size(self, collection: str) -> int:
        return (await self._described(collection)).dim

    async def collection_model(self, collection: str) -> str | None:
        return (await self._described(collection)).model

    async def has_sparse(self, collection: str) -> bool:
        return (await self._described(collection)).sparse

    async def token_dim(self, collection: str) -> int | None:
        return (await self._described(collection)).token_dim

    async def stored_states(self, collection: str, doc_ids: Sequence[str]) -> dict[str, StoredState]:
        collection = await self._require(collection)
        records = await self._client.retrieve(
            collection, [point_id(collection, doc_id) for doc_id in doc_ids],
            with_payload=["doc_id", "content_hash", "metadata"], with_vectors=False,
        )
        return {record.payload["doc_id"]: StoredState.from_payload(record.payload)
                for record in records if record.payload}

    async def update_metadata(self, collection: str, metadata: Mapping[str, Mapping[str, Any]]) -> None:
        collection = await self._require(collection)
        for doc_id, fields in metadata.items():
            await self._client.set_payload(collection, {"metadata": dict(fields)},
                                           points=[point_id(collection, doc_id)], wait=True)

    async def upsert(self, collection: str, documents: Sequence[StoredDocument]) -> None:
        collection = await self._require(collection)
        points = await asyncio.to_thread(lambda: [_point(collection, doc) for doc in documents])  # off the loop
        await self._client.upsert(collection, points, wait=True)

    async def delete(self, collection: str, doc_ids: Sequence[str]) -> None:
        collection = await self._require(collection)
        selector = models.PointIdsList(points=[point_id(collection, doc_id) for doc_id in doc_ids])
        await self._client.delete(collection, selector, wait=True)

    async def search(
        self, collection: str, vector: Sequence[float] | None, limit: int,
        filter: Mapping[str, FilterValue] | None = None, exact: bool = False, sparse: Sparse | None = None,
        tokens: Sequence[Sequence[float]] | None = None,
    ) -> list[ScoredDocument]:
        collection = await self._require(collection)
        query_filter = models.Filter(must=[
            models.FieldCondition(key=f"metadata.{key}", match=models.MatchValue(value=value))
            for key, value in filter.items()
        ]) if filter else None
        params = models.SearchParams(hnsw_ef=max(self._settings.hnsw_ef, limit), exact=exact,
                                     quantization=self._rescore)
        stages = [models.Prefetch(query=list(vector), limit=limit, filter=query_filter, params=params)
                  ] if vector is not None else []
        if sparse is not None:
            stages.append(models.Prefetch(query=models.SparseVector(indices=sparse.indices, values=sparse.values),
                                          using=SPARSE_VECTOR, limit=limit, filter=query_filter))
        if tokens is not None:
            response = await self._client.query_points(
                collection, prefetch=stages, query=[list(row) for row in tokens], using=TOKEN_VECTORS, limit=limit,
                with_payload=True)
        elif len(stages) == 1:
            [stage] = stages
            response = await self._client.query_points(
                collection, query=stage.query, using=stage.using, limit=limit, query_filter=query_filter,
                with_payload=True, search_params=params)
        else:
            response = await self._client.query_points(
                collection, prefetch=stages, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=limit,
                with_payload=True)
        return [ScoredDocument.from_payload(point.score, point.payload or {}) for point in response.points]

    async def count(self, collection: str) -> int:
        collection = await self._require(collection)
        return (await self._client.count(collection, exact=True)).count

    async def pending_index_points(self, collection: str) -> int:
        return 0  # the server's optimizer indexes new points in the background

    async def build_index(self, collection: str) -> None:
        await self._require(collection)  # nothing to do: the server indexes by itself

    async def close(self) -> None:
        await self._client.close()
