"""Admission control on the rerankers' backlog, through Kafka: past `rerank_max_backlog` waiting candidate sets, a
rerank request is answered `overloaded` at once instead of timing out; other modes are served as usual."""

from __future__ import annotations

import asyncio

import pytest

from cascade.runtime.process import CascadeProcess
from cascade.sdk import SearchFailed
from cascade.services.settings import Settings
from tests.conftest import client_for
from tests.kafka_helpers import eventually

DOCS = [{"doc_id": f"d{i}", "text": f"document {i}"} for i in range(6)]


async def test_a_rerank_request_behind_a_full_backlog_is_answered_overloaded_at_once(settings: Settings) -> None:
    batching = settings.batching.model_copy(update={"rerank_max_backlog": 2})
    process = CascadeProcess(settings.model_copy(update={"batching": batching}), {"ingest", "query"})  # no reranker
    await process.start()
    try:
        async with client_for(process) as client:
            await client.index(DOCS, collection="c")
            waiting = [asyncio.create_task(client.search(f"document {i}", collection="c", mode="rerank",
                                                         timeout_s=120)) for i in range(3)]
            backlog = process.reranker_backlog
            assert backlog is not None
            await eventually(lambda: backlog.records >= 3, within_s=60)  # nobody reranks; sampled every second
            assert not any(task.done() for task in waiting)
            with pytest.raises(SearchFailed) as refused:  # an answer, not a SearchTimeout
                await client.search("document 1", collection="c", mode="rerank", timeout_s=30)
            served = await client.search("document 1", collection="c", mode="bi", timeout_s=30)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
    finally:
        await process.stop()
    assert refused.value.code == "overloaded" and "CASCADE_BATCH_RERANK_MAX_BACKLOG=2" in str(refused.value)
    assert served.hits and served.hits[0].doc_id == "d1"
