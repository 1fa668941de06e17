"""The reranker's score cache, through Kafka: a query asked again over the same candidates is not scored again;
a changed document is."""

from __future__ import annotations

from cascade.runtime.process import CascadeProcess
from tests.conftest import client_for

DOCS = [{"doc_id": f"d{i}", "text": f"document {i} about subject {i % 3}"} for i in range(12)]


def _lookups(process: CascadeProcess, result: str) -> float:
    return process.metrics.registry.get_sample_value("cascade_rerank_score_cache_total", {"result": result}) or 0.0


async def test_a_query_asked_again_is_answered_from_the_score_cache(all_roles: CascadeProcess) -> None:
    async with client_for(all_roles) as client:
        await client.index(DOCS, collection="c")
        first = await client.search("document 3", collection="c", mode="rerank", k=5, candidates=12)
        assert (_lookups(all_roles, "hit"), _lookups(all_roles, "miss")) == (0, 12)  # every document a candidate
        again = await client.search("document 3", collection="c", mode="rerank", k=5, candidates=12)
        assert (_lookups(all_roles, "hit"), _lookups(all_roles, "miss")) == (12, 12)
        rewritten = next(hit.doc_id for hit in first.hits)
        await client.index([{"doc_id": rewritten, "text": "document 3 rewritten with other words"}], collection="c")
        changed = await client.search("document 3", collection="c", mode="rerank", k=5, candidates=12)
    assert [(hit.doc_id, hit.score) for hit in again.hits] == [(hit.doc_id, hit.score) for hit in first.hits]
    assert again.timings.rerank_ms == 0  # nothing was scored
    assert (_lookups(all_roles, "hit"), _lookups(all_roles, "miss")) == (23, 13)  # the rewritten one scored again
    assert changed.timings.rerank_ms is not None and changed.timings.rerank_ms > 0
