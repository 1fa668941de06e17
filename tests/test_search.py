"""Search end to end through the real broker, in every mode, with the SDK and with hostile raw requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from cascade.contracts import DeadLetter, SearchRequest, SearchResult, Topic, TopicRegistry, encode, now_ms
from cascade.contracts.limits import MAX_CANDIDATES, MAX_K, MAX_QUERY_CHARS
from cascade.runtime.process import CascadeProcess
from cascade.runtime.provision import provision_topics
from cascade.sdk import SearchClient, SearchFailed, SearchTimeout, replies
from cascade.services.encoders import BiEncoder, CrossEncoder, document_text
from cascade.services.encoders.device import resolve_device
from tests.conftest import addressed_to, client_for
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.both_stores

CORPUS = [
    {"doc_id": f"d{i}", "title": title, "text": text}
    for i, (title, text) in enumerate([
        ("Hotel Lumiere", "A quiet hotel in Lyon with an outdoor pool and a garden."),
        ("Hotel Nord", "A business hotel in Lille without a pool, close to the station."),
        ("Telephone", "Alexander Graham Bell was granted the first telephone patent in 1876."),
        ("Phones today", "Smartphones combine a telephone, a camera and a computer."),
        ("Paris Hilton", "Paris Hilton is an American media personality and businesswoman."),
        ("Hilton Paris Opera", "The Hilton Paris Opera is a hotel near Gare Saint-Lazare."),
        ("Python speed", "CPython is usually slower than Java on CPU-bound benchmarks."),
        ("Java", "Java runs on the JVM, whose JIT compiler optimises hot code."),
        ("Coffee", "Espresso is brewed by forcing hot water through ground coffee."),
        ("Tea", "Green tea is made from unoxidised leaves of Camellia sinensis."),
    ])
]


@pytest.fixture
async def service(all_roles: CascadeProcess) -> CascadeProcess:
    async with client_for(all_roles) as client:
        await client.index(CORPUS, collection="demo")
    return all_roles


@pytest.fixture
async def client(service: CascadeProcess) -> AsyncIterator[SearchClient]:
    async with client_for(service) as connected:
        yield connected


def _texts(ids: list[str]) -> list[str]:
    by_id = {doc["doc_id"]: document_text(doc["title"], doc["text"]) for doc in CORPUS}
    return [by_id[doc_id] for doc_id in ids]


async def test_mode_bi_ranks_by_cosine_similarity(client: SearchClient, service: CascadeProcess) -> None:
    result = await client.search("who invented the telephone", collection="demo", k=5, mode="bi")
    assert result.mode == "bi" and len(result.hits) == 5
    encoder = service.bi_encoder
    assert isinstance(encoder, BiEncoder)
    query = encoder.encode_queries(["who invented the telephone"])[0]
    documents = encoder.encode_documents(_texts([doc["doc_id"] for doc in CORPUS]))
    expected = [CORPUS[i]["doc_id"] for i in np.argsort(-(documents @ query))[:5]]
    assert [hit.doc_id for hit in result.hits] == expected
    assert all(hit.score == hit.first_stage_score for hit in result.hits)
    timings = result.timings
    assert timings.encode_ms is not None and timings.ann_ms is not None and timings.query_queue_ms is not None
    assert timings.total_ms is not None and timings.encode_ms + timings.ann_ms <= timings.total_ms
    assert timings.rerank_ms is None
    assert result.served_by["query"] == "test"


@pytest.mark.parametrize("mode", ["rerank", "cross"])
async def test_cross_encoder_modes_rank_by_the_models_scores(
    client: SearchClient, service: CascadeProcess, tiny_cross_encoder: Path, mode: str
) -> None:
    query = "hotel in Paris with a pool"
    result = await client.search(query, collection="demo", k=4, candidates=6, mode=mode)  # type: ignore[arg-type]
    scored = CrossEncoder.load(str(tiny_cross_encoder)).score(query, _texts([hit.doc_id for hit in result.hits]))
    assert [hit.score for hit in result.hits] == pytest.approx(scored.tolist(), abs=1e-4)
    assert [hit.score for hit in result.hits] == sorted((hit.score for hit in result.hits), reverse=True)
    t = result.timings
    assert None not in (t.query_queue_ms, t.encode_ms, t.ann_ms, t.rerank_queue_ms, t.rerank_ms, t.total_ms)
    assert t.rerank_batch_pairs is not None and t.rerank_batch_pairs >= (6 if mode == "rerank" else 10)
    assert t.rerank_padded_tokens is not None and t.rerank_padded_tokens > 0
    assert t.total_ms is not None and t.encode_ms + t.ann_ms + t.rerank_ms <= t.total_ms  # type: ignore[operator]
    assert result.models["cross_encoder"] == str(tiny_cross_encoder)
    assert all(hit.first_stage_score is not None for hit in result.hits)


async def test_a_request_without_candidates_gets_the_devices_default(
    client: SearchClient, service: CascadeProcess
) -> None:
    await client.index([{"doc_id": f"n{i}", "text": f"numbered document {i}"} for i in range(30)], collection="many")
    result = await client.search("numbered document", collection="many", k=3, mode="rerank")
    device = resolve_device(service.settings.models.device)[0].type
    expected = service.settings.batching.default_candidates(device)
    assert expected == (100 if device == "cuda" else 20)
    assert result.timings.rerank_batch_pairs == min(expected, 30)


async def test_cross_mode_is_refused_above_its_collection_limit(
    client: SearchClient, service: CascadeProcess
) -> None:
    await client.index([{"doc_id": f"x{i}", "text": f"extra document {i}"} for i in range(25)], collection="big")
    with pytest.raises(SearchFailed) as caught:
        await client.search("extra", collection="big", mode="cross")
    assert caught.value.code == "collection_too_large"
    assert "holds 25, more than the limit of 20" in str(caught.value)


async def test_sdk_error_timeout_and_streaming(client: SearchClient, service: CascadeProcess) -> None:
    with pytest.raises(SearchFailed) as caught:
        await client.search("anything", collection="nowhere", mode="bi")
    assert caught.value.code == "unknown_collection"

    stream = client.results()
    streamed = asyncio.create_task(anext(stream))
    answered = await client.search("green tea", collection="demo", mode="bi")
    assert (await asyncio.wait_for(streamed, 10)).request_id == answered.request_id

    kafka = service.settings.kafka
    await provision_topics(TopicRegistry("nobody.serves."), bootstrap_servers=kafka.bootstrap)
    async with SearchClient(kafka.bootstrap, topic_prefix="nobody.serves.") as lonely:
        with pytest.raises(SearchTimeout, match=r"no result for request [0-9a-f]+ within 1 s"):
            await lonely.search("hello", collection="demo", timeout_s=1)


async def test_duplicate_results_are_dropped(client: SearchClient, service: CascadeProcess) -> None:
    first = await client.search("espresso", collection="demo", mode="bi")
    await produce(service.settings.kafka.bootstrap, client.replies.topic, [(first.request_id, encode(first))] * 2,
                  partition=client.replies.partition)
    second = await client.search("espresso", collection="demo", mode="bi")
    assert second.request_id != first.request_id
    await asyncio.sleep(0.5)
    assert client.replies.duplicates_dropped == 2


async def test_two_clients_on_one_reply_partition_get_only_their_own_answers(
    service: CascadeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients share the replies topic; two on the same partition each see the other's answers and drop them."""
    monkeypatch.setattr(replies.random, "choice", lambda partitions: partitions[-1])
    kafka = service.settings.kafka
    async with (SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix) as alice,
                SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix) as bob):
        assert alice.replies.partition == bob.replies.partition
        seen: dict[str, list[str]] = {"alice": [], "bob": []}

        async def watch(name: str, who: SearchClient) -> None:
            async for result in who.results():
                seen[name].append(result.request_id)

        watchers = [asyncio.create_task(watch("alice", alice)), asyncio.create_task(watch("bob", bob))]
        mine = await asyncio.gather(*(alice.search(f"tea {i}", collection="demo", mode="bi") for i in range(5)))
        theirs = await asyncio.gather(*(bob.search(f"java {i}", collection="demo", mode="rerank") for i in range(5)))
        await asyncio.sleep(0.5)
        for watcher in watchers:
            watcher.cancel()
        dropped = alice.replies.others_dropped, bob.replies.others_dropped
    assert sorted(seen["alice"]) == sorted(result.request_id for result in mine)
    assert sorted(seen["bob"]) == sorted(result.request_id for result in theirs)
    assert dropped == (5, 5)  # each read the other's five answers, and dropped them


def _request(client: SearchClient, request_id: str, **changes: object) -> bytes:
    base = SearchRequest(request_id=request_id, collection="demo", query="coffee", k=3, mode="bi")
    return orjson.dumps(addressed_to(client, base).model_dump(mode="json") | changes)


async def test_invalid_requests_get_an_error_result_and_a_dead_letter(
    client: SearchClient, service: CascadeProcess
) -> None:
    kafka = service.settings.kafka
    hostile = {
        "unknown collection": (_request(client, "r-unknown", collection="nope"), "unknown_collection"),
        "k out of range": (_request(client, "r-k", k=MAX_K + 1), "invalid_request"),
        "candidates out of range": (_request(client, "r-cand", candidates=MAX_CANDIDATES + 1), "invalid_request"),
        "empty query": (_request(client, "r-empty", query="  "), "invalid_request"),
        "over-long query": (_request(client, "r-long", query="q" * (MAX_QUERY_CHARS + 1)), "invalid_request"),
        "wrong schema version": (_request(client, "r-version", schema_version=7), "invalid_request"),
    }
    records = [("ok-before", _request(client, "ok-before")), ("garbage", b"\x00not json at all")]
    records += [(request_id, raw) for request_id, (raw, _) in
                zip([f"r{i}" for i in range(len(hostile))], hostile.values(), strict=True)]
    records.append(("ok-after", _request(client, "ok-after")))
    expected_ids = {"ok-before", "ok-after", "r-unknown", "r-k", "r-cand", "r-empty", "r-long", "r-version"}

    stream = client.results()
    async with (Collector(kafka.bootstrap, kafka.topics.name(Topic.DLQ), DeadLetter) as dlq,
                Collector(kafka.bootstrap, kafka.topics.name(Topic.RESULTS), SearchResult) as shared):
        await produce(kafka.bootstrap, kafka.topics.name(Topic.QUERIES), records)
        results: dict[str, SearchResult] = {}
        async with asyncio.timeout(30):
            while set(results) != expected_ids:
                result = await anext(stream)
                results[result.request_id] = result
        letters = await dlq.wait_for(lambda items: len(items) >= len(hostile) + 1)
        shared_results = await shared.wait_for(lambda items: len(items) >= 1)
    assert results["ok-before"].error is None and results["ok-after"].error is None
    assert len(results["ok-after"].hits) == 3
    for request_id, (_, code) in zip(["r-unknown", "r-k", "r-cand", "r-empty", "r-long", "r-version"],
                                     hostile.values(), strict=True):
        error = results[request_id].error
        assert error is not None and error.code == code, request_id
    # A record that is not even JSON is answered on the shared results topic, under its key (the request id by
    # contract).
    on_shared = {result.request_id: result.error for result in shared_results}
    garbage = on_shared["garbage"]
    assert garbage is not None and garbage.code == "invalid_request" and "not valid UTF-8 JSON" in garbage.message
    assert {letter.key: letter.reason for letter in letters} == {
        "garbage": "not_json", "r0": "unknown_collection", **{f"r{i}": "invalid_fields" for i in range(1, 6)}}
    assert all(letter.error for letter in letters)


async def test_expired_deadline_is_an_explicit_error(client: SearchClient, service: CascadeProcess) -> None:
    kafka = service.settings.kafka
    late = addressed_to(client, SearchRequest(request_id="late", collection="demo", query="tea", mode="rerank",
                                              deadline_ms=now_ms() - 1000))
    stream = client.results()
    await produce(kafka.bootstrap, kafka.topics.name(Topic.QUERIES), [("late", encode(late))])
    result = await asyncio.wait_for(anext(stream), 20)
    assert result.request_id == "late"
    assert result.error is not None and result.error.code == "deadline_exceeded"


async def test_outputs_say_they_are_json(client: SearchClient, service: CascadeProcess) -> None:
    result = await client.search("telephone", collection="demo", mode="bi", k=1)
    consumer = AIOKafkaConsumer(bootstrap_servers=service.settings.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(client.replies.topic, client.replies.partition)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        records = (await consumer.getmany(partition, timeout_ms=5000))[partition]
    finally:
        await consumer.stop()
    [record] = [record for record in records if record.key == result.request_id.encode()]
    assert dict(record.headers)["content-type"] == b"application/json"
