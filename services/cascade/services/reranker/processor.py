"""What the reranker does to a batch of candidate sets: score every pair with the cross-encoder, rank, answer."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

import numpy as np
import structlog

from cascade.contracts import (
    CandidateSet,
    ContractError,
    SearchResult,
    Topic,
    TopicRegistry,
    decode,
    elapsed_ms,
    now_ms,
)
from cascade.contracts.messages import DeadLetterReason, ErrorCode
from cascade.contracts.trace_context import context_of
from cascade.services.answers import error_result, ranked_result, refusal, result_to, undeliverable
from cascade.services.encoders import RerankBatcher, RerankOutcome
from cascade.services.faults import is_transient
from cascade.services.lru import LruCache
from cascade.services.messaging import RawRecord, dead_letter
from cascade.services.publishing import Outgoing
from cascade.services.ranking import CrossScores, ranked_hits, scored_documents, uncalibrated, with_rerank_timings
from cascade.services.reranker.fusion import configured_fusion_weight, fused_scores
from cascade.services.settings import Settings
from cascade.services.sizing import shrink_to_fit, snippet_budget
from cascade.services.stage_spans import Stage, service_spans
from cascade.services.tenancy import salvaged_tenant

__all__ = ["RerankProcessor"]

log = structlog.get_logger(__name__)


class RerankProcessor:
    def __init__(self, settings: Settings, batcher: RerankBatcher) -> None:
        self._topics = settings.kafka.topics
        self._batcher = batcher
        self.fusion_weight = configured_fusion_weight(settings.models.fusion_weight, batcher.encoder.model_id)
        self._instance = settings.instance_name
        self._text_chars = settings.batching.candidate_text_chars
        self._service = f"reranker@{settings.instance_name}"
        self.score_cache: LruCache[bytes, float] = LruCache(settings.batching.score_cache_size)
        """Scores by (model, query, document text) digest."""

    async def process(self, records: Sequence[RawRecord]) -> list[Outgoing]:
        picked_at = now_ms()
        out: list[Outgoing] = []
        live: list[tuple[RawRecord, CandidateSet]] = []
        for record in records:
            try:
                candidates = decode(record.value, CandidateSet)
            except ContractError as exc:
                out += self._refuse(record, "invalid_request", str(exc), exc.reason)
                continue
            encoder = self._batcher.encoder
            if self._expired(candidates):
                out.append(self._deadline_error(candidates))
            elif reason := uncalibrated(candidates.request, encoder.calibration, encoder.model_id):
                out.append(self._error(candidates, "invalid_request", reason))
            else:
                live.append((record, candidates))
        outcomes = await asyncio.gather(*(self._score_set(candidates) for _, candidates in live),
                                        return_exceptions=True)
        for (record, candidates), outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if is_transient(outcome) or not isinstance(outcome, Exception):
                    raise outcome
                log.error("rerank.failed", request_id=candidates.request.request_id, error=repr(outcome))
                out += self._refuse(record, "internal", f"reranking failed: {type(outcome).__name__}: {outcome}",
                                    "processing_failed", candidates)
            elif self._expired(candidates):
                out.append(self._deadline_error(candidates))
            else:
                result = result_to(self._topics.for_tenant(candidates.tenant), self._ranked(candidates, outcome),
                                   candidates.request)
                out.append(replace(result, instead=partial(self._undeliverable, record, candidates),
                                   headers=self._spans(record, candidates, picked_at, outcome)))
        return out

    async def _score_set(self, candidates: CandidateSet) -> RerankOutcome:
        return await scored_documents(self._score, candidates.request.query,
                                      [(candidate.title, candidate.text) for candidate in candidates.candidates],
                                      candidates.passages)

    async def _score(self, query: str, texts: list[str]) -> RerankOutcome:
        """The cross-encoder's scores of the pairs not in the score cache, the cache's for the others."""
        keys = [self._pair_key(query, text) for text in texts]
        scores = [self.score_cache.get(key) for key in keys]
        missing = [i for i, score in enumerate(scores) if score is None]
        if not missing:
            return RerankOutcome(np.array(scores, dtype=np.float32), queue_ms=0.0, compute_ms=0.0, batch_pairs=0,
                                 padded_tokens=0, finished_ms=now_ms())
        outcome = await self._batcher.score(query, [texts[i] for i in missing])
        for i, score in zip(missing, outcome.scores.tolist(), strict=True):
            scores[i] = score
            self.score_cache.put(keys[i], score)
        return replace(outcome, scores=np.array(scores, dtype=np.float32))

    def _pair_key(self, query: str, text: str) -> bytes:
        digest = hashlib.blake2b(digest_size=16)
        for part in (self._batcher.encoder.model_id, query, text):
            encoded = part.encode()
            digest.update(len(encoded).to_bytes(8, "big"))  # lengths first: no two pairs join to the same bytes
            digest.update(encoded)
        return digest.digest()

    def refuse(self, record: RawRecord, reason: str) -> list[Outgoing]:
        """For a record whose processing failed on its own (see cascade.services.consumers)."""
        return self._refuse(record, "internal", reason, "processing_failed")

    def _tenant_topics(self, record: RawRecord, candidates: CandidateSet | None) -> TopicRegistry | None:
        """Where the requester of `candidates` (or of the record, if the tenant it names can be read) waits."""
        tenant = candidates.tenant if candidates is not None else salvaged_tenant(record)
        return None if tenant is None else self._topics.for_tenant(tenant)

    def _refuse(self, record: RawRecord, code: ErrorCode, reason: str, filed_as: DeadLetterReason,
                candidates: CandidateSet | None = None) -> list[Outgoing]:
        """A dead letter, and an error answer where the requester's tenant is known (never a guess: an answer in
        another tenant's namespace would show it the request)."""
        topics = self._tenant_topics(record, candidates)
        if topics is None:
            letter = dead_letter(record, filed_as, reason, self._service)
            return [Outgoing(self._topics.name(Topic.DLQ), record.key_text, letter)]
        return refusal(topics, record, code, reason, filed_as=filed_as, service=self._service,
                       served_by={"reranker": self._instance},
                       request=candidates.request if candidates is not None else None, path=("request",))

    def _undeliverable(self, record: RawRecord, candidates: CandidateSet, error: BaseException) -> list[Outgoing]:
        return undeliverable(self._topics.for_tenant(candidates.tenant), record, error, service=self._service,
                             served_by={"reranker": self._instance}, request=candidates.request, path=("request",))

    @staticmethod
    def _spans(record: RawRecord, candidates: CandidateSet, picked_at: float, outcome: RerankOutcome
               ) -> dict[str, str]:
        compute_started = outcome.finished_ms - outcome.compute_ms
        return service_spans(
            context_of(record.headers), "cascade.rerank", picked_at, candidates.request.request_id,
            queued=Stage("rerank.queue", candidates.published_at_ms, compute_started - candidates.published_at_ms),
            stages=[Stage("rerank.compute", compute_started, outcome.compute_ms)],
            candidates=len(candidates.candidates), batch_pairs=outcome.batch_pairs)

    @staticmethod
    def _expired(candidates: CandidateSet) -> bool:
        deadline = candidates.request.deadline_ms
        return deadline is not None and now_ms() > deadline

    def _error(self, candidates: CandidateSet, code: ErrorCode, message: str) -> Outgoing:
        served_by = {**candidates.served_by, "reranker": self._instance}
        return result_to(self._topics.for_tenant(candidates.tenant),
                         error_result(candidates.request.request_id, code, message, served_by), candidates.request)

    def _deadline_error(self, candidates: CandidateSet) -> Outgoing:
        late = now_ms() - (candidates.request.deadline_ms or 0.0)
        return self._error(candidates, "deadline_exceeded", f"the deadline passed {late:.0f} ms before reranking ended")

    def _ranked(self, candidates: CandidateSet, outcome: RerankOutcome) -> SearchResult:
        request = candidates.request
        first_stage = np.array([candidate.score for candidate in candidates.candidates], dtype=np.float32)
        scores = fused_scores(outcome.scores, first_stage, self.fusion_weight)
        cross = CrossScores.of(outcome.scores, self._batcher.encoder.calibration)
        timings = with_rerank_timings(candidates.timings, outcome,
                                      queue_ms=max(elapsed_ms(candidates.published_at_ms) - outcome.compute_ms, 0.0))
        served_by = {**candidates.served_by, "reranker": self._instance}
        models = {**candidates.models, "cross_encoder": self._batcher.encoder.model_id,
                  **({"fusion_weight": f"{self.fusion_weight:g}"} if self.fusion_weight else {})}

        def build(budget: int) -> SearchResult:
            hits = ranked_hits(candidates.candidates, scores, request.k, self._text_chars, budget, cross,
                               request.min_probability)
            return ranked_result(request, hits, timings, served_by, models)
        return shrink_to_fit(build, snippet_budget(min(request.k, len(candidates.candidates))))
