"""Turning second-stage scores into a result's hits and timings (shared by the reranker and mode `cross`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from contracts import Hit, StageTimings
from services.encoders import RerankOutcome

__all__ = ["Rankable", "ranked_hits", "with_rerank_timings"]


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


def ranked_hits(
    candidates: Sequence[Rankable], scores: npt.NDArray[np.float32], k: int, text_chars: int | None = None
) -> list[Hit]:
    """The top `k` candidates by `scores` (stable on ties), keeping each one's first-stage score."""
    order = np.argsort(-scores, kind="stable")[:k]
    return [Hit(doc_id=candidates[i].doc_id, score=float(scores[i]), first_stage_score=candidates[i].score,
                title=candidates[i].title, text=candidates[i].text[:text_chars]) for i in order]


def with_rerank_timings(timings: StageTimings, outcome: RerankOutcome, queue_ms: float) -> StageTimings:
    return timings.model_copy(update={
        "rerank_queue_ms": queue_ms, "rerank_ms": outcome.compute_ms, "rerank_batch_pairs": outcome.batch_pairs,
        "rerank_padded_tokens": outcome.padded_tokens})
