"""The same behaviour from both VectorStore implementations, and the HNSW recall of the embedded one."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cascade.services.encoders.sparse import Bm25Encoder
from cascade.services.ingest import IndexScheduler
from cascade.services.metrics import Metrics
from cascade.services.settings import StoreSettings
from cascade.services.store import EdgeStore, StoredDocument, StoreInUse, UnknownCollectionError, VectorStore
from cascade.services.store.edge import IndexBuildFailed
from tests.processes import CLI_HANG_GUARD_S, run_cli
from tests.stores import STORE_KINDS, StoreKind, opened_store

DIM = 16


def _doc(doc_id: str, vector: np.ndarray, content_hash: str = "h", **metadata: str | int | bool) -> StoredDocument:
    return StoredDocument(doc_id=doc_id, vector=vector.tolist(), title=f"title {doc_id}", text=f"text {doc_id}",
                          content_hash=content_hash, model_id="m", ingested_at_ms=0.0, metadata=metadata)


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    async with opened_store(request.param, tmp_path / "store") as opened:
        yield opened


async def test_upsert_lookup_search_delete(store: VectorStore) -> None:
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 50)
    await store.ensure_collection("c", DIM, "m")
    await store.ensure_collection("c", DIM, "other-model")  # idempotent: the first model stays
    assert await store.has_collection("c")
    assert await store.collection_model("c") == "m"
    assert not await store.has_collection("other")
    await store.upsert("c", [_doc(f"d{i}", v, lang="en" if i % 2 else "fr") for i, v in enumerate(vectors)])
    await store.upsert("c", [_doc("d3", vectors[3], content_hash="h2", lang="en")])  # replaces, same point id
    assert await store.count("c") == 50
    states = await store.stored_states("c", ["d3", "d4", "missing"])
    assert {doc_id: state.content_hash for doc_id, state in states.items()} == {"d3": "h2", "d4": "h"}
    assert dict(states["d4"].metadata) == {"lang": "fr"}
    assert await store.vector_size("c") == DIM
    assert await store.collections() == ["c"]

    hits = await store.search("c", vectors[7].tolist(), limit=5)
    assert hits[0].doc_id == "d7"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].title == "title d7"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    exact = sorted(range(50), key=lambda i: -float(vectors[i] @ vectors[7]))[:5]
    assert [h.doc_id for h in hits] == [f"d{i}" for i in exact]

    filtered = await store.search("c", vectors[7].tolist(), limit=50, filter={"lang": "fr"})
    assert len(filtered) == 25
    assert all(int(h.doc_id[1:]) % 2 == 0 for h in filtered)

    await store.delete("c", ["d7", "never-stored"])
    assert await store.count("c") == 49
    assert "d7" not in {h.doc_id for h in await store.search("c", vectors[7].tolist(), limit=10)}


TEXTS = {"cat": "the cat sat on the mat", "dog": "dogs chase the postman", "hole": "black holes bend light",
         "pet": "a cat and a dog share a home"}


async def test_sparse_and_hybrid_search(store: VectorStore) -> None:
    bm25 = Bm25Encoder()
    vectors = dict(zip(TEXTS, _unit(np.random.default_rng(3), len(TEXTS)), strict=True))
    await store.ensure_collection("c", DIM, "m")
    await store.upsert("c", [
        replace(_doc(doc_id, vectors[doc_id], lang="en"), text=text, sparse=sparse)
        for (doc_id, text), sparse in zip(TEXTS.items(), bm25.encode_documents(list(TEXTS.values())), strict=True)])

    stop_words_only = replace(_doc("none", _unit(np.random.default_rng(4), 1)[0]),
                              sparse=bm25.encode_documents(["the of a"])[0])
    await store.upsert("c", [stop_words_only])
    if isinstance(store, EdgeStore):  # sparse vectors are indexed at once; the dense ones all still wait
        assert await store.pending_index_points("c") == len(TEXTS) + 1

    by_terms = await store.search("c", None, 10, sparse=bm25.encode_query("cats"))
    assert {doc.doc_id for doc in by_terms} == {"cat", "pet"}  # stemmed: cats -> cat; no other document matches
    assert (await store.search("c", None, 10, sparse=bm25.encode_query("holes")))[0].doc_id == "hole"

    hybrid = await store.search("c", vectors["dog"].tolist(), 3, sparse=bm25.encode_query("black hole light"))
    assert {doc.doc_id for doc in hybrid[:2]} == {"dog", "hole"}  # first of each list, fused by rank
    assert hybrid[0].score == pytest.approx(hybrid[1].score)  # RRF: the same rank in one list each
    filtered = await store.search("c", vectors["dog"].tolist(), 3, {"lang": "xx"},
                                  sparse=bm25.encode_query("cat"))
    assert filtered == []


async def test_metadata_update_keeps_the_vector(store: VectorStore) -> None:
    vectors = _unit(np.random.default_rng(3), 4)
    await store.ensure_collection("c", DIM, "m")
    await store.upsert("c", [_doc(f"d{i}", v, color="red") for i, v in enumerate(vectors)])
    await store.update_metadata("c", {"d1": {"color": "blue", "size": 3}})
    assert dict((await store.stored_states("c", ["d1"]))["d1"].metadata) == {"color": "blue", "size": 3}
    assert [hit.doc_id for hit in await store.search("c", vectors[1].tolist(), 4, filter={"color": "blue"})] == ["d1"]
    assert "d1" not in {hit.doc_id for hit in await store.search("c", vectors[1].tolist(), 4, filter={"color": "red"})}
    assert (await store.search("c", vectors[1].tolist(), 1))[0].score == pytest.approx(1.0, abs=1e-5)


async def test_unknown_collection_is_a_clear_error(store: VectorStore) -> None:
    with pytest.raises(UnknownCollectionError, match="collection 'nope' does not exist"):
        await store.search("nope", [0.0] * DIM, limit=3)


async def test_edge_store_persists_across_reopen(tmp_path: Path) -> None:
    settings = StoreSettings(path=tmp_path)
    first = EdgeStore(settings)
    await first.ensure_collection("c", DIM, "m")
    await first.upsert("c", [_doc("a", _unit(np.random.default_rng(2), 1)[0])])
    await first.close()
    second = EdgeStore(settings)
    assert await second.count("c") == 1
    await second.close()


async def test_a_second_process_on_an_embedded_store_gets_one_line_naming_the_setting(tmp_path: Path) -> None:
    """An embedded store serves one process. A second `cascade serve` on the same folder used to die on a shard's
    write-ahead-log lock with a 29-line traceback (after tidying folders the first process was using)."""
    held = EdgeStore(StoreSettings(path=tmp_path / "store"))
    await held.ensure_collection("c", DIM, "m")
    try:
        with pytest.raises(StoreInUse, match=r"in use by another process.*CASCADE_STORE_PATH"):
            EdgeStore(StoreSettings(path=tmp_path / "store"))
        refused = run_cli(os.environ | {"CASCADE_STORE_KIND": "edge", "CASCADE_STORE_PATH": str(tmp_path / "store"),
                                        "CASCADE_KAFKA_BOOTSTRAP": "127.0.0.1:1"},  # never reached: the store is first
                          "serve", "query")
    finally:
        await held.close()
    message = refused.stderr.decode().strip()
    assert refused.returncode == 1 and len(message.splitlines()) == 1
    assert message.startswith("cascade serve: the embedded store at") and "CASCADE_STORE_PATH" in message
    reopened = EdgeStore(StoreSettings(path=tmp_path / "store"))  # free again once the first one closed
    assert await reopened.collections() == ["c"]
    await reopened.close()


async def test_edge_index_builds_in_a_child_while_reads_and_writes_go_on(tmp_path: Path) -> None:
    """The HNSW build runs on a copy in another process; writes made meanwhile are replayed onto the new
    generation, which replaces the old one; the store reopens on it."""
    rng = np.random.default_rng(5)
    n = 8_000  # above Edge's indexing threshold (~6.5k 384-d vectors per segment)
    vectors = _unit(rng, n + 100, 384)
    settings = StoreSettings(path=tmp_path)
    store = EdgeStore(settings)
    await store.ensure_collection("c", 384, "m")
    for start in range(0, n, 2_000):
        await store.upsert("c", [_doc(f"d{i}", vectors[i]) for i in range(start, start + 2_000)])
    build = asyncio.create_task(store.build_index("c"))
    searched = 0
    while not build.done():  # the event loop is free: reads and writes keep going
        assert (await store.search("c", vectors[searched % n].tolist(), 1))[0].doc_id == f"d{searched % n}"
        if searched < 100:
            await store.upsert("c", [_doc(f"d{n + searched}", vectors[n + searched])])
        if searched == 10:
            await store.delete("c", ["d0"])
            await store.update_metadata("c", {"d1": {"color": "blue"}})
        searched += 1
        await asyncio.sleep(0.01)
    await build
    assert searched > 100, "the build should take longer than a hundred searches"
    assert await store.count("c") == n + 100 - 1
    assert await store.pending_index_points("c") <= 100  # only what was written during the build
    assert sorted(path.name for path in (tmp_path / "c@v1").iterdir()) == ["CURRENT", "MODEL", "g1"]
    await store.close()
    reopened = EdgeStore(settings)
    assert await reopened.count("c") == n + 100 - 1
    assert dict((await reopened.stored_states("c", ["d1"]))["d1"].metadata) == {"color": "blue"}
    assert (await reopened.search("c", vectors[n + 50].tolist(), 1))[0].doc_id == f"d{n + 50}"
    await reopened.close()


async def test_edge_hnsw_recall_at_100_on_20k_random_unit_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    dim, n = 384, 20_000
    vectors = _unit(rng, n, dim)
    store = EdgeStore(StoreSettings(path=tmp_path))
    await store.ensure_collection("c", dim, "m")
    for start in range(0, n, 2_000):
        await store.upsert("c", [_doc(f"d{i}", vectors[i]) for i in range(start, start + 2_000)])
    assert await store.pending_index_points("c") == n
    await store.build_index("c")
    assert await store.pending_index_points("c") == 0
    queries = _unit(rng, 50, dim)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :100]
    recalls = []
    for query, expected in zip(queries, truth, strict=True):
        found = {hit.doc_id for hit in await store.search("c", query.tolist(), limit=100)}
        recalls.append(len(found & {f"d{i}" for i in expected}) / 100)
    await store.close()
    assert float(np.mean(recalls)) >= 0.98


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_int8_quantised_collections_rescore_with_the_original_vectors(kind: StoreKind, tmp_path: Path) -> None:
    """Both stores search the int8 copies once indexed and return float cosine scores (rescored); the nearest
    neighbours match exact search."""
    rng = np.random.default_rng(11)
    n, dim = 8_000, 384
    vectors = _unit(rng, n, dim)
    queries = _unit(rng, 20, dim)
    recalls = []
    async with opened_store(kind, tmp_path, quantization="int8") as store:
        await store.ensure_collection("c", dim, "m")
        for start in range(0, n, 2_000):
            await store.upsert("c", [_doc(f"d{i}", vectors[i]) for i in range(start, start + 2_000)])
        await store.build_index("c")
        for query in queries:
            found = await store.search("c", query.tolist(), limit=10)
            exact = np.argsort(-(vectors @ query))[:10]
            recalls.append(len({hit.doc_id for hit in found} & {f"d{i}" for i in exact}) / 10)
            for hit in found:
                assert hit.score == pytest.approx(float(vectors[int(hit.doc_id[1:])] @ query), abs=1e-4)
    assert float(np.mean(recalls)) >= 0.95


async def test_the_index_scheduler_builds_once_ingestion_is_quiet(tmp_path: Path) -> None:
    store = EdgeStore(StoreSettings(path=tmp_path))
    await store.ensure_collection("c", 384, "m")
    vectors = _unit(np.random.default_rng(9), 7_000, 384)
    await store.upsert("c", [_doc(f"d{i}", vector) for i, vector in enumerate(vectors)])
    scheduler = IndexScheduler(store, min_points=5_000, idle_s=0.2)
    scheduler.written({"c"})
    assert await scheduler.build_due() == []  # ingestion is not quiet yet
    await asyncio.sleep(0.3)
    assert await scheduler.build_due() == ["c"]
    assert await store.pending_index_points("c") == 0
    assert await scheduler.build_due() == []  # nothing written since
    await store.close()


class FailingBuildsStore(EdgeStore):
    """The embedded store whose first `failures` index builds fail, as when the optimiser is killed for memory."""

    def __init__(self, settings: StoreSettings, failures: int) -> None:
        super().__init__(settings)
        self.failures = failures
        self.attempts: list[float] = []
        """The monotonic time of each build asked for."""
        self.built = asyncio.Event()

    async def build_index(self, collection: str) -> None:
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.failures:
            raise IndexBuildFailed(f"optimising {collection} exited with -9: Killed")
        await super().build_index(collection)
        self.built.set()


async def test_a_failed_index_build_is_retried_with_backoff_while_the_scheduler_goes_on(tmp_path: Path) -> None:
    store = FailingBuildsStore(StoreSettings(path=tmp_path), failures=2)
    await store.ensure_collection("c", DIM, "m")
    await store.upsert("c", [_doc(f"d{i}", vector) for i, vector in enumerate(_unit(np.random.default_rng(3), 10))])
    metrics = Metrics()
    scheduler = IndexScheduler(store, min_points=1, idle_s=0.0, on_failure=metrics.index_build_failures.inc,
                               retry_s=1.0, retry_max_s=60.0)
    scheduler.written({"c"})
    running = asyncio.create_task(scheduler.run())  # checks every 0.5 s
    built = asyncio.create_task(store.built.wait())
    await asyncio.wait([running, built], timeout=CLI_HANG_GUARD_S, return_when=asyncio.FIRST_COMPLETED)
    assert not running.done(), "the scheduler stopped"
    assert built.done()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert metrics.registry.get_sample_value("cascade_index_build_failures_total") == 2
    first_wait, second_wait = np.diff(store.attempts)
    assert first_wait >= 1.0 and second_wait >= 2.0  # backing off, not trying at every check
    assert await store.count("c") == 10
    await store.close()
