"""Sparse (BM25) and hybrid first stages through Kafka: term vectors stored once at ingest, RRF fusion inside
the store, and the reranker handed the fused list."""

from __future__ import annotations

import pytest

from cascade.runtime.process import CascadeProcess
from tests.conftest import client_for

DOCS = [{"doc_id": "zebra", "text": "Zebras have black and white stripes that confuse biting flies."},
        {"doc_id": "volcano", "text": "Magma rises through the crust and erupts from a volcano."},
        {"doc_id": "tea", "text": "Green tea is made from unoxidised leaves of the tea plant."},
        *({"doc_id": f"filler{i}", "text": f"an unrelated sentence number {i} about nothing much"} for i in range(9))]


@pytest.mark.both_stores
async def test_sparse_and_hybrid_first_stages(all_roles: CascadeProcess) -> None:
    async with client_for(all_roles) as client:
        await client.index(DOCS, collection="c")
        sparse = await client.search("why do zebras have stripes", collection="c", mode="bi", first_stage="sparse")
        assert sparse.hits[0].doc_id == "zebra" and sparse.models["bi_encoder"] == "bm25"
        assert sparse.timings.encode_ms is not None and len(sparse.hits) < len(DOCS)  # only documents with terms

        hybrid = await client.search("magma erupts", collection="c", mode="bi", first_stage="hybrid", k=12,
                                     candidates=12)
        assert hybrid.models["bi_encoder"].endswith("+ bm25 (rrf)")
        assert hybrid.hits[0].doc_id == "volcano"  # top of the sparse list; the tiny dense model ranks at random
        assert all(hit.score <= 2 / 60 + 1e-6 for hit in hybrid.hits)  # reciprocal-rank scores: 1/(60 + rank) a list

        reranked = await client.search("magma erupts", collection="c", mode="rerank", first_stage="hybrid", k=5,
                                       candidates=12)
        assert {hit.doc_id for hit in reranked.hits} <= {hit.doc_id for hit in hybrid.hits}
        assert all((hit.first_stage_score or 0) <= 2 / 60 + 1e-6 for hit in reranked.hits)  # the fused list
        assert reranked.models["cross_encoder"]
