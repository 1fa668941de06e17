"""Nothing stalls a consumer: oversized outputs, a collection of another model, poisoned
records, dead background tasks, an unreachable cluster. Real broker, real Edge store, tiny models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from cascade.contracts import DeadLetter, ErrorInfo, SearchResult, Topic, encode
from cascade.contracts.limits import MAX_MESSAGE_BYTES
from cascade.infra.local_kafka import free_port
from cascade.runtime.process import CascadeProcess, ProcessFailed
from cascade.runtime.provision import provision_topics
from cascade.sdk import IngestRejected, ReplyRouterFailed, ResultStreamOverflow, SearchClient, SearchFailed
from cascade.sdk.replies import ResultStream
from cascade.services.consumers import handle_isolated
from cascade.services.encoders import BatcherStopped
from cascade.services.faults import ClusterFault
from cascade.services.messaging import RawRecord
from cascade.services.publishing import Outgoing, Publisher
from cascade.services.settings import Settings
from cascade.services.store import EdgeStore
from tests.conftest import client_for
from tests.kafka_helpers import Collector, eventually
from tests.processes import CLI_HANG_GUARD_S, run_cli, service_environment

HANG_GUARD_S = CLI_HANG_GUARD_S
"""Only against a hang: what each test checks is what happened (answers, errors, counts), never how fast."""

CORPUS = [{"doc_id": f"d{i}", "title": f"Doc {i}", "text": f"the telephone was invented in 18{i:02d}"}
          for i in range(20)]


@pytest.fixture
def service(all_roles: CascadeProcess) -> CascadeProcess:
    return all_roles


@pytest.fixture
async def client(service: CascadeProcess) -> AsyncIterator[SearchClient]:
    async with client_for(service) as connected:
        await connected.index(CORPUS, collection="demo")
        yield connected


async def test_emoji_heavy_candidates_are_cut_in_bytes_to_fit_one_message(
    service: CascadeProcess, client: SearchClient
) -> None:
    """120 valid documents of 4-byte characters made a 1.2 MB candidate set that the broker refused forever."""
    emoji = [{"doc_id": f"e{i}", "title": "🎉" * 1000, "text": "🚀🌍" * 1500 + f" rocket {i}"} for i in range(120)]
    await client.index(emoji, collection="emoji")
    for mode, k in (("rerank", 100), ("bi", 100), ("rerank", 10)):
        result = await client.search("rocket", collection="emoji", mode=mode, k=k, candidates=120, timeout_s=60)
        assert len(result.hits) == k
        assert len(encode(result)) <= MAX_MESSAGE_BYTES
        assert all(hit.text.startswith("🚀🌍") for hit in result.hits)  # cut at character boundaries
    assert service.publisher.counts["refused"] == 0


async def test_an_answer_too_large_to_publish_becomes_an_error_result(settings: Settings) -> None:
    """The last line of defence: a message over the limit is replaced by its fallback, never retried."""
    publisher = Publisher(settings.kafka)
    await provision_topics(settings.kafka.topics, **settings.kafka.client_options())
    await publisher.start()
    results = settings.kafka.topics.name(Topic.RESULTS)
    huge = SearchResult(request_id="big", hits=[], served_by={"x": "y" * (MAX_MESSAGE_BYTES + 10)})

    def instead(why: BaseException) -> list[Outgoing]:
        error = ErrorInfo(code="too_large", message=str(why)[:200])
        return [Outgoing(results, "big", SearchResult(request_id="big", error=error))]

    try:
        async with Collector(settings.kafka.bootstrap, results, SearchResult) as seen:
            await publisher.publish([Outgoing(results, "big", huge, instead=instead)])
            answered = await seen.wait_for(lambda items: len(items) >= 1, within_s=20)
    finally:
        await publisher.close()
    assert answered[0].error is not None and answered[0].error.code == "too_large"
    assert "more than the message limit" in answered[0].error.message
    assert publisher.counts["refused"] == 1 and publisher.counts["retried"] == 0


async def test_a_collection_of_another_model_gets_a_clear_error_not_a_stall(
    service: CascadeProcess, client: SearchClient
) -> None:
    assert service.store is not None and service.bi_encoder is not None
    # Recorded under this process's model name, but 7 wide: the model behind the name changed since.
    await service.store.ensure_collection("narrow", 7, service.bi_encoder.name)
    dim = service.bi_encoder.dim
    with pytest.raises(SearchFailed) as failed:
        await client.search("telephone", collection="narrow", mode="bi", timeout_s=20)
    assert failed.value.code == "model_mismatch"
    assert "7-dimensional" in str(failed.value) and f"{dim}-dimensional" in str(failed.value)
    with pytest.raises(IngestRejected) as rejected:
        await client.index([{"doc_id": "a", "text": "some text"}], collection="narrow", timeout_s=20)
    assert "7-dimensional" in (rejected.value.acks[0].error or "")
    assert len((await client.search("telephone", collection="demo", mode="bi", timeout_s=20)).hits) == 10


async def test_a_mismatched_collection_is_reported_at_start(settings: Settings) -> None:
    store = EdgeStore(settings.store)
    await store.ensure_collection("old", 7, settings.models.bi_encoder)  # the same name, a 7-wide model then
    await store.close()
    process = CascadeProcess(settings, {"query"})
    with capture_logs() as logs:
        await process.start()
    await process.stop()
    [line] = [line for line in logs if line["event"] == "collection.model_mismatch"]
    assert line["collection"] == "old" and line["stored_dim"] == 7


def _record(offset: int, value: bytes) -> RawRecord:
    return RawRecord("t", 0, offset, f"k{offset}".encode(), value)


async def test_a_poisoned_record_is_isolated_from_its_batch() -> None:
    handled: list[int] = []

    async def handler(records: Sequence[RawRecord]) -> list[Outgoing]:
        if any(record.value == b"poison" for record in records):
            raise ValueError("cannot digest")
        handled.extend(record.offset for record in records)
        return [Outgoing("out", None, SearchResult(request_id=f"r{record.offset}")) for record in records]

    def refuse(record: RawRecord, reason: str) -> list[Outgoing]:
        return [Outgoing("dlq", None, DeadLetter(source_topic=record.topic, partition=0, offset=record.offset,
                                                 key=None, raw_b64="", raw_size=0, reason="processing_failed",
                                                 error=reason, service="s"))]

    batch = [_record(0, b"ok"), _record(1, b"poison"), _record(2, b"ok")]
    out = await handle_isolated(handler, refuse, batch)
    assert handled == [0, 2]
    assert [o.topic for o in out] == ["out", "dlq", "out"]
    assert "ValueError: cannot digest" in out[1].message.error  # type: ignore[attr-defined]

    async def unreachable(records: Sequence[RawRecord]) -> list[Outgoing]:
        raise ClusterFault("broker down")

    with pytest.raises(ClusterFault):  # a cluster fault is the batch's, not a record's: retried, never refused
        await handle_isolated(unreachable, refuse, batch)


async def test_a_process_whose_batcher_dies_fails_instead_of_hanging(
    settings: Settings, tiny_cross_encoder: Path
) -> None:
    settings = settings.model_copy(update={
        "models": settings.models.model_copy(update={"cross_encoder": str(tiny_cross_encoder)})})
    process = CascadeProcess(settings, {"rerank"})
    running = asyncio.create_task(process.run())
    await eventually(lambda: process.batcher is not None and process.batcher._task is not None,
                     within_s=HANG_GUARD_S)  # it loads the model first
    batcher = process.batcher
    assert batcher is not None

    async def broken(jobs: object) -> None:
        raise SystemError("scheduler bug")

    batcher._score = broken  # type: ignore[method-assign]
    with pytest.raises(BatcherStopped, match=r"died|stopped"):  # a caller is failed, not left waiting
        await asyncio.wait_for(batcher.score("q", ["d"]), timeout=HANG_GUARD_S)
    with pytest.raises(ProcessFailed, match="scheduler bug"):  # and the process fails with the cause
        await asyncio.wait_for(running, timeout=HANG_GUARD_S)


async def test_a_dead_reply_router_fails_waiting_searches_at_once(settings: Settings) -> None:
    kafka = settings.kafka
    await provision_topics(kafka.topics, **kafka.client_options())
    async with SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix) as client:
        # Nobody answers, and the search's own timeout is the hang guard: if the router's death did not fail it
        # at once, it would end in SearchTimeout, not in ReplyRouterFailed naming the dead consumer.
        waiting = asyncio.create_task(client.search("nobody serves this", collection="c", timeout_s=HANG_GUARD_S))
        stream = client.results()
        await asyncio.sleep(0.5)
        await client.replies._consumer.stop()  # the consumer dies under the router
        with pytest.raises(ReplyRouterFailed, match=r"reply consumer .* died"):
            await waiting
        with pytest.raises(ReplyRouterFailed):
            await anext(stream)
        with pytest.raises(ReplyRouterFailed):
            await client.search("again", collection="c", timeout_s=5)


async def test_a_result_stream_that_falls_behind_ends_with_a_clear_error() -> None:
    subscribers: list[ResultStream] = []
    stream = ResultStream(subscribers, buffer=2)
    for i in range(3):
        stream.offer(SearchResult(request_id=f"r{i}"))
    assert [(await anext(stream)).request_id for _ in range(2)] == ["r0", "r1"]
    with pytest.raises(ResultStreamOverflow, match="more than 2 results behind"):
        await anext(stream)
    assert subscribers == []


def test_an_unreachable_cluster_at_start_exits_non_zero_with_the_reason(settings: Settings) -> None:
    unreachable = settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"bootstrap": f"127.0.0.1:{free_port()}"})})
    done = run_cli(service_environment(unreachable, "unreachable", CASCADE_KAFKA_CONNECT_TIMEOUT_S="3",
                                       CASCADE_MODELS_BI_ENCODER=settings.models.bi_encoder,
                                       CASCADE_STORE_PATH=str(settings.store.path)), "serve", "query")
    assert done.returncode != 0
    assert b"did not answer within 3 s" in done.stderr  # gave up after its 3 s, not the hang guard
