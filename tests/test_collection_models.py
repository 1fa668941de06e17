"""A collection is created with a named first-stage model; ingest and query honour it through Kafka, and a
document or query the collection's model cannot serve gets a clear refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascade.runtime.process import CascadeProcess
from cascade.sdk import IngestRejected, SearchFailed
from tests.conftest import client_for

pytestmark = pytest.mark.both_stores

DOCS = [{"doc_id": f"d{i}", "text": f"document number {i} about topic {i % 3}"} for i in range(6)]


async def test_each_collection_is_served_by_its_own_model(first_stage: CascadeProcess, fetched_e5: Path) -> None:
    assert first_stage.store is not None and first_stage.query_cache is not None
    async with client_for(first_stage) as client:
        await client.index(DOCS, collection="plain")
        acks = await client.index(DOCS, collection="fancy", model="e5-small")
        assert {ack.status for ack in acks} == {"indexed"}
        assert await first_stage.store.collection_model("fancy") == "e5-small"
        assert await first_stage.store.collection_model("plain") == first_stage.settings.models.bi_encoder

        misses = first_stage.query_cache.misses
        plain = await client.search("document number 4", collection="plain", mode="bi", k=3)
        fancy = await client.search("document number 4", collection="fancy", mode="bi", k=3)
        assert fancy.models["bi_encoder"] == "test/tiny-e5" != plain.models["bi_encoder"]
        assert first_stage.query_cache.misses == misses + 2  # the same text, encoded once per model
        assert {hit.doc_id for hit in fancy.hits} <= {doc["doc_id"] for doc in DOCS}

        with pytest.raises(IngestRejected, match=r"model_mismatch: collection 'fancy' holds vectors of model 'e5-s"):
            await client.index([{"doc_id": "x", "text": "more"}], collection="fancy", model="bge-small")
        with pytest.raises(IngestRejected, match=r"model_unavailable: .*cascade models fetch bge-small"):
            await client.index([{"doc_id": "x", "text": "more"}], collection="ghost", model="bge-small")
        assert not await first_stage.store.has_collection("ghost")
        await client.index([{"doc_id": "d0", "text": DOCS[0]["text"]}], collection="fancy")  # no model: fine

        # A collection whose model is not on this machine (made elsewhere, or the model was removed):
        await first_stage.store.ensure_collection("orphan", 32, "bge-small")
        with pytest.raises(SearchFailed) as failed:
            await client.search("document", collection="orphan", mode="bi")
        assert failed.value.code == "model_unavailable" and "cascade models fetch bge-small" in str(failed.value)
