"""EdgeStore: Qdrant's own segment engine in-process (qdrant-edge-py), one persistent shard per collection.

Every Edge call holds the GIL for its whole duration (measured). Reads and writes still run in a worker thread
each: a call holds the event loop while it runs either way, but the loop runs between calls, so a batch of
searches or a large upsert (cut into slices) no longer holds it for the whole batch. A call runs to its end even
if its caller is cancelled (a write's journal entry with it), and a shard swapped out is closed only once no
read uses it. New points are searched brute force until the shard is optimised, and `optimize()` holds the GIL
for its whole duration (measured: 39 s for 100k points), which would freeze every consumer of the process
past its session timeout. So the index is built elsewhere: `build_index` flushes the shard, copies it (writes
wait meanwhile, reads do not), optimises the copy in a child process, records the writes made meanwhile,
then loads the indexed copy (0.2 s at 100k points), replays those writes onto it and swaps it in.

Layout: `<path>/<collection>/CURRENT` names the live generation, a shard folder `<path>/<collection>/g<N>`;
`<path>/ALIASES.json` maps aliases to collections (replaced atomically): a collection `docs` is made as `docs@v1`
behind the alias `docs`, so a reindex can build `docs@v2` and switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import numpy as np
from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    Fusion,
    HasVectorCondition,
    HnswIndexConfig,
    MatchValue,
    Memory,
    Modifier,
    MultiVectorComparator,
    MultiVectorConfig,
    PayloadSchemaType,
    Point,
    Prefetch,
    QuantizationSearchParams,
    Query,
    QueryRequest,
    ScalarQuantizationConfig,
    ScalarType,
    ScrollRequest,
    SearchParams,
    SparseVector,
    UpdateOperation,
    VectorStorageDatatype,
)

from cascade.contracts import Passages
from cascade.services.settings import StoreSettings
from cascade.services.store.base import (
    QUANTIZATION_QUANTILE,
    RRF_K,
    SPARSE_VECTOR,
    TEXT_FIELDS,
    TOKEN_VECTORS,
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

if TYPE_CHECKING:  # aliases that exist only in the type stubs
    from qdrant_edge import ConditionType, PointId

__all__ = ["EdgeStore", "IndexBuildFailed", "StoreInUse", "collection_names"]

_CURRENT = "CURRENT"
_SCHEMAS: dict[FilterFieldKind, PayloadSchemaType] = {
    "bool": PayloadSchemaType.Bool, "integer": PayloadSchemaType.Integer, "keyword": PayloadSchemaType.Keyword}
_MODEL = "MODEL"
_PASSAGES = "PASSAGES"
_UPSERT_SLICE = 32
"""Points per Edge update call (32 with ColBERT token vectors is about 0.7 M floats)."""
_T = TypeVar("_T")
_ALIASES = "ALIASES.json"
_LOCK = "LOCK"


class StoreInUse(RuntimeError):
    def __init__(self, root: Path) -> None:
        super().__init__(f"the embedded store at {root} is in use by another process: give this one a folder of "
                         "its own (CASCADE_STORE_PATH), or share a Qdrant server (CASCADE_STORE_KIND=qdrant)")


class IndexBuildFailed(RuntimeError):
    pass


@dataclass
class _Collection:
    """One collection's live shard, and the writes to replay onto the shard being indexed, if any."""

    folder: Path
    generation: int
    shard: EdgeShard
    indexed_fields: set[str]
    dim: int
    token_dim: int | None
    passages: Passages | None
    model: str
    """Read once when opened: asked for every query."""
    writes: asyncio.Lock = field(default_factory=asyncio.Lock)
    journal: list[UpdateOperation] | None = None
    reading: dict[int, int] = field(default_factory=dict)
    """Reads in flight in worker threads, by the id of the shard they read: a shard swapped out by an index
    build is closed only once none is left."""
    unread: dict[int, asyncio.Event] = field(default_factory=dict)
    cleanup: threading.Thread | None = None
    """Removing generations a crash left behind (started when opened): a build waits for it."""

    @property
    def path(self) -> Path:
        return self.folder / f"g{self.generation}"

    async def read(self, call: Callable[[EdgeShard], _T]) -> _T:
        """`call(shard)` in a worker thread (see the module docstring); counted until the thread is done, even
        if the caller is cancelled meanwhile."""
        shard = self.shard
        self.reading[id(shard)] = self.reading.get(id(shard), 0) + 1
        running = asyncio.ensure_future(asyncio.to_thread(call, shard))
        running.add_done_callback(lambda _: self._read_done(shard))
        return await asyncio.shield(running)

    def _read_done(self, shard: EdgeShard) -> None:
        self.reading[id(shard)] -= 1
        if not self.reading[id(shard)]:
            del self.reading[id(shard)]
            if (waiting := self.unread.pop(id(shard), None)) is not None:
                waiting.set()

    async def close_when_unread(self, shard: EdgeShard) -> None:
        if id(shard) in self.reading:
            await self.unread.setdefault(id(shard), asyncio.Event()).wait()
        shard.close()


def _vectors(shard_path: Path) -> tuple[int, int | None]:
    """The dense vectors' size and the token vectors' size, from the shard's configuration."""
    config = json.loads((shard_path / "edge_config.json").read_text())
    tokens = config["vectors"].get(TOKEN_VECTORS)
    return int(config["vectors"][""]["size"]), int(tokens["size"]) if tokens else None


def _passages(folder: Path) -> Passages | None:
    """How the collection splits documents, recorded when it was made (no file: it stores whole documents)."""
    recorded = folder / _PASSAGES
    return Passages.model_validate_json(recorded.read_bytes()) if recorded.is_file() else None


def _upsert_operation(collection: str, documents: Sequence[StoredDocument]) -> UpdateOperation:
    """Built in a worker thread: the floats become lists and Edge's copies here, and those lists are freed here."""
    return UpdateOperation.upsert_points([build_point(collection, doc, Point, SparseVector) for doc in documents])


def _remove_all(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _replayed(path: Path, journal: list[UpdateOperation]) -> EdgeShard:
    """The shard at `path` with `journal` applied and flushed (not shared yet, so built in a worker thread)."""
    shard = EdgeShard.load(str(path))
    for operation in journal:
        shard.update(operation)
    shard.flush()
    return shard


class EdgeStore(VectorStore):
    def __init__(self, settings: StoreSettings) -> None:
        self._settings = settings
        self._rescore = QuantizationSearchParams(rescore=True, oversampling=settings.oversampling)
        """For int8 collections: candidates found on the int8 copies are rescored with the float vectors."""
        self._root = settings.path
        self._lock = _locked(self._root)
        self._collections: dict[str, _Collection] = {}
        """By collection (never by alias)."""
        self._aliases = _read_aliases(self._root)

    def _folder(self, collection: str) -> Path:
        return self._root / collection

    def _open(self, name: str) -> _Collection:
        collection = self._aliases.get(name, name)
        state = self._collections.get(collection)
        if state is None:
            folder = self._folder(collection)
            if not (folder / _CURRENT).is_file():
                raise UnknownCollectionError(collection)
            generation = int((folder / _CURRENT).read_text())
            stale = [found for found in folder.glob("g*") if found.name != f"g{generation}"]  # a build a crash cut
            path = folder / f"g{generation}"
            shard = EdgeShard.load(str(path))
            state = self._collections[collection] = _Collection(
                folder, generation, shard, set(shard.info().payload_schema), *_vectors(path), _passages(folder),
                model=(folder / _MODEL).read_text())
            if stale:  # removed off the event loop
                state.cleanup = threading.Thread(target=_remove_all, args=(stale,), name="rmtree", daemon=True)
                state.cleanup.start()
        return state

    async def ensure_collection(self, collection: str, dim: int, model: str, token_dim: int | None = None,
                                passages: Passages | None = None) -> None:
        if await self.has_collection(collection):
            self._open(collection)
            return
        made = first_version(collection)
        if await self.has_collection(made):  # a crash came between it and its alias
            await self.switch_alias(collection, made)
            return
        quantized = self._settings.quantization == "int8"
        vectors = {"": EdgeVectorParams(
            size=dim, distance=Distance.Cosine, memory=Memory.Cold if quantized else None,
            multivector_config=MultiVectorConfig(MultiVectorComparator.MaxSim) if passages is not None else None)}
        if token_dim is not None:  # rescoring only: no HNSW graph (m=0), half precision (tokens outnumber docs)
            vectors[TOKEN_VECTORS] = EdgeVectorParams(
                size=token_dim, distance=Distance.Cosine, datatype=VectorStorageDatatype.Float16,
                multivector_config=MultiVectorConfig(MultiVectorComparator.MaxSim),
                hnsw_config=HnswIndexConfig(m=0, ef_construct=self._settings.hnsw_ef_construct,
                                            full_scan_threshold=self._settings.full_scan_threshold))
        config = EdgeConfig(
            vectors=vectors,
            quantization_config=ScalarQuantizationConfig(type=ScalarType.Int8, quantile=QUANTIZATION_QUANTILE,
                                                         memory=Memory.Cached) if quantized else None,
            sparse_vectors={SPARSE_VECTOR: EdgeSparseVectorParams(modifier=Modifier.Idf)},
            hnsw_config=HnswIndexConfig(
                m=self._settings.hnsw_m, ef_construct=self._settings.hnsw_ef_construct,
                full_scan_threshold=self._settings.full_scan_threshold,
            ),
        )
        folder = self._folder(made)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / _MODEL).write_text(model)  # before CURRENT: a collection that exists always names its model
        if passages is not None:
            (folder / _PASSAGES).write_text(passages.model_dump_json())
        else:  # a creation with passages that a crash cut before CURRENT left its record
            (folder / _PASSAGES).unlink(missing_ok=True)
        await asyncio.to_thread(shutil.rmtree, folder / "g0", True)  # a creation a crash cut before CURRENT
        shard = await asyncio.to_thread(EdgeShard.create, str(folder / "g0"), config)
        _write_current(folder, 0)
        self._collections[made] = _Collection(folder, 0, shard, set(), dim, token_dim, passages, model)
        if made != collection:
            await self.switch_alias(collection, made)

    async def has_collection(self, collection: str) -> bool:
        collection = self._aliases.get(collection, collection)
        return collection in self._collections or (self._folder(collection) / _CURRENT).is_file()

    async def collections(self) -> list[str]:
        return sorted(self._aliases)

    async def resolve(self, collection: str) -> str:
        return self._aliases.get(collection, collection)

    async def switch_alias(self, alias: str, collection: str) -> None:
        self._open(collection)  # it must exist
        aliases = self._aliases | {alias: collection}
        staging = self._root / f"{_ALIASES}.tmp"
        staging.write_text(json.dumps(aliases, indent=2))
        os.replace(staging, self._root / _ALIASES)
        self._aliases = aliases

    async def scroll(self, collection: str, offset: str | None, limit: int
                     ) -> tuple[list[DocumentText], str | None]:
        request = ScrollRequest(offset=offset, limit=limit, with_payload=TEXT_FIELDS, with_vector=False)
        records, following = await self._open(collection).read(lambda shard: shard.scroll(request))
        return ([DocumentText.from_payload(record.payload) for record in records if record.payload],
                None if following is None else str(following))

    async def vector_size(self, collection: str) -> int:
        return self._open(collection).dim

    async def collection_model(self, collection: str) -> str:
        return self._open(collection).model

    async def _write(self, collection: str, operation: UpdateOperation) -> None:
        """Applied (and journalled during a build) to its end even if the caller is cancelled meanwhile."""
        await asyncio.shield(self._apply(self._open(collection), operation))

    @staticmethod
    async def _apply(state: _Collection, operation: UpdateOperation) -> None:
        async with state.writes:
            await asyncio.to_thread(state.shard.update, operation)
            if state.journal is not None:
                state.journal.append(operation)

    async def _payloads(self, collection: str, doc_ids: Sequence[str], fields: list[str]) -> list[dict[str, Any]]:
        ids: list[PointId] = [point_id(collection, doc_id) for doc_id in doc_ids]
        records = await self._open(collection).read(lambda shard: shard.retrieve(
            ids, with_payload=fields, with_vector=False))
        return [record.payload for record in records if record.payload]

    async def _index_fields(self, collection: str, metadata: Iterable[Mapping[str, Any]]) -> None:
        """Payload indexes for the fields these writes bring (`fields_to_index`): without one a filter scans every
        payload (measured 54 ms vs 0.25 ms)."""
        indexed = self._open(collection).indexed_fields
        await self._make_indexes(collection, fields_to_index(metadata, indexed, self._settings.max_filter_fields))

    async def _make_indexes(self, collection: str, wanted: Mapping[str, FilterFieldKind]) -> None:
        """A payload index on each of these paths the collection has none on."""
        state = self._open(collection)
        for path, kind in wanted.items():
            if path not in state.indexed_fields:
                state.indexed_fields.add(path)  # before the write: a concurrent writer does not make it twice
                await self._write(collection, UpdateOperation.create_field_index(path, _SCHEMAS[kind]))

    async def upsert(self, collection: str, documents: Sequence[StoredDocument]) -> None:
        """In slices of `_UPSERT_SLICE` points: Edge holds the GIL for a whole call, and a batch with ColBERT
        token vectors is millions of floats (the event loop runs between slices)."""
        await self._index_fields(collection, (doc.metadata for doc in documents))
        for start in range(0, len(documents), _UPSERT_SLICE):
            operation = await asyncio.to_thread(_upsert_operation, collection, documents[start : start + _UPSERT_SLICE])
            await self._write(collection, operation)

    async def update_metadata(self, collection: str, metadata: Mapping[str, Mapping[str, Any]]) -> None:
        await self._index_fields(collection, metadata.values())
        for doc_id, fields in metadata.items():
            ids: list[PointId] = [point_id(collection, doc_id)]
            await self._write(collection, UpdateOperation.set_payload(ids, {"metadata": dict(fields)}))

    async def delete(self, collection: str, doc_ids: Sequence[str]) -> None:
        ids: list[PointId] = [point_id(collection, doc_id) for doc_id in doc_ids]
        await self._write(collection, UpdateOperation.delete_points(ids))

    async def filter_fields(self, collection: str) -> dict[str, FilterFieldKind]:
        schema = (await self._open(collection).read(lambda shard: shard.info())).payload_schema
        return {key: kind for path, index in schema.items() if (key := field_key(path)) is not None
                for kind, data_type in _SCHEMAS.items() if index.data_type == data_type}

    async def add_filter_fields(self, collection: str, fields: Mapping[str, FilterFieldKind]) -> None:
        await self._make_indexes(collection, {field_path(key): kind for key, kind in fields.items()})

    def _filter(self, collection: str, conditions: Mapping[str, FilterValue]) -> Filter:
        if (key := unfilterable(conditions, self._open(collection).indexed_fields)) is not None:
            raise FieldNotFilterable(collection, key, self._settings.max_filter_fields)
        must: list[ConditionType] = [FieldCondition(key=field_path(key), match=MatchValue(_matchable(value)))
                                     for key, value in conditions.items()]
        return Filter(must=must)

    async def token_dim(self, collection: str) -> int | None:
        return self._open(collection).token_dim

    async def passages(self, collection: str) -> Passages | None:
        return self._open(collection).passages

    async def search(
        self, collection: str, vector: Sequence[float] | None, limit: int,
        filter: Mapping[str, FilterValue] | None = None, exact: bool = False, sparse: Sparse | None = None,
        tokens: Sequence[Sequence[float]] | None = None,
    ) -> list[ScoredDocument]:
        state = self._open(collection)
        conditions = self._filter(collection, filter) if filter else None
        params = SearchParams(hnsw_ef=max(self._settings.hnsw_ef, limit), exact=exact, quantization=self._rescore)
        queries = [Query.Nearest(dense_query(vector, state.passages))] if vector is not None else []
        if sparse is not None:
            queries.append(Query.Nearest(SparseVector(sparse.indices, sparse.values), using=SPARSE_VECTOR))
        if tokens is not None:
            request = QueryRequest(
                prefetches=[Prefetch(limit=limit, query=query, filter=conditions, params=params) for query in queries],
                query=Query.Nearest([list(row) for row in tokens], using=TOKEN_VECTORS), limit=limit,
                with_payload=True, with_vector=False)
        elif len(queries) == 1:
            request = QueryRequest(query=queries[0], limit=limit, with_payload=True, with_vector=False,
                                   filter=conditions, params=params)
        else:
            request = QueryRequest(
                prefetches=[Prefetch(limit=limit, query=query, filter=conditions, params=params) for query in queries],
                query=Fusion.Rrf(k=RRF_K),  # type: ignore[arg-type]  # the stub names Fusion, not its variants
                limit=limit, with_payload=True, with_vector=False)
        found = await state.read(lambda shard: shard.query(request))
        return [ScoredDocument.from_payload(point.score, point.payload or {}) for point in found]

    async def count(self, collection: str) -> int:
        return int(await self._open(collection).read(lambda shard: shard.count(CountRequest(exact=True))))

    async def pending_index_points(self, collection: str) -> int:
        """Dense vectors not in the HNSW index. Edge counts sparse vectors (always indexed) among the indexed
        vectors, so they are taken off; only non-empty ones are stored (`StoredDocument.stored_sparse`), so
        counting points that have one counts them."""
        state = self._open(collection)
        info = await state.read(lambda shard: shard.info())
        with_sparse = CountRequest(exact=True, filter=Filter(must=[HasVectorCondition(SPARSE_VECTOR)]))
        sparse = await state.read(lambda shard: shard.count(with_sparse))
        return int(info.points_count - (info.indexed_vectors_count - sparse))

    async def build_index(self, collection: str) -> None:
        """Index a copy in a child process, then swap it in (see the module docstring); serving goes on."""
        state = self._open(collection)
        if state.journal is not None:
            return  # a build is running already
        target = state.folder / f"g{state.generation + 1}"
        if state.cleanup is not None:  # it may be removing `target` (a build a crash cut)
            await asyncio.to_thread(state.cleanup.join)
        async with state.writes:
            state.shard.flush()
            await asyncio.to_thread(shutil.rmtree, target, True)
            await asyncio.to_thread(shutil.copytree, state.path, target)
            state.journal = []
        swapped = False
        try:
            await _optimize_in_child(target)
            async with state.writes:
                indexed = await asyncio.to_thread(_replayed, target, list(state.journal))
                _write_current(state.folder, state.generation + 1)
                previous, previous_path = state.shard, state.path
                state.shard, state.generation = indexed, state.generation + 1
                swapped = True
            await state.close_when_unread(previous)
            await asyncio.to_thread(shutil.rmtree, previous_path, True)
        except BaseException:
            if not swapped:  # after the swap `target` is the live generation
                await asyncio.to_thread(shutil.rmtree, target, True)
            raise
        finally:
            state.journal = None

    async def close(self) -> None:
        try:
            for state in self._collections.values():
                state.shard.flush()
                await state.close_when_unread(state.shard)
            self._collections.clear()
        finally:
            self._lock.close()  # and with it the lock


def _read_aliases(root: Path) -> dict[str, str]:
    aliases = root / _ALIASES
    loaded: dict[str, str] = json.loads(aliases.read_text()) if aliases.is_file() else {}
    return loaded


def collection_names(root: Path) -> list[str]:
    """The names users address in an embedded store's folder, read without opening the store (another process
    may serve it, and opening takes its lock)."""
    return sorted(_read_aliases(root))


def _locked(root: Path) -> TextIO:
    """The store folder's lock file, locked for this process: an embedded store serves one process, and a second
    one would fail on a shard's write-ahead log mid-way (or remove a build the first has under way)."""
    root.mkdir(parents=True, exist_ok=True)
    lock = (root / _LOCK).open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StoreInUse(root) from None
    return lock


def _matchable(value: FilterValue) -> FilterValue:
    """Edge's binding reads a Python bool as the integer 0 or 1, which matches no stored bool (every bool filter
    found nothing); a numpy bool reaches it as a bool."""
    return np.bool_(value) if isinstance(value, bool) else value  # type: ignore[return-value]


def _write_current(folder: Path, generation: int) -> None:
    """Atomically: a crash leaves the previous generation or the new one named, never a torn file."""
    staging = folder / f"{_CURRENT}.tmp"
    staging.write_text(str(generation))
    os.replace(staging, folder / _CURRENT)


async def _optimize_in_child(path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("edge_optimize.py")), str(path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await child.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        raise
    if child.returncode != 0:
        raise IndexBuildFailed(f"optimising {path} exited with {child.returncode}: {stderr.decode()[-2000:]}")
