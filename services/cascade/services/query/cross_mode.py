"""Mode cross: the query service scores every document of a small collection with the cross-encoder itself
(exact, no first stage to miss anything), within the request's deadline."""

from __future__ import annotations

import asyncio

from cascade.contracts import Passages, SearchRequest, SearchResult, StageTimings, now_ms
from cascade.services.answers import ranked_result
from cascade.services.encoders import RerankBatcher
from cascade.services.query.admission import Refused
from cascade.services.ranking import CrossScores, ranked_hits, scored_documents, uncalibrated, with_rerank_timings
from cascade.services.settings import Settings
from cascade.services.sizing import shrink_to_fit, snippet_budget
from cascade.services.store import ScoredDocument, VectorStore

__all__ = ["CrossScorer"]


class CrossScorer:
    def __init__(self, settings: Settings, store: VectorStore, cross: RerankBatcher | None,
                 served_by: dict[str, str]) -> None:
        self._batching = settings.batching
        self._store = store
        self._cross = cross
        self._served_by = served_by

    async def size_of(self, request: SearchRequest, collection: str) -> int:
        """The documents mode cross will score: the whole collection, refused over the limit."""
        size = await self._store.count(collection)
        limit = self._batching.cross_max_documents
        if size > limit:
            raise Refused("collection_too_large", f"mode 'cross' scores every document; {request.collection!r} "
                          f"holds {size}, more than the limit of {limit}: use mode 'rerank'", dead_letter=False)
        return size

    async def score_all(self, request: SearchRequest, found: list[ScoredDocument], timings: StageTimings,
                        bi_model: str, picked_at: float, passages: Passages | None) -> SearchResult:
        """`passages`: how the collection splits documents, if it does (each is then scored by its best one)."""
        if self._cross is None:
            raise Refused("invalid_request", "mode 'cross' needs a cross-encoder: set CASCADE_MODELS_CROSS_ENCODER",
                          dead_letter=False)
        if reason := uncalibrated(request, self._cross.encoder.calibration, self._cross.encoder.model_id):
            raise Refused("invalid_request", reason, dead_letter=False)
        work_until = min(request.deadline_ms or float("inf"), picked_at + self._batching.max_work_s * 1000)
        try:  # the consumer waits for this batch: never longer than the deadline (the scoring is then abandoned)
            async with asyncio.timeout(max(work_until - now_ms(), 0.0) / 1000):
                outcome = await scored_documents(self._cross.score, request.query,
                                                 [(doc.title, doc.text) for doc in found],
                                                 passages)
        except TimeoutError:
            named = "its deadline" if request.deadline_ms == work_until else "the max_work_s of its batch"
            raise Refused("deadline_exceeded", f"mode 'cross' on {len(found)} documents ran past {named}: "
                          "use mode 'rerank', or a longer deadline", dead_letter=False) from None
        cross_timings = with_rerank_timings(timings, outcome, outcome.queue_ms)
        models = {"bi_encoder": bi_model, "cross_encoder": self._cross.encoder.model_id}
        text_chars = self._batching.candidate_text_chars
        cross = CrossScores.of(outcome.scores, self._cross.encoder.calibration)
        return shrink_to_fit(lambda budget: ranked_result(
            request, ranked_hits(found, outcome.scores, request.k, text_chars, budget, cross, request.min_probability),
            cross_timings, self._served_by, models), snippet_budget(min(request.k, len(found))))
