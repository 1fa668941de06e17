"""What the reranker does to a batch of candidate sets: score every pair with the cross-encoder, rank, answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import structlog

from contracts import CandidateSet, ContractError, SearchResult, decode, now_ms
from contracts.messages import ErrorCode
from services.encoders import RerankBatcher, RerankOutcome, document_text
from services.messaging import Outgoing, RawRecord
from services.ranking import ranked_hits, with_rerank_timings
from services.replies import error_result, refusal, result_to
from services.reranker.fusion import configured_fusion_weight, fused_scores
from services.settings import Settings

__all__ = ["RerankProcessor"]

log = structlog.get_logger(__name__)


class RerankProcessor:
    def __init__(self, settings: Settings, batcher: RerankBatcher) -> None:
        self._topics = settings.kafka.topics
        self._batcher = batcher
        self.fusion_weight = configured_fusion_weight(settings.models.fusion_weight, batcher.encoder.model_id)
        self._instance = settings.instance_name
        self._service = f"reranker@{settings.instance_name}"

    async def process(self, records: Sequence[RawRecord]) -> list[Outgoing]:
        out: list[Outgoing] = []
        sets: list[CandidateSet] = []
        for record in records:
            try:
                sets.append(decode(record.value, CandidateSet))
            except ContractError as exc:
                out += refusal(self._topics, record, "invalid_request", str(exc), service=self._service,
                               served_by={"reranker": self._instance}, path=("request",))
        live: list[CandidateSet] = []
        for candidates in sets:
            if self._expired(candidates):
                out.append(self._deadline_error(candidates))
            else:
                live.append(candidates)
        outcomes = await asyncio.gather(*(
            self._batcher.score(candidates.request.query,
                                [document_text(c.title, c.text) for c in candidates.candidates])
            for candidates in live
        ), return_exceptions=True)
        for candidates, outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.error("rerank.failed", request_id=candidates.request.request_id, error=repr(outcome))
                out.append(self._error(candidates, "internal", f"reranking failed: {outcome!r}"))
            elif self._expired(candidates):
                out.append(self._deadline_error(candidates))
            else:
                out.append(result_to(self._topics, self._ranked(candidates, outcome), candidates.request.reply_to))
        return out

    @staticmethod
    def _expired(candidates: CandidateSet) -> bool:
        deadline = candidates.request.deadline_ms
        return deadline is not None and now_ms() > deadline

    def _error(self, candidates: CandidateSet, code: ErrorCode, message: str) -> Outgoing:
        served_by = {**candidates.served_by, "reranker": self._instance}
        return result_to(self._topics, error_result(candidates.request.request_id, code, message, served_by),
                         candidates.request.reply_to)

    def _deadline_error(self, candidates: CandidateSet) -> Outgoing:
        late = now_ms() - (candidates.request.deadline_ms or 0.0)
        return self._error(candidates, "deadline_exceeded", f"the deadline passed {late:.0f} ms before reranking ended")

    def _ranked(self, candidates: CandidateSet, outcome: RerankOutcome) -> SearchResult:
        request = candidates.request
        first_stage = np.array([candidate.score for candidate in candidates.candidates], dtype=np.float32)
        scores = fused_scores(outcome.scores, first_stage, self.fusion_weight)
        timings = with_rerank_timings(candidates.timings, outcome,
                                      queue_ms=now_ms() - candidates.published_at_ms - outcome.compute_ms)
        return SearchResult(
            request_id=request.request_id, collection=request.collection, mode=request.mode,
            hits=ranked_hits(candidates.candidates, scores, request.k),
            timings=timings.model_copy(update={"total_ms": now_ms() - request.created_at_ms}),
            served_by={**candidates.served_by, "reranker": self._instance},
            models={**candidates.models, "cross_encoder": self._batcher.encoder.model_id},
        )
