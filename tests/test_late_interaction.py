"""ColBERT mode: token vectors stored as a MaxSim multivector beside the dense vector, encoded once at ingest, and
queries rescored by MaxSim inside the store, through Kafka; collections without token vectors refuse the mode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from cascade.contracts import Hit
from cascade.runtime.process import CascadeProcess
from cascade.sdk import IngestRejected, SearchFailed
from cascade.services.encoders import LateInteractionEncoder, document_text, maxsim
from cascade.services.settings import Settings
from cascade.services.store import ScoredDocument, StoredDocument
from tests.conftest import client_for
from tests.stores import STORE_KINDS, StoreKind, opened_store
from tests.tiny_models import build_tiny_colbert

DOCS = [{"doc_id": f"d{i}", "title": f"title {i}", "text": f"document {i} about {topic}"}
        for i, topic in enumerate(["cats and dogs", "stock markets", "the moon landing", "baking bread", "jazz",
                                   "tax law", "volcanoes", "chess openings"])]
QUERY = "which document is about the moon"
FLOAT16_TOLERANCE = 2e-3
"""Relative: the store keeps token vectors in half precision."""


@pytest.fixture(scope="session")
def tiny_colbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_colbert(tmp_path_factory.mktemp("tiny-colbert"))


@asynccontextmanager
async def _serving(settings: Settings, late_interaction: str) -> AsyncIterator[CascadeProcess]:
    models = settings.models.model_copy(update={"late_interaction": late_interaction})
    process = CascadeProcess(settings.model_copy(update={"models": models}), {"ingest", "query"})
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


@pytest.fixture
async def late(settings: Settings, tiny_colbert: Path) -> AsyncIterator[CascadeProcess]:
    async with _serving(settings, str(tiny_colbert)) as process:
        yield process


def _expected(encoder: LateInteractionEncoder) -> dict[str, float]:
    [query] = encoder.encode_queries([QUERY])
    documents = encoder.encode_documents([document_text(doc["title"], doc["text"]) for doc in DOCS])
    return {doc["doc_id"]: maxsim(query, tokens) for doc, tokens in zip(DOCS, documents, strict=True)}


def _assert_maxsim_order(hits: Sequence[Hit | ScoredDocument], expected: dict[str, float]) -> None:
    """Every expected document, each with its MaxSim, best first (near-ties may swap: half precision)."""
    assert {hit.doc_id for hit in hits} == set(expected)
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.doc_id], rel=FLOAT16_TOLERANCE)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


async def test_maxsim_by_the_store_equals_numpy_through_kafka(late: CascadeProcess, tiny_colbert: Path) -> None:
    async with client_for(late) as client:
        acks = await client.index(DOCS, collection="late", late_interaction=True)
        assert {ack.status for ack in acks} == {"indexed"}
        result = await client.search(QUERY, collection="late", mode="colbert", k=len(DOCS), candidates=len(DOCS))
        again = await client.index(DOCS, collection="late")  # unchanged: neither vector is encoded again
    expected = _expected(LateInteractionEncoder(tiny_colbert, device="cpu"))
    _assert_maxsim_order(result.hits, expected)
    assert result.mode == "colbert" and result.models["late_interaction"] == "test/tiny-colbert"
    assert result.timings.encode_ms is not None and result.timings.ann_ms is not None
    assert {ack.status for ack in again} == {"unchanged"}
    assert late.store is not None and await late.store.token_dim("late") == 16


async def test_colbert_needs_a_collection_with_token_vectors(late: CascadeProcess) -> None:
    async with client_for(late) as client:
        await client.index(DOCS, collection="plain")
        with pytest.raises(SearchFailed) as failed:
            await client.search(QUERY, collection="plain", mode="colbert")
        assert failed.value.code == "invalid_request" and "late_interaction=True" in str(failed.value)
        with pytest.raises(IngestRejected, match="made without token vectors"):
            await client.index([{"doc_id": "x", "text": "more"}], collection="plain", late_interaction=True)
        # the mode works alongside: bi on the same collection
        assert (await client.search(QUERY, collection="plain", mode="bi", k=2)).hits


async def test_a_process_without_a_colbert_encoder_refuses_clearly(settings: Settings) -> None:
    async with _serving(settings, "") as process, client_for(process) as client:
        with pytest.raises(IngestRejected, match="model_unavailable: no late-interaction"):
            await client.index(DOCS, collection="late", late_interaction=True)


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_both_stores_rescore_by_maxsim(kind: StoreKind, tmp_path: Path, tiny_colbert: Path) -> None:
    """Edge and a Qdrant server give the same MaxSim, the numpy one, over the dense top N."""
    encoder = LateInteractionEncoder(tiny_colbert, device="cpu")
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(len(DOCS), 8)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    documents = encoder.encode_documents([document_text(doc["title"], doc["text"]) for doc in DOCS])
    [query] = encoder.encode_queries([QUERY])
    async with opened_store(kind, tmp_path / kind) as store:
        await store.ensure_collection("c", 8, "test", token_dim=encoder.dim)
        await store.upsert("c", [StoredDocument(doc_id=doc["doc_id"], vector=vector.tolist(), title=doc["title"],
                                                text=doc["text"], content_hash="", model_id="test",
                                                ingested_at_ms=0.0, tokens=tokens)
                                 for doc, vector, tokens in zip(DOCS, dense, documents, strict=True)])
        found = await store.search("c", dense[0].tolist(), 4, tokens=query.tolist())
    nearest = np.argsort(-(dense @ dense[0]))[:4]  # the dense prefetch: only these are rescored
    expected = {DOCS[i]["doc_id"]: maxsim(query, documents[i]) for i in nearest}
    _assert_maxsim_order(found, expected)


def test_queries_and_documents_encode_correctly_from_many_threads_at_once(tiny_colbert: Path) -> None:
    """Query and ingest encode in worker threads at the same time, with the tokenizer set up differently for
    each (queries padded to 32 tokens, documents to the longest, up to 180): each must get its own set-up. Long
    texts (cut to those lengths) make tokenizing most of the work, so unguarded calls overlap."""
    encoder = LateInteractionEncoder(tiny_colbert, device="cpu", batch_size=1)
    queries = [f"query {i} " + "word " * 2000 for i in range(4)]
    documents = ["a short document"] + [f"document {i} " + "word " * 2000 for i in range(3)]
    expected = {"queries": encoder.encode_queries(queries), "documents": encoder.encode_documents(documents)}
    def work(kind: str) -> list[str]:
        problems = []
        for _ in range(50):
            try:
                got = encoder.encode_queries(queries) if kind == "queries" else encoder.encode_documents(documents)
            except Exception as exc:  # older tokenizers: RuntimeError: Already borrowed
                problems.append(f"{kind}: {exc!r}")
                continue
            for vectors, reference in zip(got, expected[kind], strict=True):
                if vectors.shape != reference.shape or not np.allclose(vectors, reference, atol=1e-4):
                    problems.append(f"{kind}: {vectors.shape} token vectors, not {reference.shape} as alone")
        return problems
    with ThreadPoolExecutor(8) as pool:
        problems = [problem for found in pool.map(work, ["queries", "documents"] * 4) for problem in found]
    assert problems == []
