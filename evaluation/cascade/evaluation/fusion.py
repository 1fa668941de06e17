"""Choosing the fusion weight on dev data: the share of the first-stage score in the final ranking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cascade.evaluation.metrics import ranking_metrics
from cascade.services.reranker.fusion import fused_scores

__all__ = ["WEIGHTS", "best_fusion_weight", "fuse"]

WEIGHTS = tuple(round(w, 2) for w in np.arange(0.0, 1.01, 0.1))
RankingLists = Mapping[str, Sequence[tuple[str, float]]]


def fuse(first: RankingLists, reranked: RankingLists, weight: float) -> dict[str, list[tuple[str, float]]]:
    """Per query, the reranked candidates ordered by the fused score (both lists hold the same candidates)."""
    fused = {}
    for query, hits in reranked.items():
        first_by_doc = dict(first[query])
        cross = np.array([score for _, score in hits], dtype=np.float32)
        bi = np.array([first_by_doc[doc] for doc, _ in hits], dtype=np.float32)
        scores = fused_scores(cross, bi, weight)
        fused[query] = sorted(((doc, float(s)) for (doc, _), s in zip(hits, scores, strict=True)),
                              key=lambda hit: -hit[1])
    return fused


def best_fusion_weight(qrels: Mapping[str, Mapping[str, int]], first: RankingLists, reranked: RankingLists,
                       metric: str = "mrr@10") -> tuple[float, float]:
    """(weight, its metric) maximising `metric`; ties go to the smaller first-stage share."""
    scored = [(ranking_metrics(qrels, fuse(first, reranked, weight))[metric], -weight) for weight in WEIGHTS]
    value, negative_weight = max(scored)
    return -negative_weight, value
