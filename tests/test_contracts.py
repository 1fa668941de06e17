"""Every contract round-trips through orjson; every limit is enforced with a message that names it."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from cascade.contracts import (
    Candidate,
    CandidateSet,
    ContractError,
    DeadLetter,
    DocumentEvent,
    ErrorInfo,
    Hit,
    IngestAck,
    ReindexRequest,
    ReindexStatus,
    SearchRequest,
    SearchResult,
    StageTimings,
    Topic,
    TopicRegistry,
    decode,
    encode,
)
from cascade.contracts.limits import (
    MAX_CANDIDATES,
    MAX_DOC_ID_CHARS,
    MAX_K,
    MAX_MESSAGE_BYTES,
    MAX_METADATA_BYTES,
    MAX_METADATA_KEYS,
    MAX_QUERY_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
)
from cascade.contracts.topics import SPECS

REQUEST = SearchRequest(request_id="r1", collection="docs", query="who invented the telephone", k=5,
                        candidates=50, mode="rerank", filter={"lang": "en"}, reply_to="cascade.replies",
                        reply_partition=3, deadline_ms=1e12)
EXAMPLES: list[BaseModel] = [
    DocumentEvent(collection="docs", doc_id="d1", title="T", text="body", metadata={"lang": "en", "n": 3,
                                                                                     "tags": ["a", 1]}),
    DocumentEvent(op="delete", collection="docs", doc_id="d1"),
    IngestAck(doc_id="d1", collection="docs", status="indexed", content_hash="ab"),
    IngestAck(doc_id=None, collection=None, status="rejected", error="not JSON"),
    REQUEST,
    CandidateSet(request=REQUEST, candidates=[Candidate(doc_id="d1", text="t", score=0.5)],
                 timings=StageTimings(encode_ms=1.0, ann_ms=0.5), served_by={"query": "q-1"}),
    SearchResult(request_id="r1", collection="docs", mode="bi", hits=[Hit(doc_id="d1", score=0.9)],
                 timings=StageTimings(total_ms=3.0)),
    SearchResult(request_id="r1", error=ErrorInfo(code="unknown_collection", message="no collection 'x'")),
    DeadLetter(source_topic="cascade.documents", partition=0, offset=7, key="d1", raw_b64="AAE=", raw_size=2,
               reason="not_json", error="bad", service="ingest"),
    DocumentEvent(collection="docs", doc_id="d2", text="body", model="bge-small", late_interaction=True),
    ReindexRequest(request_id="x1", collection="docs", model="bge-small", late_interaction=False),
    ReindexStatus(request_id="x1", collection="docs", state="switched", source="docs@v1", target="docs@v2",
                  model="bge-small", documents=1200, seconds=61.5),
    SearchRequest(request_id="r2", collection="docs", query="q", mode="colbert", candidates=100),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: BaseModel) -> None:
    assert decode(encode(message), type(message)) == message


def test_every_topic_message_has_an_example() -> None:
    assert {spec.message for spec in SPECS.values()} <= {type(m) for m in EXAMPLES}
    assert all(name.startswith("cascade.") for name in TopicRegistry().all())


def test_answers_go_only_to_the_namespace_answer_topics() -> None:
    topics = TopicRegistry(prefix="acme.")
    last = topics.spec(Topic.REPLIES).partitions - 1
    assert topics.reply_problem("acme.replies", last) is None
    assert topics.reply_problem("acme.results", None) is None
    assert "outside this namespace's answer topics" in str(topics.reply_problem("cascade.replies", 0))
    assert "outside this namespace's answer topics" in str(topics.reply_problem("acme.replies.mine", None))
    assert "outside this namespace's answer topics" in str(topics.reply_problem("acme.queries", None))
    assert f"(0 to {last})" in str(topics.reply_problem("acme.replies", last + 1))
    assert "is not a partition" in str(topics.reply_problem("acme.replies", None))
    assert "not of 'acme.results'" in str(topics.reply_problem("acme.results", 0))


def _request(**changes: object) -> bytes:
    return orjson.dumps(REQUEST.model_dump(mode="json") | changes)


def _document(**changes: object) -> bytes:
    return orjson.dumps({"collection": "docs", "doc_id": "d1", "text": "body"} | changes)


@pytest.mark.parametrize(
    ("raw", "model", "expected"),
    [
        (_document(text="x" * (MAX_TEXT_CHARS + 1)), DocumentEvent, "text: String should have at most"),
        (_document(text="   "), DocumentEvent, "an upsert needs a non-empty text"),
        (_document(text=None), DocumentEvent, "text: Input should be a valid string"),
        (_document(title="x" * (MAX_TITLE_CHARS + 1)), DocumentEvent, "title: String should have at most"),
        (_document(doc_id="x" * (MAX_DOC_ID_CHARS + 1)), DocumentEvent, "doc_id: String should have at most"),
        (_document(doc_id=""), DocumentEvent, "doc_id: String should have at least 1"),
        (_document(doc_id="a\nb"), DocumentEvent, "doc_id: String should match pattern"),
        (_document(collection="../etc"), DocumentEvent, "collection: String should match pattern"),
        (_document(metadata={f"k{i}": i for i in range(MAX_METADATA_KEYS + 1)}), DocumentEvent,
         f"more than the limit of {MAX_METADATA_KEYS}"),
        (_document(metadata={"k": "x" * MAX_METADATA_BYTES}), DocumentEvent,
         f"more than the limit of {MAX_METADATA_BYTES}"),
        (_document(metadata={"k": {"nested": 1}}), DocumentEvent, "metadata.k"),
        (_document(schema_version=2), DocumentEvent, "schema_version: Input should be 1"),
        (_document(op="merge"), DocumentEvent, "op: Input should be 'upsert' or 'delete'"),
        (_document(extra=1), DocumentEvent, "extra: Extra inputs are not permitted"),
        (_document(doc_id=5), DocumentEvent, "doc_id: Input should be a valid string"),
        (_request(k=0), SearchRequest, "k: Input should be greater than or equal to 1"),
        (_request(k=MAX_K + 1), SearchRequest, f"k: Input should be less than or equal to {MAX_K}"),
        (_request(candidates=MAX_CANDIDATES + 1), SearchRequest, "candidates: Input should be less than"),
        (_request(k=60, candidates=50), SearchRequest, "k (60) must not exceed candidates (50)"),
        (_request(query=""), SearchRequest, "query is empty"),
        (_request(query="q" * (MAX_QUERY_CHARS + 1)), SearchRequest, "query: String should have at most"),
        (_request(mode="dense"), SearchRequest, "mode: Input should be 'bi', 'rerank', 'cross' or 'colbert'"),
        (_request(k="5"), SearchRequest, "k: Input should be a valid integer"),
        (_request(created_at_ms=1.78e9), SearchRequest, "created_at_ms: Input should be greater than or equal"),
        (_request(created_at_ms=1.78e15), SearchRequest, "created_at_ms: Input should be less than"),
        (_request(deadline_ms=1.78e9), SearchRequest, "deadline_ms: Input should be greater than or equal"),
        (_request(deadline_ms=1.78e15), SearchRequest, "deadline_ms: Input should be less than"),
        (_request(deadline_ms=-1.0), SearchRequest, "deadline_ms: Input should be greater than or equal"),
        (_request(filter={"lang\x7f": "en"}), SearchRequest, "filter.lang\x7f.[key]: String should match pattern"),
        (_request(filter={"a.b": "en"}), SearchRequest, "filter.a.b.[key]: String should match pattern"),
        (_request(reply_to=None), SearchRequest, "reply_partition names a partition of reply_to, which is not set"),
        (_request(reply_partition=-1), SearchRequest, "reply_partition: Input should be greater than or equal to 0"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), SearchRequest, "more than the limit of"),
        (b"{not json", SearchRequest, "not valid UTF-8 JSON"),
        (b'{"query": "\xff\xfe"}', SearchRequest, "not valid UTF-8 JSON"),
        (b"[1, 2]", SearchRequest, "expected a JSON object for SearchRequest, got list"),
    ],
)
def test_limits_are_enforced_with_clear_messages(raw: bytes, model: type[BaseModel], expected: str) -> None:
    with pytest.raises(ContractError, match=None) as caught:
        decode(raw, model)
    assert expected in str(caught.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
field_names = st.sampled_from(sorted({name for spec in SPECS.values() for name in spec.message.model_fields}))


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from([spec.message for spec in SPECS.values()]),
    junk=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        json_values.map(orjson.dumps),
        st.dictionaries(field_names, json_values, max_size=8).map(orjson.dumps),
    ),
)
def test_junk_never_raises_anything_but_a_contract_error(model: type[BaseModel], junk: bytes) -> None:
    with contextlib.suppress(ContractError):
        decode(junk, model)
