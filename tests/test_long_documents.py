"""Collections of passages, through Kafka and on both stores: a document longer than the models read is split at
ingest, found by its best passage (first stage) and scored by its best passage (reranker); content hashes,
metadata updates, deletes and reindex keep working per document; a collection made one way refuses the other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cascade.contracts import Passages, SearchResult
from cascade.runtime.process import CascadeProcess
from cascade.sdk import IngestRejected, InvalidDocuments
from cascade.services.encoders import CrossEncoder, document_text
from cascade.services.encoders.text import split_passages
from cascade.services.settings import Settings, StoreSettings
from cascade.services.store import open_store
from tests.conftest import client_for

pytestmark = pytest.mark.both_stores

WORDS = [f"w{i}" for i in range(400)]
TITLE = "Report"
LONG: dict[str, Any] = {"doc_id": "long", "title": TITLE, "text": " ".join(f"{WORDS[i]} filler" for i in range(60)),
        "metadata": {"team": "a"}}
"""120 words: seven passages of 24 words, each starting 16 words after the one before."""
SHORT = [{"doc_id": f"s{i}", "text": f"{WORDS[100 + i]} short note {WORDS[200 + i]}"} for i in range(8)]
SPLIT = Passages(words=24, overlap=8, limit=32)


@pytest.fixture
async def chunking(settings: Settings, tiny_cross_encoder: Path) -> AsyncIterator[CascadeProcess]:
    """Every role, with passages of 24 words and models that read 32 tokens (a passage fits, the document not)."""
    models = settings.models.model_copy(update={
        "cross_encoder": str(tiny_cross_encoder), "bi_max_length": 32, "cross_max_length": 48,
        "passage_words": SPLIT.words, "passage_overlap": SPLIT.overlap, "fusion_weight": 0.0})
    process = CascadeProcess(settings.model_copy(update={"models": models}), {"ingest", "query", "rerank"})
    await process.start()
    yield process
    await process.stop()


def _score_of(result: SearchResult, doc_id: str) -> float:
    return next(hit.score for hit in result.hits if hit.doc_id == doc_id)


async def test_a_long_document_is_found_and_reranked_by_its_best_passage(chunking: CascadeProcess) -> None:
    passages = split_passages(SPLIT, LONG["title"], LONG["text"])
    last = passages[-1]
    async with client_for(chunking) as client:
        await client.index([LONG, *SHORT], collection="chunked", passages=True)
        await client.index([LONG, *SHORT], collection="whole")
        chunked = await client.search(last, collection="chunked", mode="bi", k=3)
        whole = await client.search(last, collection="whole", mode="bi", k=9)
        reranked = await client.search(last, collection="chunked", mode="rerank", k=9, candidates=9)
    assert len(passages) == 7 and "w59 filler" in last and "w0 " not in last
    assert chunked.hits[0].doc_id == "long" and chunked.hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert _score_of(whole, "long") < 0.999  # one vector of the first 32 tokens: the last passage is cut off
    cross = CrossEncoder.load(chunking.settings.models.cross_encoder, max_length=48, device="cpu")
    best = float(cross.score(last, passages).max())
    assert best > float(cross.score(last, [document_text(TITLE, LONG["text"])])[0])  # the test can tell
    long_hit = next(hit for hit in reranked.hits if hit.doc_id == "long")
    assert long_hit.rerank_score == pytest.approx(best, abs=1e-4)
    short_hit = next(hit for hit in reranked.hits if hit.doc_id == "s3")
    assert short_hit.rerank_score == pytest.approx(float(cross.score(last, [SHORT[3]["text"]])[0]), abs=1e-4)


async def test_hashes_metadata_deletes_and_reindex_work_per_document(chunking: CascadeProcess) -> None:
    last = split_passages(SPLIT, LONG["title"], LONG["text"])[-1]
    store = chunking.store
    assert store is not None
    async with client_for(chunking) as client:
        first = await client.index([LONG, *SHORT], collection="c", passages=True)
        again = await client.index([LONG], collection="c")
        relabelled = await client.index([{**LONG, "metadata": {"team": "b"}}], collection="c")
        filtered = await client.search(last, collection="c", mode="bi", k=9, filter={"team": "b"})
        assert await store.count("c") == 9  # one point per document, whatever its passages
        await client.delete(["s0"], collection="c")
        assert await store.count("c") == 8
        status = await client.reindex("c", timeout_s=120)
        after = await client.search(last, collection="c", mode="bi", k=3)
    assert {ack.status for ack in first} == {"indexed"}
    assert [ack.status for ack in again] == ["unchanged"] and [ack.status for ack in relabelled] == ["updated"]
    assert [hit.doc_id for hit in filtered.hits] == ["long"]
    assert status.state == "switched" and status.documents == 8 and status.target == "c@v2"
    assert await store.passages("c@v2") == SPLIT and await store.count("c") == 8  # recorded when made, kept
    assert after.hits[0].doc_id == "long" and after.hits[0].score == pytest.approx(1.0, abs=1e-4)


async def test_a_collection_keeps_the_layout_it_was_made_with(chunking: CascadeProcess) -> None:
    async with client_for(chunking) as client:
        await client.index(SHORT, collection="chunked", passages=True)
        await client.index(SHORT, collection="whole")
        with pytest.raises(IngestRejected, match=r"made with passages \(passages\), this document asks for "
                                                 r"passages=False"):
            await client.index([LONG], collection="chunked", passages=False)
        with pytest.raises(IngestRejected, match="made without passages"):
            await client.index([LONG], collection="whole", passages=True)
        with pytest.raises(InvalidDocuments, match=r"token vectors \(late_interaction\) or passages, not both"):
            await client.index([LONG], collection="other", passages=True, late_interaction=True)


async def test_mode_cross_hybrid_and_filters_score_by_the_best_passage(chunking: CascadeProcess) -> None:
    passages = split_passages(SPLIT, LONG["title"], LONG["text"])
    last = passages[-1]
    async with client_for(chunking) as client:
        await client.index([LONG, *SHORT], collection="chunked", passages=True)
        cross = await client.search(last, collection="chunked", mode="cross", k=9)
        hybrid = await client.search(last, collection="chunked", mode="bi", first_stage="hybrid", k=3,
                                     filter={"team": "a"})
    model = CrossEncoder.load(chunking.settings.models.cross_encoder, max_length=48, device="cpu")
    long_hit = next(hit for hit in cross.hits if hit.doc_id == "long")
    assert long_hit.rerank_score == pytest.approx(float(model.score(last, passages).max()), abs=1e-4)
    assert [hit.doc_id for hit in hybrid.hits] == ["long"]  # the only document of team a, through both prefetches


async def test_the_passage_sizes_are_recorded_with_the_collection(store: StoreSettings) -> None:
    """Read back by a store opened anew (a restarted pod, another pod of the cluster), whatever it was given."""
    first = open_store(store)
    await first.ensure_collection("chunked", 32, "m", passages=SPLIT)
    await first.ensure_collection("whole", 32, "m")
    await first.close()
    again = open_store(store)
    try:
        assert await again.passages("chunked") == SPLIT and await again.passages("whole") is None
    finally:
        await again.close()
