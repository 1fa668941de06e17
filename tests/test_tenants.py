"""Bounded tenants: a producer cannot exhaust the store with made-up collections or filter keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cascade.runtime.process import CascadeProcess
from cascade.sdk import IngestRejected, SearchFailed
from cascade.services.settings import Settings
from tests.conftest import client_for

pytestmark = pytest.mark.both_stores


@pytest.fixture
async def capped(settings: Settings) -> AsyncIterator[CascadeProcess]:
    store = settings.store.model_copy(update={"max_collections": 2, "max_filter_fields": 2})
    process = CascadeProcess(settings.model_copy(update={"store": store}), {"ingest", "query"})
    await process.start()
    yield process
    await process.stop()


async def test_collections_beyond_the_cap_are_rejected(capped: CascadeProcess) -> None:
    async with client_for(capped) as client:
        for name in ("a", "b"):
            await client.index([{"doc_id": "1", "text": "first"}], collection=name)
        with pytest.raises(IngestRejected) as rejected:
            await client.index([{"doc_id": "1", "text": "first"}], collection="c")
        error = rejected.value.acks[0].error or ""
        assert "the store holds 2 collections, the cap (CASCADE_STORE_MAX_COLLECTIONS)" in error
        assert await capped.store.collections() == ["a", "b"]  # type: ignore[union-attr]
        await client.index([{"doc_id": "2", "text": "second"}], collection="a")  # existing ones still take writes


async def test_filters_on_fields_beyond_the_cap_are_refused_with_a_code_and_a_message(capped: CascadeProcess) -> None:
    async with client_for(capped) as client:
        await client.index([{"doc_id": "0", "text": "text 0"}], collection="a")
        for junk in ("junk1", "junk2"):  # a search never makes a field filterable, so junk keys use up nothing
            with pytest.raises(SearchFailed, match=f"cannot filter on metadata field '{junk}'"):
                await client.search("text", collection="a", mode="bi", filter={junk: 1})
        await client.index([{"doc_id": str(i), "text": f"text {i}", "metadata": {"f1": i, "f2": "x", "f3": True}}
                            for i in range(5)], collection="a")
        for field, value in (("f1", 1), ("f2", "x")):
            assert (await client.search("text", collection="a", mode="bi", filter={field: value}, k=5)).hits
        with pytest.raises(SearchFailed) as refused:
            await client.search("text", collection="a", mode="bi", filter={"f3": True})
        assert refused.value.code == "invalid_request"
        message = refused.value.result.error.message  # type: ignore[union-attr]
        assert "cannot filter on metadata field 'f3'" in message and "Error" not in message and "(" not in message[:20]
        assert (await client.search("text", collection="a", mode="bi", filter={"f1": 3})).hits[0].doc_id == "3"


