"""What the query service does to a batch of search requests: validate, encode, retrieve, route by mode.

`bi` answers from the first stage; `rerank` hands a CandidateSet to the reranker; `cross` scores a whole
(small) collection with the cross-encoder here; `colbert` has the store rescore the first stage's candidates by
MaxSim of token vectors. Every request that can be identified gets an answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import numpy.typing as npt
import structlog

from cascade.contracts import (
    Candidate,
    CandidateSet,
    ContractError,
    Hit,
    SearchRequest,
    SearchResult,
    StageTimings,
    Topic,
    decode,
    now_ms,
)
from cascade.contracts.messages import DeadLetterReason, ErrorCode, FirstStage
from cascade.contracts.trace_context import context_of
from cascade.services.answers import ranked_result, refusal, result_to, undeliverable
from cascade.services.encoders import (
    BiEncoder,
    BiEncoders,
    LateInteractionModel,
    RerankBatcher,
    UnknownModel,
    document_text,
)
from cascade.services.encoders.device import resolve_device
from cascade.services.encoders.late_interaction import TokenVectors
from cascade.services.encoders.sparse import Bm25Encoder
from cascade.services.faults import is_transient
from cascade.services.lru import LruCache
from cascade.services.messaging import RawRecord
from cascade.services.publishing import Outgoing
from cascade.services.ranking import as_hit, ranked_hits, with_rerank_timings
from cascade.services.settings import Settings
from cascade.services.sizing import fit_snippet, shrink_to_fit, snippet_budget
from cascade.services.stage_spans import Stage, service_spans
from cascade.services.store import (
    FieldNotFilterable,
    ScoredDocument,
    UnknownCollectionError,
    VectorSizeMismatch,
    VectorStore,
)

__all__ = ["QueryProcessor", "QueryVectorCache"]

log = structlog.get_logger(__name__)

Vector = npt.NDArray[np.float32]
QueryVectorCache = LruCache[tuple[str, str], Vector]
"""Query vectors by (model name, query text): a repeated query skips the bi-encoder."""


def _first_stage_label(first_stage: FirstStage, model_id: str) -> str:
    """What found the candidates, as results name it under `models["bi_encoder"]`."""
    return {"dense": model_id, "sparse": "bm25", "hybrid": f"{model_id} + bm25 (rrf)"}[first_stage]


@dataclass(frozen=True)
class _Admitted:
    encoder: BiEncoder
    collection: str
    """The version serving the request (a name resolved through its alias)."""


class _Refused(Exception):
    """A request this service will not serve; a dead letter unless the request was fine and only cannot be
    served now (`dead_letter=False`: past its deadline, the rerankers overloaded, ...)."""

    def __init__(self, code: ErrorCode, message: str, dead_letter: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.filed_as: DeadLetterReason | None = code if dead_letter else None


class QueryProcessor:
    def __init__(
        self, settings: Settings, store: VectorStore, encoders: BiEncoders, late_interaction: LateInteractionModel,
        cache: QueryVectorCache, cross: RerankBatcher | None, reranker_backlog: Callable[[], int] = lambda: 0,
    ) -> None:
        self._settings = settings
        self._topics = settings.kafka.topics
        self._store = store
        self._encoders = encoders
        self._late_interaction = late_interaction
        self._bm25 = Bm25Encoder()
        self._cache = cache
        self._cross = cross
        self._served_by = {"query": settings.instance_name}
        self._candidates = settings.batching.default_candidates(resolve_device(settings.models.device)[0].type)
        self._service = f"query@{settings.instance_name}"
        self._reranker_backlog = reranker_backlog
        """Candidate sets the reranker group has yet to read (cascade.services.lag.GroupBacklog)."""

    async def process(self, records: Sequence[RawRecord]) -> list[Outgoing]:
        picked_at = now_ms()
        out: list[Outgoing] = []
        accepted: list[tuple[RawRecord, SearchRequest, _Admitted]] = []
        for record in records:
            try:
                request = decode(record.value, SearchRequest)
                admitted = await self._admit(request, picked_at)
            except ContractError as exc:
                out += self._refuse(record, "invalid_request", str(exc), None, exc.reason)
            except _Refused as exc:
                out += self._refuse(record, exc.code, str(exc), request, exc.filed_as)
            else:
                accepted.append((record, request, admitted))
        if not accepted:
            return out
        encode_started = now_ms()
        dense = [(admitted.encoder, request.query) for _, request, admitted in accepted
                 if request.first_stage != "sparse"]
        encoded, encode_ms = await self._encode(dense)
        tokens, tokens_ms = await self._encode_tokens([request.query for _, request, _ in accepted
                                                       if request.mode == "colbert"])
        encode = Stage("encode", encode_started, encode_ms + tokens_ms)
        vectors, query_tokens = iter(encoded), iter(tokens)
        for record, request, admitted in accepted:
            vector = next(vectors) if request.first_stage != "sparse" else None
            late = next(query_tokens) if request.mode == "colbert" else None
            with structlog.contextvars.bound_contextvars(request_id=request.request_id):
                try:
                    answer = await self._retrieve(
                        record, request, admitted.collection, vector, late, picked_at, encode,
                        _first_stage_label(request.first_stage, admitted.encoder.model_id))
                except _Refused as exc:
                    out += self._refuse(record, exc.code, str(exc), request, exc.filed_as)
                except FieldNotFilterable as exc:
                    out += self._refuse(record, "invalid_request", str(exc), request, "invalid_request")
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    out += self._refuse(record, "internal", f"retrieval failed: {type(exc).__name__}: {exc}", request,
                                        "processing_failed")
                else:
                    out.append(replace(answer, instead=partial(self._undeliverable, record, request)))
        return out

    def refuse(self, record: RawRecord, reason: str) -> list[Outgoing]:
        """For a record whose processing failed on its own (see cascade.services.consumers)."""
        return self._refuse(record, "internal", reason, None, "processing_failed")

    def _undeliverable(self, record: RawRecord, request: SearchRequest, error: BaseException) -> list[Outgoing]:
        return undeliverable(self._topics, record, error, service=self._service, served_by=self._served_by,
                             request=request)

    async def _admit(self, request: SearchRequest, picked_at: float) -> _Admitted:
        """The version of the request's collection that serves it and its encoder, if the request may be
        served. The name is resolved once, so a reindex's switch never splits a query between versions."""
        if request.reply_to and not self._topics.is_reply_target(request.reply_to):
            raise _Refused("invalid_request", f"reply_to {request.reply_to!r} is not a reply topic: use "
                           f"{self._topics.name(Topic.RESULTS)!r} or a topic under {self._topics.replies_prefix!r}")
        if request.deadline_ms is not None and picked_at > request.deadline_ms:
            raise _Refused("deadline_exceeded", f"the deadline passed {picked_at - request.deadline_ms:.0f} ms "
                           "before the query service picked the request up", dead_letter=False)
        most = self._settings.batching.rerank_max_backlog
        if request.mode == "rerank" and most and (waiting := self._reranker_backlog()) > most:
            raise _Refused("overloaded", f"the rerankers have {waiting} candidate sets waiting, more than "
                           f"CASCADE_BATCH_RERANK_MAX_BACKLOG={most}: try again later, or ask mode 'bi'",
                           dead_letter=False)
        collection = await self._store.resolve(request.collection)
        try:
            model = await self._store.collection_model(collection)
            size = await self._store.vector_size(collection)
        except UnknownCollectionError as exc:
            raise _Refused("unknown_collection", str(exc)) from None
        try:
            encoder = await self._encoders.get(model)
        except UnknownModel as exc:
            raise _Refused("model_unavailable", f"collection {request.collection!r}: {exc}") from None
        if size != encoder.dim:
            raise _Refused("model_mismatch",
                           str(VectorSizeMismatch(request.collection, size, encoder.dim, encoder.model_id)))
        if request.mode == "colbert":
            await self._admit_colbert(collection)
        return _Admitted(encoder, collection)

    async def _admit_colbert(self, collection: str) -> None:
        """Mode colbert needs the collection's token vectors and an encoder of their width."""
        token_dim = await self._store.token_dim(collection)
        if token_dim is None:
            raise _Refused("invalid_request", f"collection {collection!r} has no token vectors: mode 'colbert' needs "
                           "a collection made with late_interaction=True (index its documents anew into one)")
        try:
            late = await self._late_interaction.get()
        except UnknownModel as exc:
            raise _Refused("model_unavailable", f"collection {collection!r}: {exc}") from None
        if late.dim != token_dim:
            raise _Refused("model_mismatch", str(VectorSizeMismatch(collection, token_dim, late.dim, late.model_id)))

    async def _encode_tokens(self, queries: list[str]) -> tuple[list[TokenVectors], float]:
        """The token vectors of mode colbert's queries (one batch), and the milliseconds it took."""
        if not queries:
            return [], 0.0
        began = time.perf_counter()
        late = await self._late_interaction.get()
        encoded = await asyncio.to_thread(late.encode_queries, queries)
        return encoded, (time.perf_counter() - began) * 1000

    def _refuse(self, record: RawRecord, code: ErrorCode, reason: str, request: SearchRequest | None,
                filed_as: DeadLetterReason | None) -> list[Outgoing]:
        return refusal(self._topics, record, code, reason, filed_as=filed_as, service=self._service,
                       served_by=self._served_by, request=request)

    async def _encode(self, queries: list[tuple[BiEncoder, str]]) -> tuple[list[Vector], float]:
        """A vector per (encoder, query), encoding only cache misses (once each, a batch per model), and the
        milliseconds it took."""
        began = time.perf_counter()
        encoders = {encoder.name: encoder for encoder, _ in queries}
        keys = [(encoder.name, query) for encoder, query in queries]
        found = {key: vector for key in set(keys) if (vector := self._cache.get(key)) is not None}
        for name, encoder in encoders.items():
            missing = sorted(query for model, query in set(keys) - set(found) if model == name)
            if missing:
                encoded = await asyncio.to_thread(encoder.encode_queries, missing)
                for query, vector in zip(missing, encoded, strict=True):
                    self._cache.put((name, query), vector)
                    found[name, query] = vector
        return [found[key] for key in keys], (time.perf_counter() - began) * 1000

    async def _retrieve(self, record: RawRecord, request: SearchRequest, collection: str, vector: Vector | None,
                        tokens: TokenVectors | None, picked_at: float, encode: Stage, bi_model: str) -> Outgoing:
        ann_started, began = now_ms(), time.perf_counter()
        if request.mode == "cross":
            assert vector is not None  # the contract gives mode cross the dense first stage
            size = await self._store.count(collection)
            limit = self._settings.batching.cross_max_documents
            if size > limit:
                raise _Refused("collection_too_large", f"mode 'cross' scores every document; {request.collection!r} "
                               f"holds {size}, more than the limit of {limit}: use mode 'rerank'", dead_letter=False)
            found = await self._store.search(collection, vector.tolist(), max(size, 1), request.filter, exact=True)
        elif tokens is not None:
            assert vector is not None  # the contract gives mode colbert the dense first stage
            found = await self._store.search(
                collection, vector.tolist(),
                request.candidates or max(request.k, self._settings.batching.colbert_candidates), request.filter,
                tokens=tokens.tolist())
        else:
            sparse = self._bm25.encode_query(request.query) if request.first_stage != "dense" else None
            found = await self._store.search(collection, vector.tolist() if vector is not None else None,
                                             request.candidates or max(request.k, self._candidates), request.filter,
                                             sparse=sparse)
        timings = StageTimings(query_queue_ms=max(picked_at - request.created_at_ms, 0.0),
                               encode_ms=encode.duration_ms, ann_ms=(time.perf_counter() - began) * 1000)
        answer = await self._answer(request, found, timings, bi_model, picked_at)
        trace = service_spans(context_of(record.headers), "cascade.query", picked_at, request.request_id,
                              queued=Stage("query.queue", request.created_at_ms, timings.query_queue_ms or 0.0),
                              stages=[encode, Stage("ann", ann_started, timings.ann_ms or 0.0)], mode=request.mode)
        return replace(answer, headers=trace)

    async def _answer(self, request: SearchRequest, found: list[ScoredDocument], timings: StageTimings,
                      bi_model: str, picked_at: float) -> Outgoing:
        if request.mode == "rerank":
            return Outgoing(self._topics.name(Topic.CANDIDATES), request.request_id,
                            self._candidate_set(request, found, timings, bi_model))
        if request.mode == "cross":
            return result_to(self._topics, await self._score_all(request, found, timings, bi_model, picked_at),
                             request.reply_to)
        top = found[: request.k]
        models = {"bi_encoder": bi_model}
        if request.mode == "colbert":
            models["late_interaction"] = (await self._late_interaction.get()).model_id
        result = shrink_to_fit(lambda budget: self._result(request, [
            as_hit(doc, doc.score, self._text_chars, budget) for doc in top], timings, **models),
            snippet_budget(len(top)))
        return result_to(self._topics, result, request.reply_to)

    @property
    def _text_chars(self) -> int:
        return self._settings.batching.candidate_text_chars

    def _candidate_set(self, request: SearchRequest, found: list[ScoredDocument], timings: StageTimings,
                       bi_model: str) -> CandidateSet:
        """The candidates with their snippets cut (in bytes) so the set fits one message; the reranker
        truncates to max_length tokens anyway, which the default cut (2,000 characters) exceeds at 256 tokens."""
        def build(budget: int) -> CandidateSet:
            candidates = []
            for doc in found:
                title, text = fit_snippet(doc.title, doc.text, self._text_chars, budget)
                candidates.append(Candidate(doc_id=doc.doc_id, title=title, text=text, score=doc.score))
            return CandidateSet(request=request, candidates=candidates, timings=timings, served_by=self._served_by,
                                models={"bi_encoder": bi_model})
        return shrink_to_fit(build, snippet_budget(len(found)))

    async def _score_all(self, request: SearchRequest, found: list[ScoredDocument], timings: StageTimings,
                         bi_model: str, picked_at: float) -> SearchResult:
        if self._cross is None:
            raise _Refused("invalid_request", "mode 'cross' needs a cross-encoder: set CASCADE_MODELS_CROSS_ENCODER",
                           dead_letter=False)
        work_until = min(request.deadline_ms or float("inf"), picked_at + self._settings.batching.max_work_s * 1000)
        try:  # the consumer waits for this batch: never longer than the deadline (the scoring is then abandoned)
            async with asyncio.timeout(max(work_until - now_ms(), 0.0) / 1000):
                outcome = await self._cross.score(request.query, [document_text(doc.title, doc.text) for doc in found])
        except TimeoutError:
            named = "its deadline" if request.deadline_ms == work_until else "the max_work_s of its batch"
            raise _Refused("deadline_exceeded", f"mode 'cross' on {len(found)} documents ran past {named}: "
                           "use mode 'rerank', or a longer deadline", dead_letter=False) from None
        cross_timings = with_rerank_timings(timings, outcome, outcome.queue_ms)
        model = self._cross.encoder.model_id
        return shrink_to_fit(lambda budget: self._result(
            request, ranked_hits(found, outcome.scores, request.k, self._text_chars, budget), cross_timings,
            bi_encoder=bi_model, cross_encoder=model), snippet_budget(min(request.k, len(found))))

    def _result(self, request: SearchRequest, hits: list[Hit], timings: StageTimings, **models: str) -> SearchResult:
        return ranked_result(request, hits, timings, self._served_by, dict(models))
