"""The two VectorStore implementations held congruent: the same operations on the embedded store and on QdrantStore
against a real server, every answer compared. Where they must differ, the test names the difference."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from cascade.services.encoders.sparse import Bm25Encoder
from cascade.services.store import (
    DocumentText,
    FieldNotFilterable,
    ScoredDocument,
    StoredDocument,
    StoredState,
    UnknownCollectionError,
    VectorStore,
)
from tests.stores import opened_store

DIM, TOKEN_DIM, N, LIMIT = 16, 8, 60, 10
WORDS = [f"{stem}{suffix}" for stem in ("cat", "dog", "hole", "river", "stone", "winter", "engine", "garden")
         for suffix in ("", "fall", "yard", "light", "song", "work")]
"""Forty-eight words; texts of distinct lengths, so no two term scores tie (tied hits come in either order, and
shift the fused ranks after them)."""


@dataclass(frozen=True)
class _Hits:
    """Search hits by document id. Equal if the same documents come with the same payloads and scores within 0.002
    (MaxSim sums half-precision products, which the stores round differently); the scores fix the order."""

    by_id: dict[str, tuple[float, str, str, bytes]]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, _Hits) and self.by_id.keys() == other.by_id.keys()
                and all(hit[1:] == other.by_id[doc_id][1:] and hit[0] == pytest.approx(other.by_id[doc_id][0], abs=2e-3)
                        for doc_id, hit in self.by_id.items()))


def _typed(metadata: Mapping[str, Any]) -> bytes:
    """Metadata as JSON, so that a bool read back as 1 (or a number as a string) differs."""
    return orjson.dumps(dict(metadata), option=orjson.OPT_SORT_KEYS)


def _comparable(answer: Any) -> Any:
    """An answer in a form both stores must match: hits as `_Hits` (in a full page, those tied with the last place
    left out: a tie at the cut falls either way, as RRF's often do), scrolled pages as sets."""
    if isinstance(answer, list) and answer and isinstance(answer[0], ScoredDocument):
        cut = answer[-1].score + 1e-6 if len(answer) == LIMIT else -math.inf
        return _Hits({hit.doc_id: (hit.score, hit.title, hit.text, _typed(hit.metadata)) for hit in answer
                      if hit.score > cut})
    if isinstance(answer, dict) and answer and isinstance(next(iter(answer.values())), StoredState):
        return {doc_id: (state.content_hash, _typed(state.metadata)) for doc_id, state in answer.items()}
    if isinstance(answer, tuple) and answer and isinstance(answer[0], list):
        texts: list[DocumentText] = answer[0]
        return sorted((text.doc_id, text.title, text.text, text.content_hash) for text in texts), answer[1] is None
    return answer


@dataclass
class Both:
    """One embedded store and one server store, driven in step."""

    edge: VectorStore
    server: VectorStore
    compared: int = 0

    async def same(self, call: Callable[[VectorStore], Awaitable[Any]]) -> Any:
        """`call` on each store: the same answer, or the same kind of error (re-raised)."""
        outcomes: list[tuple[Any, BaseException | None]] = []
        for store in (self.edge, self.server):
            try:
                outcomes.append((await call(store), None))
            except Exception as exc:
                outcomes.append((None, exc))
        (edge, edge_error), (server, server_error) = outcomes
        self.compared += 1
        assert type(edge_error) is type(server_error), f"edge raised {edge_error!r}, the server {server_error!r}"
        if edge_error is not None:
            raise edge_error
        assert _comparable(edge) == _comparable(server)
        return edge


@asynccontextmanager
async def opened_both(tmp_path: Path, **settings: Any) -> AsyncIterator[Both]:
    async with AsyncExitStack() as stack:
        edge = await stack.enter_async_context(opened_store("edge", tmp_path / "edge", **settings))
        server = await stack.enter_async_context(opened_store("server", tmp_path / "server", **settings))
        yield Both(edge, server)


@pytest.fixture
async def both(tmp_path: Path) -> AsyncIterator[Both]:
    async with opened_both(tmp_path, max_filter_fields=3) as opened:
        yield opened


def _documents(seed: int, n: int = N, content_hash: str = "h", tokens: bool = True) -> list[StoredDocument]:
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((n, DIM)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    texts = [" ".join(rng.choice(WORDS, size=4 + i)) for i in range(n)]
    sparse = Bm25Encoder().encode_documents(texts)
    documents = []
    for i in range(n):
        rows = rng.standard_normal((3, TOKEN_DIM)).astype(np.float32)
        documents.append(StoredDocument(
            doc_id=f"d{i}", vector=dense[i].tolist(), title=f"title {i}", text=texts[i], content_hash=content_hash,
            model_id="m", ingested_at_ms=0.0, metadata={"lang": ["en", "fr", "de"][i % 3], "even": i % 2 == 0,
                                                        "rank": i % 5},
            sparse=sparse[i], tokens=rows / np.linalg.norm(rows, axis=1, keepdims=True) if tokens else None))
    return documents


async def test_the_same_operations_give_the_same_answers(both: Both) -> None:
    documents = _documents(1)
    queries = [doc.vector for doc in _documents(2, n=5)]
    bm25 = Bm25Encoder()

    # collections, aliases and what they describe
    await both.same(lambda s: s.ensure_collection("docs", DIM, "m", token_dim=TOKEN_DIM))
    await both.same(lambda s: s.ensure_collection("docs", DIM, "another"))  # idempotent: the first model stays
    for describe in ("collection_model", "vector_size", "token_dim", "resolve", "has_collection"):
        await both.same(lambda s, describe=describe: getattr(s, describe)("docs"))
    await both.same(lambda s: s.collections())

    # upserts, hash lookups (what lets ingest skip unchanged documents), metadata-only updates, deletes
    await both.same(lambda s: s.upsert("docs", documents))
    await both.same(lambda s: s.count("docs"))
    await both.same(lambda s: s.stored_states("docs", ["d0", "d7", "never-stored"]))
    await both.same(lambda s: s.upsert("docs", [replace(documents[7], content_hash="h2")]))
    await both.same(lambda s: s.stored_states("docs", ["d7"]))
    await both.same(lambda s: s.update_metadata("docs", {"d8": {"lang": "xx", "rank": 9}}))
    await both.same(lambda s: s.stored_states("docs", ["d8"]))
    await both.same(lambda s: s.documents("docs", ["d8", "d7", "never-stored"]))  # what a reindex's copy reads
    await both.same(lambda s: s.delete("docs", ["d3", "never-stored"]))
    await both.same(lambda s: s.count("docs"))

    # dense (HNSW and exact), filtered, sparse, hybrid (RRF) and MaxSim-rescored searches
    for query in queries:
        await both.same(lambda s, q=query: s.search("docs", q, LIMIT))
        await both.same(lambda s, q=query: s.search("docs", q, LIMIT, exact=True))
        french = await both.same(lambda s, q=query: s.search("docs", q, LIMIT, filter={"lang": "fr"}))
        assert len(french) == LIMIT and {hit.metadata["lang"] for hit in french} == {"fr"}
        even_twos = await both.same(lambda s, q=query: s.search("docs", q, LIMIT, filter={"even": True, "rank": 2}))
        assert {hit.doc_id for hit in even_twos} == {"d2", "d12", "d22", "d32", "d42", "d52"}  # i % 10 == 2
        fused = await both.same(lambda s, q=query: s.search("docs", q, LIMIT,
                                                            sparse=bm25.encode_query("riverfall stoneyard")))
        assert len(fused) == LIMIT
        await both.same(lambda s, q=query: s.search("docs", q, LIMIT, tokens=documents[0].tokens.tolist()))  # type: ignore[union-attr]
    assert [hit.doc_id for hit in await both.same(  # the updated metadata
        lambda s: s.search("docs", queries[0], LIMIT, filter={"lang": "xx"}))] == ["d8"]
    await both.same(lambda s: s.search("docs", None, LIMIT, sparse=bm25.encode_query("wintersong enginework cat")))
    await both.same(lambda s: s.search("docs", None, LIMIT, sparse=bm25.encode_query("the of a")))  # stop words only

    # scrolling, as a reindex reads a collection back
    await both.same(lambda s: s.scroll("docs", None, 100))

    # a new version behind the alias
    await both.same(lambda s: s.ensure_collection("docs@v2", DIM, "m2", token_dim=TOKEN_DIM))
    await both.same(lambda s: s.upsert("docs@v2", _documents(3, n=10, content_hash="v2")))
    await both.same(lambda s: s.switch_alias("docs", "docs@v2"))
    for describe in ("resolve", "collection_model", "count", "token_dim"):
        await both.same(lambda s, describe=describe: getattr(s, describe)("docs"))
    await both.same(lambda s: s.collections())  # versions stay out of the listing
    await both.same(lambda s: s.search("docs", queries[0], LIMIT))

    # an index build leaves the answers as they were
    await both.same(lambda s: s.build_index("docs"))
    await both.same(lambda s: s.search("docs", queries[1], LIMIT))
    print(f"\n{both.compared} operations compared")


async def test_the_same_refusals(both: Both) -> None:
    await both.same(lambda s: s.ensure_collection("docs", DIM, "m", token_dim=TOKEN_DIM))
    await both.same(lambda s: s.upsert("docs", _documents(1, n=5)))
    for call in (lambda s: s.search("ghost", [0.0] * DIM, LIMIT), lambda s: s.count("ghost"),
                 lambda s: s.stored_states("ghost", ["a"]), lambda s: s.documents("ghost", ["a"]),
                 lambda s: s.scroll("ghost", None, 3),
                 lambda s: s.vector_size("ghost"), lambda s: s.upsert("ghost", _documents(1, n=1)),
                 lambda s: s.switch_alias("docs", "ghost")):
        with pytest.raises(UnknownCollectionError):
            await both.same(call)
    query = _documents(2, n=1)[0].vector
    for field in ("lang", "even", "rank"):  # the three fields the documents brought: the cap (3 here)
        await both.same(lambda s, field=field: s.search("docs", query, LIMIT, filter={field: "x"}))
    coloured = replace(_documents(3, n=1)[0], doc_id="c", metadata={"colour": "red"})
    await both.same(lambda s: s.upsert("docs", [coloured]))  # one field past the cap: stored, not filterable
    with pytest.raises(FieldNotFilterable, match=r"cannot filter on metadata field 'colour': .* fewer than 3"):
        await both.same(lambda s: s.search("docs", query, LIMIT, filter={"lang": "fr", "colour": "red"}))
    assert not await both.edge.has_collection("ghost") and not await both.server.has_collection("ghost")


async def test_a_search_never_makes_a_field_filterable(tmp_path: Path) -> None:
    """Filters on keys no document brought are refused and cost nothing: they used to make a payload index each,
    so a few junk keys from any client used up the cap and real fields could never be filtered on."""
    async with opened_both(tmp_path, max_filter_fields=4) as both:
        await both.same(lambda s: s.ensure_collection("docs", DIM, "m", token_dim=TOKEN_DIM))
        await both.same(lambda s: s.upsert("docs", _documents(1, n=5)))  # lang, even, rank
        query = _documents(2, n=1)[0].vector
        for junk in ("junk1", "junk2"):
            with pytest.raises(FieldNotFilterable, match=f"'{junk}'"):
                await both.same(lambda s, junk=junk: s.search("docs", query, LIMIT, filter={junk: 1}))
        coloured = replace(_documents(3, n=1)[0], doc_id="c", metadata={"colour": "red"})
        await both.same(lambda s: s.update_metadata("docs", {"d0": {"colour": "blue"}}))  # the fourth field
        await both.same(lambda s: s.upsert("docs", [coloured]))
        red = await both.same(lambda s: s.search("docs", query, LIMIT, filter={"colour": "red"}))
        assert [hit.doc_id for hit in red] == ["c"]


async def test_a_creation_cut_before_its_alias_is_finished(both: Both) -> None:
    """A crash (or another pod) came between making `docs@v1` and pointing `docs` at it: the next ensure finishes
    the job instead of failing on the existing version for ever."""
    await both.same(lambda s: s.ensure_collection("docs@v1", DIM, "m"))
    await both.same(lambda s: s.ensure_collection("docs", DIM, "m"))
    await both.same(lambda s: s.upsert("docs", _documents(1, n=5, tokens=False)))
    assert await both.same(lambda s: s.resolve("docs")) == "docs@v1"
    assert await both.same(lambda s: s.count("docs")) == 5


async def test_where_they_must_differ_pending_index_points(both: Both) -> None:
    """The embedded store counts points awaiting its next HNSW build (the ingest service schedules builds on it);
    the server indexes in the background by itself, so it reports none and a build is a no-op."""
    await both.same(lambda s: s.ensure_collection("docs", DIM, "m", token_dim=TOKEN_DIM))
    await both.same(lambda s: s.upsert("docs", _documents(1, n=20)))
    assert await both.edge.pending_index_points("docs") == 20
    assert await both.server.pending_index_points("docs") == 0


async def test_int8_collections_rescore_alike(tmp_path: Path) -> None:
    """Quantised collections: both stores rescore the int8 candidates with the float vectors (the same scores)."""
    async with opened_both(tmp_path, quantization="int8") as both:
        await both.same(lambda s: s.ensure_collection("docs", DIM, "m", token_dim=TOKEN_DIM))
        await both.same(lambda s: s.upsert("docs", _documents(1)))
        for query in [doc.vector for doc in _documents(2, n=5)]:
            await both.same(lambda s, q=query: s.search("docs", q, LIMIT))
            german = await both.same(lambda s, q=query: s.search("docs", q, LIMIT, filter={"lang": "de"}))
            assert german and {hit.metadata["lang"] for hit in german} == {"de"}
        print(f"\n{both.compared} operations compared")


async def test_keys_a_filter_cannot_name_are_stored_but_never_indexed(both: Both) -> None:
    """Metadata keys may hold a space or a dot; a payload index on one is refused (or would name a nested path), and
    that used to fail the whole write."""
    await both.same(lambda s: s.ensure_collection("docs", DIM, "m", token_dim=TOKEN_DIM))
    odd = replace(_documents(1, n=1)[0], metadata={"my key": 1, "a.b": 2, "ratio": 0.5, "lang": "en"})
    await both.same(lambda s: s.upsert("docs", [odd]))
    assert [hit.doc_id for hit in await both.same(
        lambda s: s.search("docs", odd.vector, LIMIT, filter={"lang": "en"}))] == ["d0"]
    states = await both.same(lambda s: s.stored_states("docs", ["d0"]))
    assert dict(states["d0"].metadata) == {"my key": 1, "a.b": 2, "ratio": 0.5, "lang": "en"}
    with pytest.raises(FieldNotFilterable, match="'ratio'"):  # a float field is not filterable
        await both.same(lambda s: s.search("docs", odd.vector, LIMIT, filter={"ratio": 1}))


async def test_a_new_version_can_be_given_the_filterable_fields_of_the_old(tmp_path: Path) -> None:
    async with opened_both(tmp_path, max_filter_fields=2) as both:
        await both.same(lambda s: s.ensure_collection("docs", DIM, "m", token_dim=TOKEN_DIM))
        await both.same(lambda s: s.upsert("docs", _documents(1, n=5)))  # lang and even: the cap
        assert await both.same(lambda s: s.filter_fields("docs")) == {"lang": "keyword", "even": "bool"}
        await both.same(lambda s: s.ensure_collection("docs@v2", DIM, "m", token_dim=TOKEN_DIM))
        await both.same(lambda s: s.add_filter_fields("docs@v2", {"lang": "keyword", "even": "bool"}))
        ranked_first = replace(_documents(2, n=1)[0], metadata={"rank": 1, "lang": "en", "even": True})
        await both.same(lambda s: s.upsert("docs@v2", [ranked_first]))  # rank comes first, but the cap is taken
        assert await both.same(lambda s: s.filter_fields("docs@v2")) == {"lang": "keyword", "even": "bool"}
