"""What the query service does to a batch of search requests: validate, encode, retrieve, route by mode.

`bi` answers from the first stage; `rerank` hands a CandidateSet to the reranker; `cross` scores a whole
(small) collection with the cross-encoder here; `colbert` has the store rescore the first stage's candidates by
MaxSim of token vectors. Every request that can be identified gets an answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial

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
    TopicRegistry,
    decode,
    now_ms,
)
from cascade.contracts.limits import MAX_TEXT_CHARS
from cascade.contracts.messages import DeadLetterReason, ErrorCode, FirstStage, Passages
from cascade.contracts.trace_context import context_of
from cascade.services.answers import ranked_result, refusal, result_to, undeliverable
from cascade.services.encoders import BiEncoders, LateInteractionLoader, RerankBatcher
from cascade.services.encoders.device import resolve_device
from cascade.services.encoders.late_interaction import TokenVectors
from cascade.services.encoders.sparse import Bm25Encoder
from cascade.services.faults import is_transient
from cascade.services.messaging import RawRecord
from cascade.services.publishing import Outgoing
from cascade.services.query.admission import Admission, Admitted, Refused
from cascade.services.query.cross_mode import CrossScorer
from cascade.services.query.encoding import QueryEncoder, QueryVectorCache, Vector
from cascade.services.ranking import as_hit
from cascade.services.settings import Settings
from cascade.services.sizing import fit_snippet, shrink_to_fit, snippet_budget
from cascade.services.stage_spans import Stage, service_spans
from cascade.services.store import FieldNotFilterable, ScoredDocument, VectorStore
from cascade.services.tenancy import tenant_topics

__all__ = ["QueryProcessor"]


def _first_stage_label(first_stage: FirstStage, model_id: str) -> str:
    """What found the candidates, as results name it under `models["bi_encoder"]`."""
    return {"dense": model_id, "sparse": "bm25", "hybrid": f"{model_id} + bm25 (rrf)"}[first_stage]


class QueryProcessor:
    def __init__(
        self, settings: Settings, store: VectorStore, encoders: BiEncoders, late_interaction: LateInteractionLoader,
        cache: QueryVectorCache, cross: RerankBatcher | None, reranker_backlog: Callable[[], int] = lambda: 0,
    ) -> None:
        self._settings = settings
        self._topics = settings.kafka.topics
        self._store = store
        self._late_interaction = late_interaction
        self._bm25 = Bm25Encoder()
        self._served_by = {"query": settings.instance_name}
        self._candidates = settings.batching.default_candidates(resolve_device(settings.models.device)[0].type)
        self._service = f"query@{settings.instance_name}"
        self._admission = Admission(settings, store, encoders, late_interaction, reranker_backlog)
        self._encoder = QueryEncoder(cache, late_interaction)
        self._cross = CrossScorer(settings, store, cross, self._served_by)

    async def process(self, records: Sequence[RawRecord]) -> list[Outgoing]:
        picked_at = now_ms()
        out: list[Outgoing] = []
        accepted: list[tuple[RawRecord, SearchRequest, Admitted]] = []
        for record in records:
            try:
                request = decode(record.value, SearchRequest)
                admitted = await self._admission.admit(request, picked_at, tenant_topics(self._topics, record))
            except ContractError as exc:
                out += self._refuse(record, "invalid_request", str(exc), None, exc.reason)
            except Refused as exc:
                out += self._refuse(record, exc.code, str(exc), request, exc.filed_as)
            else:
                accepted.append((record, request, admitted))
        if not accepted:
            return out
        encode_started = now_ms()
        dense = [(admitted.encoder, request.query) for _, request, admitted in accepted
                 if request.first_stage != "sparse"]
        encoded, encode_ms = await self._encoder.vectors(dense)
        tokens, tokens_ms = await self._encoder.tokens([request.query for _, request, _ in accepted
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
                except Refused as exc:
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
        return undeliverable(tenant_topics(self._topics, record), record, error, service=self._service,
                             served_by=self._served_by, request=request)

    def _refuse(self, record: RawRecord, code: ErrorCode, reason: str, request: SearchRequest | None,
                filed_as: DeadLetterReason | None) -> list[Outgoing]:
        return refusal(tenant_topics(self._topics, record), record, code, reason, filed_as=filed_as,
                       service=self._service, served_by=self._served_by, request=request)

    async def _retrieve(self, record: RawRecord, request: SearchRequest, collection: str, vector: Vector | None,
                        tokens: TokenVectors | None, picked_at: float, encode: Stage, bi_model: str) -> Outgoing:
        ann_started, began = now_ms(), time.perf_counter()
        if request.mode == "cross":
            assert vector is not None  # the contract gives mode cross the dense first stage
            size = await self._cross.size_of(request, collection)
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
        passages = await self._store.passages(collection) if request.mode in ("rerank", "cross") else None
        answer = await self._answer(tenant_topics(self._topics, record), request, found, timings, bi_model,
                                    picked_at, passages)
        trace = service_spans(context_of(record.headers), "cascade.query", picked_at, request.request_id,
                              queued=Stage("query.queue", request.created_at_ms, timings.query_queue_ms or 0.0),
                              stages=[encode, Stage("ann", ann_started, timings.ann_ms or 0.0)], mode=request.mode)
        return replace(answer, headers=trace)

    async def _answer(self, topics: TopicRegistry, request: SearchRequest, found: list[ScoredDocument],
                      timings: StageTimings, bi_model: str, picked_at: float, passages: Passages | None) -> Outgoing:
        """The result for the requester (in the namespace of `topics`), or the candidate set to rerank."""
        if request.mode == "rerank":
            lane = Topic.CANDIDATES if request.lane == "interactive" else Topic.CANDIDATES_BULK
            return Outgoing(topics.name(lane), request.request_id,
                            self._candidate_set(topics.tenant, request, found, timings, bi_model, passages))
        if request.mode == "cross":
            return result_to(topics, await self._cross.score_all(request, found, timings, bi_model, picked_at,
                                                                 passages), request)
        top = found[: request.k]
        models = {"bi_encoder": bi_model}
        if request.mode == "colbert":
            models["late_interaction"] = (await self._late_interaction.get()).model_id
        result = shrink_to_fit(lambda budget: self._result(request, [
            as_hit(doc, doc.score, self._text_chars, budget) for doc in top], timings, **models),
            snippet_budget(len(top)))
        return result_to(topics, result, request)

    @property
    def _text_chars(self) -> int:
        return self._settings.batching.candidate_text_chars

    def _candidate_set(self, tenant: str, request: SearchRequest, found: list[ScoredDocument],
                       timings: StageTimings, bi_model: str, passages: Passages | None) -> CandidateSet:
        """The candidates with their snippets cut (in bytes) so the set fits one message; the reranker
        truncates to max_length tokens anyway, which the default cut (2,000 characters) exceeds at 256 tokens.
        From a collection of passages, whole texts (the reranker scores every passage), within the message."""
        chars = MAX_TEXT_CHARS if passages is not None else self._text_chars

        def build(budget: int) -> CandidateSet:
            candidates = []
            for doc in found:
                title, text = fit_snippet(doc.title, doc.text, chars, budget)
                candidates.append(Candidate(doc_id=doc.doc_id, title=title, text=text, score=doc.score))
            return CandidateSet(request=request, tenant=tenant, candidates=candidates, timings=timings,
                                served_by=self._served_by, models={"bi_encoder": bi_model}, passages=passages)
        return shrink_to_fit(build, snippet_budget(len(found)))

    def _result(self, request: SearchRequest, hits: list[Hit], timings: StageTimings, **models: str) -> SearchResult:
        return ranked_result(request, hits, timings, self._served_by, dict(models))
