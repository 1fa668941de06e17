"""Turning second-stage scores into a result's hits and timings (shared by the reranker and mode `cross`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from cascade.contracts import Hit, StageTimings
from cascade.services.encoders import RerankOutcome
from cascade.services.sizing import fit_snippet

__all__ = ["Rankable", "as_hit", "ranked_hits", "with_rerank_timings"]


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
    candidates: Sequence[Rankable], scores: npt.NDArray[np.float32], k: int, max_chars: int, max_bytes: int
) -> list[Hit]:
    """The top `k` candidates by `scores` (stable on ties), keeping each one's first-stage score; snippets
    cut to `max_chars` characters and `max_bytes` bytes each."""
    order = np.argsort(-scores, kind="stable")[:k]
    return [as_hit(candidates[i], float(scores[i]), max_chars, max_bytes) for i in order]


def as_hit(candidate: Rankable, score: float, max_chars: int, max_bytes: int) -> Hit:
    title, text = fit_snippet(candidate.title, candidate.text, max_chars, max_bytes)
    return Hit(doc_id=candidate.doc_id, score=score, first_stage_score=candidate.score, title=title, text=text)


def with_rerank_timings(timings: StageTimings, outcome: RerankOutcome, queue_ms: float) -> StageTimings:
    return timings.model_copy(update={
        "rerank_queue_ms": queue_ms, "rerank_ms": outcome.compute_ms, "rerank_batch_pairs": outcome.batch_pairs,
        "rerank_padded_tokens": outcome.padded_tokens})
