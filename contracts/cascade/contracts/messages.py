"""The messages of Cascade's topics: the public contract between the SDK, the services and operators.

Every message is a frozen, strict pydantic model that forbids unknown fields and carries `schema_version`.
Times are epoch milliseconds (floats) so that a message is plain JSON with no date parsing.
"""

from __future__ import annotations

import time
from typing import Annotated, Final, Literal, Self, TypeAlias

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from cascade.contracts.limits import (
    EARLIEST_EPOCH_MS,
    LATEST_EPOCH_MS,
    MAX_CANDIDATES,
    MAX_DOC_ID_CHARS,
    MAX_ERROR_CHARS,
    MAX_K,
    MAX_METADATA_BYTES,
    MAX_METADATA_KEYS,
    MAX_QUERY_CHARS,
    MAX_REQUEST_ID_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
)

__all__ = [
    "FILTER_KEY_PATTERN",
    "REINDEX_COPY_HEADER",
    "SCHEMA_VERSION",
    "TENANT_PATTERN",
    "AckStatus",
    "Candidate",
    "CandidateSet",
    "CollectionName",
    "ContractBreach",
    "DeadLetter",
    "DeadLetterReason",
    "DocId",
    "DocumentEvent",
    "ErrorCode",
    "ErrorInfo",
    "Hit",
    "IngestAck",
    "Lane",
    "Message",
    "Metadata",
    "Mode",
    "Passages",
    "ReindexCopy",
    "ReindexRequest",
    "ReindexState",
    "ReindexStatus",
    "SearchRequest",
    "SearchResult",
    "StageTimings",
    "elapsed_ms",
    "now_ms",
]

SCHEMA_VERSION: Final = 1

_NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f]+$"
CollectionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
DocId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_DOC_ID_CHARS, pattern=_NO_CONTROL_CHARS)]
RequestId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REQUEST_ID_CHARS,
                                             pattern=_NO_CONTROL_CHARS)]
TopicName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,249}$")]
TENANT_PATTERN: Final = r"[a-z0-9][a-z0-9-]{0,30}"
"""A tenant's name: no dot, so one tenant's namespace never holds another's."""
TenantName = Annotated[str, StringConstraints(pattern=f"^{TENANT_PATTERN}$")]
ModelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{0,63}$")]
"""A first-stage model of the catalogue (`cascade models list`), e.g. `bge-small`."""
EpochMs = Annotated[float, Field(ge=EARLIEST_EPOCH_MS, lt=LATEST_EPOCH_MS)]
"""A time in epoch milliseconds (UTC) from 2001 up to 2100: one given in seconds or microseconds is refused, not
read as a time 50 years off."""
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
Title = Annotated[str, StringConstraints(max_length=MAX_TITLE_CHARS)]
ErrorText = Annotated[str, StringConstraints(max_length=MAX_ERROR_CHARS)]
Scalar = str | int | float | bool
FILTER_KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"
FilterKey = Annotated[str, StringConstraints(pattern=FILTER_KEY_PATTERN)]
"""A metadata field a filter matches on: letters, digits, `_` and `-` (a store's field path is built from it)."""
Filter = dict[FilterKey, str | int | bool]
Mode = Literal["bi", "rerank", "cross", "colbert"]
"""bi: the first stage alone; rerank: its candidates reranked by the cross-encoder; cross: every document of a
small collection scored by the cross-encoder; colbert: the first stage's candidates rescored by late interaction
(MaxSim of token vectors, inside the store) in collections made with `late_interaction`."""
Lane = Literal["interactive", "bulk"]
"""Which candidates topic a rerank request's candidate set goes to (see SearchRequest.lane)."""
FirstStage = Literal["dense", "sparse", "hybrid"]
"""How candidates are found: the collection's bi-encoder (HNSW), BM25 term vectors, or both fused by reciprocal
rank inside the store."""
ErrorCode = Literal[
    "invalid_request", "unknown_collection", "collection_too_large", "deadline_exceeded", "model_mismatch",
    "model_unavailable", "too_large", "overloaded", "invalid_reply_to", "internal",
]

ContractBreach = Literal["not_json", "not_an_object", "too_large", "invalid_fields"]
"""How a record breaks the contract: not UTF-8 JSON, not an object, over the size limit, or fields that fail
validation."""
DeadLetterReason: TypeAlias = (ErrorCode | ContractBreach
                               | Literal["collection_cap", "processing_failed", "undeliverable"])
"""Why a record was dead-lettered: the error code its requester got, how it breaks the contract, the store's cap on
collections (CASCADE_STORE_MAX_COLLECTIONS), its processing raised, or its answer could not be published."""

AckStatus = Literal["indexed", "updated", "unchanged", "deleted", "rejected"]


def now_ms() -> float:
    return time.time() * 1000.0


def elapsed_ms(since_ms: float) -> float:
    """Milliseconds from `since_ms` to now, never below 0: `since_ms` may come from another machine's clock,
    a little ahead of this one's."""
    return max(now_ms() - since_ms, 0.0)


def _check_metadata(metadata: dict[str, Scalar | list[Scalar]]) -> dict[str, Scalar | list[Scalar]]:
    if len(metadata) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata has {len(metadata)} keys, more than the limit of {MAX_METADATA_KEYS}")
    size = len(orjson.dumps(metadata))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata encodes to {size} bytes, more than the limit of {MAX_METADATA_BYTES}")
    return metadata


Metadata = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], Scalar | list[Scalar]],
    AfterValidator(_check_metadata),
]


class Message(BaseModel):
    """Base of every topic message: strict types, no unknown fields, immutable, versioned."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True)

    schema_version: Literal[1] = SCHEMA_VERSION


class DocumentEvent(Message):
    """A document to index (`upsert`) or to remove (`delete`) from a collection. Key: doc_id."""

    op: Literal["upsert", "delete"] = "upsert"
    collection: CollectionName
    doc_id: DocId
    title: Title = ""
    text: Text = ""
    metadata: Metadata = Field(default_factory=dict)
    model: ModelName | None = None
    """The first-stage model of a collection this document creates (default: the ingest service's); for an
    existing collection it must be the collection's model or absent."""
    late_interaction: bool | None = None
    """Whether a collection this document creates also stores each document's token vectors (ColBERT, for mode
    colbert; default: no); for an existing collection it must match or be absent."""
    passages: bool | None = None
    """Whether a collection this document creates splits each document into passages (for documents longer
    than the models read, 256 tokens: the rest would be cut): a document is found and reranked by its best
    passage. Default: no; for an existing collection it must match or be absent. Not with late_interaction."""

    @model_validator(mode="after")
    def _text_matches_op(self) -> Self:
        if self.op == "upsert" and not self.text.strip():
            raise ValueError("an upsert needs a non-empty text")
        if self.late_interaction and self.passages:
            raise ValueError("a collection stores token vectors (late_interaction) or passages, not both")
        return self


class IngestAck(Message):
    """The outcome of one DocumentEvent. doc_id and collection are None when the event was unreadable."""

    doc_id: DocId | None
    collection: CollectionName | None
    status: AckStatus
    """indexed: encoded and stored; updated: metadata changed, stored without re-encoding; unchanged: nothing
    to do; deleted; rejected: see `error`."""
    content_hash: str | None = None
    error: ErrorText | None = None
    at_ms: float = Field(default_factory=now_ms)


class SearchRequest(Message):
    """A query. Key: request_id. The answer goes to `reply_to` (a topic) or to the shared results topic."""

    request_id: RequestId
    collection: CollectionName
    query: Annotated[str, StringConstraints(max_length=MAX_QUERY_CHARS)]
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    candidates: Annotated[int, Field(ge=1, le=MAX_CANDIDATES)] | None = None
    """First-stage hits the reranker scores (mode rerank) or MaxSim rescores (mode colbert); unset: the query
    service's default (rerank: 100 where the models run on a GPU, 20 on CPU, `CASCADE_BATCH_CANDIDATES`; colbert:
    `CASCADE_BATCH_COLBERT_CANDIDATES`, 100)."""
    mode: Mode = "rerank"
    first_stage: FirstStage = "dense"
    """For modes bi and rerank: which retrieval finds the candidates (mode cross scores every document)."""
    lane: Lane = "interactive"
    """For mode rerank: `bulk` candidate sets wait while interactive ones are being reranked (backfills, offline
    evaluation); an `interactive` request is the one a person waits for."""
    filter: Annotated[Filter, Field(max_length=8)] | None = None
    min_probability: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """For modes rerank and cross: answer only the hits whose relevance probability (see Hit.probability) is at
    least this; a cross-encoder without a calibration answers invalid_request."""
    reply_to: TopicName | None = None
    """Where the answer goes: the namespace's replies topic (with reply_partition) or its results topic (the
    default); any other topic is refused with invalid_reply_to, and the error answered on the results topic."""
    reply_partition: Annotated[int, Field(ge=0)] | None = None
    """The partition of the replies topic the requester reads (it picks one and reads it without a consumer
    group, dropping answers to other clients' requests)."""
    deadline_ms: EpochMs | None = Field(None, description=(
        "Epoch milliseconds (UTC, 2001 up to 2100: a time in seconds or microseconds is refused) after which no "
        "answer is wanted; a request picked up or reranked later is answered deadline_exceeded."))
    created_at_ms: EpochMs = Field(default_factory=now_ms, description=(
        "Epoch milliseconds (UTC, 2001 up to 2100: a time in seconds or microseconds is refused) when the request "
        "was made, by the requester's clock: the start of the result's query_queue_ms and total_ms, which are "
        "reported as 0, never negative, where that clock runs ahead of the services'."))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.query.strip():
            raise ValueError("query is empty")
        if self.candidates is not None and self.k > self.candidates:
            raise ValueError(f"k ({self.k}) must not exceed candidates ({self.candidates})")
        if self.mode in ("cross", "colbert") and self.first_stage != "dense":
            raise ValueError(f"mode {self.mode!r} takes the dense first stage only")
        if self.min_probability is not None and self.mode not in ("rerank", "cross"):
            raise ValueError(f"min_probability needs a cross-encoder's scores: mode rerank or cross, not {self.mode!r}")
        if self.reply_partition is not None and self.reply_to is None:
            raise ValueError("reply_partition names a partition of reply_to, which is not set")
        return self


class StageTimings(BaseModel):
    """Milliseconds spent per stage; a stage a request did not pass through stays None."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True)

    query_queue_ms: float | None = None
    """From the request's creation to the query service picking it up."""
    encode_ms: float | None = None
    """Encoding the query (mode colbert: its dense vector and its token vectors)."""
    ann_ms: float | None = None
    """The store's search (mode colbert: the dense prefetch and the MaxSim rescoring, one store call)."""
    rerank_queue_ms: float | None = None
    """From the candidate set's publication to its batch starting on the cross-encoder."""
    rerank_ms: float | None = None
    rerank_batch_pairs: int | None = None
    rerank_padded_tokens: int | None = None
    total_ms: float | None = None
    """From the request's creation to the result's publication."""


class Passages(BaseModel):
    """How a collection of passages splits its documents, fixed when it is made: windows of `words` words, each
    starting `words - overlap` after the one before, at most `limit` a document (its first ones and its last)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True)

    words: Annotated[int, Field(ge=8, le=4096)] = 150
    overlap: Annotated[int, Field(ge=0, le=2048)] = 30
    limit: Annotated[int, Field(ge=1, le=1024)] = 32

    @model_validator(mode="after")
    def _advances(self) -> Self:
        if self.overlap >= self.words:
            raise ValueError(f"a passage's overlap ({self.overlap} words) must be shorter than it ({self.words})")
        return self


class Candidate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True)

    doc_id: DocId
    title: Title = ""
    text: Text
    score: float
    """The first-stage (bi-encoder cosine) score."""


class CandidateSet(Message):
    """First-stage candidates of one request, for the reranker. Key: request.request_id."""

    request: SearchRequest
    tenant: TenantName = "default"
    """Whose request it is: the reranker answers in that tenant's namespace."""
    candidates: Annotated[list[Candidate], Field(max_length=MAX_CANDIDATES)]
    passages: Passages | None = None
    """How the candidates' collection splits documents into passages, if it does: the candidates then carry their
    whole text, and the reranker scores each by its best passage."""
    timings: StageTimings
    served_by: dict[str, str] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict)
    published_at_ms: float = Field(default_factory=now_ms)


class Hit(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True)

    doc_id: DocId
    score: float
    """What the hits are ordered by: the first stage's score, the cross-encoder's, or their fusion (see
    SearchResult.models)."""
    first_stage_score: float | None = None
    rerank_score: float | None = None
    """The cross-encoder's raw score (a logit), before any fusion; modes rerank and cross only."""
    probability: float | None = None
    """The probability that the hit is relevant: the cross-encoder's raw score through the logistic calibration
    fitted on the dev suite and shipped with the model (None where the model has none). Comparable across
    queries, unlike the scores: a threshold can be set on it (SearchRequest.min_probability)."""
    title: Title = ""
    text: Text = ""


class ErrorInfo(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True)

    code: ErrorCode
    message: ErrorText


class SearchResult(Message):
    """The answer to a SearchRequest: ranked hits, or an error. Key: request_id."""

    request_id: RequestId
    collection: CollectionName | None = None
    mode: Mode | None = None
    hits: Annotated[list[Hit], Field(max_length=MAX_K)] = Field(default_factory=list)
    timings: StageTimings = Field(default_factory=StageTimings)
    served_by: dict[str, str] = Field(default_factory=dict)
    """Stage name -> instance id of the process that served it."""
    models: dict[str, str] = Field(default_factory=dict)
    """What ranked the hits: `bi_encoder`, `cross_encoder`, `late_interaction`, and `fusion_weight` when the
    reranker mixed that share of the first-stage score into the hits' scores."""
    error: ErrorInfo | None = None
    created_at_ms: float = Field(default_factory=now_ms)


class ReindexRequest(Message):
    """Build a new version of a collection from its stored documents, encoded by `model`, and switch the
    collection's name to it once complete; queries are answered from the current version meanwhile, and documents
    written meanwhile reach both. Key: collection."""

    request_id: RequestId
    collection: CollectionName
    model: ModelName | None = None
    """The new version's first-stage model (default: the ingest service's)."""
    late_interaction: bool | None = None
    """Whether the new version stores token vectors (default: as the current version)."""


REINDEX_COPY_HEADER: Final = ("cascade-kind", "reindex-copy")
"""The header that marks a ReindexCopy among the DocumentEvents of the documents topic."""


class ReindexCopy(Message):
    """Internal to the ingest service, on the documents topic (marked by REINDEX_COPY_HEADER), keyed by doc_id so
    that it is ordered with the document's own events: make the version a reindex is building hold the document as
    the collection then does. Harmless if sent by anyone: it copies what the store holds. No ack."""

    collection: CollectionName
    doc_id: DocId


ReindexState = Literal["started", "switched", "failed"]


class ReindexStatus(Message):
    """Progress of a ReindexRequest (ingest -> SDK). Key: collection."""

    request_id: RequestId
    collection: CollectionName
    state: ReindexState
    source: str | None = None
    """The version being served when the reindex started."""
    target: str | None = None
    """The version being built (served once `switched`)."""
    model: str | None = None
    documents: int = 0
    """Documents the reindex asked the ingest pods to copy into the new version (besides those written to both
    meanwhile)."""
    seconds: float = 0.0
    error: ErrorText | None = None
    at_ms: float = Field(default_factory=now_ms)


class DeadLetter(Message):
    """A record a service could not process, with the reason. Key: the source record's key."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    raw_b64: str
    """The source record's value, base64, cut to MAX_DLQ_RAW_BYTES (see raw_size for the full size)."""
    raw_size: int
    reason: DeadLetterReason
    """Why, as a code (see DeadLetterReason); `error` says it in words."""
    error: ErrorText
    """The reason in words, for a person."""
    service: str
    at_ms: float = Field(default_factory=now_ms)
