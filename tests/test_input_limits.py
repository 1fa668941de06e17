"""Inputs at the edge of the contract, through Kafka: request ids that cannot serve as one, a requester's clock
running ahead of the services', and headers that cannot be read."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from cascade.contracts import DeadLetter, SearchRequest, SearchResult, Topic, encode, now_ms
from cascade.contracts.limits import MAX_REQUEST_ID_CHARS
from cascade.contracts.messages import Mode
from cascade.runtime.process import CascadeProcess
from tests.conftest import client_for
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.both_stores

DOCS = [{"doc_id": f"d{i}", "title": f"title {i}", "text": f"document {i} about {topic}"}
        for i, topic in enumerate(["the moon landing", "baking bread", "jazz", "volcanoes"])]


def _request(request_id: str, **changes: object) -> SearchRequest:
    return SearchRequest.model_validate({"request_id": request_id, "collection": "c", "query": "the moon", "k": 2,
                                         "mode": "bi", **changes})


async def test_a_request_whose_id_cannot_serve_is_answered_under_its_record_key(all_roles: CascadeProcess) -> None:
    kafka = all_roles.settings.kafka
    unusable: dict[str, object] = {"k-empty": "", "k-long": "r" * (MAX_REQUEST_ID_CHARS + 1), "k-number": 7}
    template = _request("x").model_dump(mode="json")
    records = [(key, orjson.dumps(template | {"request_id": request_id})) for key, request_id in unusable.items()]
    async with (Collector(kafka.bootstrap, kafka.topics.name(Topic.DLQ), DeadLetter) as dlq,
                Collector(kafka.bootstrap, kafka.topics.name(Topic.RESULTS), SearchResult) as results):
        await produce(kafka.bootstrap, kafka.topics.name(Topic.QUERIES), records)
        letters = await dlq.wait_for(lambda items: set(unusable) <= {letter.key for letter in items}, within_s=30)
        answers = await results.wait_for(
            lambda items: set(unusable) <= {result.request_id for result in items}, within_s=30)
    for answer in answers:
        assert answer.error is not None and answer.error.code == "invalid_request"
        assert "request_id" in answer.error.message
    assert all("request_id" in letter.error for letter in letters)


@pytest.mark.parametrize("mode", ["bi", "rerank"])
async def test_a_requester_clock_ahead_of_the_services_gives_no_negative_latency(
    all_roles: CascadeProcess, mode: Mode
) -> None:
    kafka = all_roles.settings.kafka
    async with client_for(all_roles) as client:
        await client.index(DOCS, collection="c")
    ahead = _request("ahead", mode=mode, created_at_ms=now_ms() + 60_000)
    async with Collector(kafka.bootstrap, kafka.topics.name(Topic.RESULTS), SearchResult) as results:
        await produce(kafka.bootstrap, kafka.topics.name(Topic.QUERIES), [("ahead", encode(ahead))])
        [result] = await results.wait_for(lambda items: len(items) >= 1, within_s=30)
    assert result.error is None and len(result.hits) == 2
    timings = result.timings
    assert timings.query_queue_ms == 0.0 and timings.total_ms == 0.0
    assert mode == "bi" or (timings.rerank_queue_ms is not None and timings.rerank_queue_ms >= 0.0)


async def test_headers_that_cannot_be_read_are_ignored_and_the_record_answered(all_roles: CascadeProcess) -> None:
    """Headers are not part of the contract: a valid request is answered whatever they hold, and a trace context
    that cannot be read starts a new trace (W3C Trace Context), rather than the request being refused."""
    kafka = all_roles.settings.kafka
    async with client_for(all_roles) as client:
        await client.index(DOCS, collection="c")
    headers = {
        "h-not-utf8": [("traceparent", b"\xff\xfe"), ("x-binary", b"\x80\x81")],
        "h-malformed": [("traceparent", b"00-not-a-trace-context"), ("tracestate", b"=,=")],
        "h-content-type": [("content-type", b"text/plain")],
    }
    async with (Collector(kafka.bootstrap, kafka.topics.name(Topic.DLQ), DeadLetter) as dlq,
                Collector(kafka.bootstrap, kafka.topics.name(Topic.RESULTS), SearchResult) as results):
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        await producer.start()
        try:
            await asyncio.gather(*[await producer.send(kafka.topics.name(Topic.QUERIES), encode(_request(key)),
                                                       key=key.encode(), headers=record_headers)
                                   for key, record_headers in headers.items()])
        finally:
            await producer.stop()
        answers = await results.wait_for(lambda items: set(headers) <= {result.request_id for result in items},
                                         within_s=30)
    assert all(answer.error is None and len(answer.hits) == 2 for answer in answers)
    assert not [letter for letter in dlq.items if letter.key in headers]
