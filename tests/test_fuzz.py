"""Hypothesis-generated junk on every input topic against running services: no crash, every record that breaks
the contract dead-lettered with its reason, and the valid records interleaved with the junk all answered.

CASCADE_FUZZ_RECORDS sets the junk records per topic (default 10,000).
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from cascade.contracts import (
    Candidate,
    CandidateSet,
    ContractError,
    DeadLetter,
    DocumentEvent,
    IngestAck,
    SearchRequest,
    SearchResult,
    StageTimings,
    Topic,
    decode,
    encode,
)
from cascade.contracts.limits import MAX_DLQ_RAW_BYTES
from cascade.runtime.process import CascadeProcess
from tests.kafka_helpers import Collector, eventually

RECORDS = int(os.environ.get("CASCADE_FUZZ_RECORDS", "10000"))
VALID_EVERY = 100
Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]

_INTS = st.integers(-(2**63), 2**64 - 1)  # what JSON encoders carry
_VALUES = st.one_of(
    st.none(), st.booleans(), _INTS, st.floats(), st.text(max_size=40), st.lists(_INTS, max_size=4),
    st.dictionaries(st.text(max_size=5), _INTS, max_size=3), st.just(""), st.builds(lambda: "x" * 40_000),
    st.builds(lambda: "🚀" * 20_000), st.just(-1),
)
_NOT_OBJECTS = st.one_of(st.sampled_from([b"[]", b"null", b"42", b'"text"', b"\xff\xfe"]),
                         st.builds(lambda: b"[" * 5_000), st.builds(lambda: b'{"a":' * 600))


def junk(valid: dict[str, Any]) -> st.SearchStrategy[Record]:
    """Random bytes, truncated or mutated valid messages, wrong types, huge and empty fields, unknown fields,
    lone surrogates, non-objects; odd keys and headers."""
    raw = orjson.dumps(valid)
    fields = sorted(valid)
    value = st.one_of(
        st.binary(max_size=300),
        st.integers(0, len(raw) - 1).map(lambda n: raw[:n]),
        st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)).map(
            lambda at: raw[: at[0]] + bytes([at[1]]) + raw[at[0] + 1 :]),
        st.tuples(st.sampled_from(fields), _VALUES).map(lambda fv: orjson.dumps({**valid, fv[0]: fv[1]})),
        st.sampled_from(fields).map(
            lambda f: orjson.dumps({**valid, f: "SURROGATE"}).replace(b"SURROGATE", b"\\ud800")),
        st.text(min_size=1, max_size=8).map(lambda k: orjson.dumps({**valid, f"unknown_{k}": 1})),
        _NOT_OBJECTS,
        st.just(b""),
    )
    key = st.one_of(st.none(), st.binary(max_size=40), st.text(max_size=20).map(str.encode))
    headers = st.lists(st.tuples(st.text(max_size=10), st.binary(max_size=20)), max_size=3)
    return st.tuples(key, value, headers)


def draw(strategy: st.SearchStrategy[Record], count: int) -> list[Record]:
    """`count` examples of `strategy`, reproducibly (derandomised), without shrinking."""
    drawn: list[Record] = []

    @settings(max_examples=count, database=None, derandomize=True, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example: Record) -> None:
        drawn.append(example)

    collect()
    return [drawn[i % len(drawn)] for i in range(count)]


def _breaks_contract(value: bytes, model: type[BaseModel]) -> bool:
    try:
        decode(value, model)
    except ContractError:
        return True
    return False


async def _publish(bootstrap: str, topic: str, records: list[Record]) -> list[tuple[int, int]]:
    """Publish in order; the (partition, offset) of each record."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=2**21)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key, headers=headers) for key, value, headers in records]
        placed = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(meta.partition, meta.offset) for meta in placed]


def _valid(topic: Topic, i: int, results: str) -> BaseModel:
    if topic is Topic.DOCUMENTS:
        return DocumentEvent(collection="fuzz", doc_id=f"valid-{i}", text=f"valid document {i}")
    request = SearchRequest(request_id=f"valid-{topic.value}-{i}", collection="fuzz", query=f"document {i}", k=2,
                            mode="bi", reply_to=results)
    if topic is Topic.QUERIES:
        return request
    return CandidateSet(request=request.model_copy(update={"mode": "rerank"}), timings=StageTimings(),
                        candidates=[Candidate(doc_id="a", text="first", score=0.5),
                                    Candidate(doc_id="b", text="second", score=0.4)])


# Drawing runs in a thread while the services (which use `random`) serve: Hypothesis notices and warns.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
async def test_junk_on_every_input_topic_is_dead_lettered_and_valid_records_answered(
    all_roles: CascadeProcess
) -> None:
    service = all_roles
    kafka, topics = service.settings.kafka, service.settings.kafka.topics
    results = topics.name(Topic.RESULTS)
    plan: dict[Topic, list[tuple[Record, bool, str | None]]] = {}
    for topic, model in ((Topic.DOCUMENTS, DocumentEvent), (Topic.QUERIES, SearchRequest),
                         (Topic.CANDIDATES, CandidateSet)):
        template = orjson.loads(encode(_valid(topic, 0, results)))
        records: list[tuple[Record, bool, str | None]] = []
        for i, record in enumerate(await asyncio.to_thread(draw, junk(template), RECORDS)):  # the services run
            if i % VALID_EVERY == 0:
                valid = _valid(topic, i, results)
                records.append(((None, encode(valid), []), False, getattr(valid, "doc_id", None)
                                or getattr(getattr(valid, "request", valid), "request_id", None)))
            records.append((record, _breaks_contract(record[1], model), None))
        plan[topic] = records

    async with (Collector(kafka.bootstrap, topics.name(Topic.DLQ), DeadLetter) as dlq,
                Collector(kafka.bootstrap, results, SearchResult) as answers,
                Collector(kafka.bootstrap, topics.name(Topic.ACKS), IngestAck) as acks):
        placed = {topic: await _publish(kafka.bootstrap, topics.name(topic), [r for r, _, _ in records])
                  for topic, records in plan.items()}
        expected_letters = {(topics.name(topic), *placed[topic][i])
                            for topic, records in plan.items() for i, (_, junky, _) in enumerate(records) if junky}
        valid_ids = {topic: {ident for _, _, ident in records if ident} for topic, records in plan.items()}

        def letters() -> set[tuple[str, int, int]]:
            return {(letter.source_topic, letter.partition, letter.offset) for letter in dlq.items}

        try:
            # polled: comparing sets on every arrival would be quadratic in the 30,000 records
            await eventually(lambda: expected_letters <= letters(), within_s=240, every_s=0.5)
        except TimeoutError:
            missing = sorted(expected_letters - letters())
            print(f"missing {len(missing)} dead letters, e.g. {missing[:5]}")
            raise
        await eventually(lambda: valid_ids[Topic.DOCUMENTS] <= {
            a.doc_id for a in acks.items if a.status in ("indexed", "unchanged")}, within_s=60)
        await eventually(lambda: valid_ids[Topic.QUERIES] | valid_ids[Topic.CANDIDATES] <= {
            r.request_id for r in answers.items}, within_s=60)

    assert service.failure is None  # no watched task died
    by_position = {(letter.source_topic, letter.partition, letter.offset): letter for letter in dlq.items}
    assert all(by_position[position].error for position in expected_letters)  # each with its reason
    raw = {(topics.name(topic), *placed[topic][i]): record[1] for topic, records in plan.items()
           for i, (record, junky, _) in enumerate(records) if junky}
    # Each dead letter carries the record's exact bytes (up to MAX_DLQ_RAW_BYTES) and its full size: a letter
    # with no bytes, or the wrong ones, fails unless the record itself was empty.
    unfaithful = [position for position, value in raw.items()
                  if base64.b64decode(by_position[position].raw_b64, validate=True) != value[:MAX_DLQ_RAW_BYTES]
                  or by_position[position].raw_size != len(value)]
    assert not unfaithful, f"{len(unfaithful)} dead letters without their record's bytes, e.g. {unfaithful[:5]}"
    counts = {topic.value: sum(junky for _, junky, _ in records) for topic, records in plan.items()}
    print(f"fuzz: {RECORDS} junk records per topic, contract-breaking {counts}; dead letters {len(expected_letters)} "
          f"(every one found, with its reason); valid records answered: "
          f"{ {topic.value: len(ids) for topic, ids in valid_ids.items()} }; no crash")
