"""Turning second-stage scores into a result's hits and timings (shared by the reranker and mode `cross`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from cascade.contracts import Hit, Passages, SearchRequest, StageTimings
from cascade.services.encoders import Calibration, RerankOutcome, document_text
from cascade.services.encoders.text import Titled, split_all
from cascade.services.sizing import fit_snippet

__all__ = ["CrossScores", "Rankable", "as_hit", "ranked_hits", "scored_documents", "uncalibrated",
           "with_rerank_timings"]


class Rankable(Protocol):
    """A first-stage candidate: a Candidate from the wire or a ScoredDocument from the store."""

    @property
    def doc_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def score(self) -> float: ...


@dataclass(frozen=True)
class CrossScores:
    """A cross-encoder's raw scores of a candidate set and, where the model is calibrated, their probabilities."""

    raw: npt.NDArray[np.float32]
    probabilities: npt.NDArray[np.float32] | None

    @classmethod
    def of(cls, raw: npt.NDArray[np.float32], calibration: Calibration | None) -> CrossScores:
        return cls(raw, calibration.probabilities(raw) if calibration is not None else None)


def uncalibrated(request: SearchRequest, calibration: Calibration | None, model_id: str) -> str | None:
    """Why `request` cannot be answered by this cross-encoder: it sets min_probability and the model has no
    calibration; None when it can."""
    if request.min_probability is None or calibration is not None:
        return None
    return (f"min_probability needs a calibrated cross-encoder; {model_id} ships no calibration "
            "(scripts/calibrate_reranker.py fits one)")


def ranked_hits(
    candidates: Sequence[Rankable], scores: npt.NDArray[np.float32], k: int, max_chars: int, max_bytes: int,
    cross: CrossScores | None = None, min_probability: float | None = None,
) -> list[Hit]:
    """The top `k` candidates by `scores` (stable on ties) whose probability is at least `min_probability`,
    keeping each one's first-stage score and cross-encoder scores; snippets cut to `max_chars` characters and
    `max_bytes` bytes each."""
    order = np.argsort(-scores, kind="stable")
    probabilities = cross.probabilities if cross is not None else None
    if min_probability is not None:
        assert probabilities is not None, "refused before scoring: see `uncalibrated`"
        order = order[probabilities[order] >= min_probability]
    return [as_hit(candidates[i], float(scores[i]), max_chars, max_bytes,
                   rerank_score=float(cross.raw[i]) if cross is not None else None,
                   probability=float(probabilities[i]) if probabilities is not None else None)
            for i in order[:k]]


def as_hit(candidate: Rankable, score: float, max_chars: int, max_bytes: int, rerank_score: float | None = None,
           probability: float | None = None) -> Hit:
    title, text = fit_snippet(candidate.title, candidate.text, max_chars, max_bytes)
    return Hit(doc_id=candidate.doc_id, score=score, first_stage_score=candidate.score, rerank_score=rerank_score,
               probability=probability, title=title, text=text)


async def scored_documents(score: Callable[[str, list[str]], Awaitable[RerankOutcome]], query: str,
                           documents: Sequence[Titled], passages: Passages | None) -> RerankOutcome:
    """The cross-encoder's score of each document (title, text): of its text, or with `passages` (a collection
    of passages), of its best passage."""
    if passages is None or not documents:
        return await score(query, [document_text(title, text) for title, text in documents])
    texts, starts = split_all(passages, documents)
    outcome = await score(query, texts)
    return replace(outcome, scores=np.maximum.reduceat(outcome.scores, starts))


def with_rerank_timings(timings: StageTimings, outcome: RerankOutcome, queue_ms: float) -> StageTimings:
    return timings.model_copy(update={
        "rerank_queue_ms": queue_ms, "rerank_ms": outcome.compute_ms, "rerank_batch_pairs": outcome.batch_pairs,
        "rerank_padded_tokens": outcome.padded_tokens})
