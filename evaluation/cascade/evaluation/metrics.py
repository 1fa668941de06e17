"""Ranking metrics through ranx (an established implementation), plus first-stage recall against exact search.

Relevance is a qrels score >= 1; graded scores (Cranfield: 1-4) are gains for nDCG, as in BEIR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ranx import Qrels, Run, evaluate

__all__ = ["METRICS", "Ranking", "overlap_recall", "per_query", "ranking_metrics", "ranx_inputs"]

METRICS = ("mrr@10", "ndcg@10", "recall@10", "recall@100")

Ranking = Mapping[str, Sequence[tuple[str, float]]]
"""Query id -> (doc id, score) pairs, best first."""


def ranx_inputs(qrels: Mapping[str, Mapping[str, int]], ranking: Ranking, name: str | None = None
                ) -> tuple[Qrels, Run]:
    """The judged queries (relevance >= 1), sorted, and the ranking of each (nothing found: a placeholder that
    scores 0), in the same order."""
    judged = {query: {doc: score for doc, score in docs.items() if score >= 1} for query, docs in sorted(qrels.items())}
    judged = {query: docs for query, docs in judged.items() if docs}
    return Qrels(judged), Run({query: _scored(ranking.get(query, ())) for query in judged}, name=name)


def _scored(hits: Sequence[tuple[str, float]]) -> dict[str, float]:
    """ranx scores that keep the ranking's order."""
    return {doc: float(len(hits) - rank) for rank, (doc, _) in enumerate(hits)} or {"__no_result__": 0.0}


def ranking_metrics(qrels: Mapping[str, Mapping[str, int]], ranking: Ranking) -> dict[str, float]:
    """Mean of each metric over every judged query; a query with no answer scores 0."""
    scores = evaluate(*ranx_inputs(qrels, ranking), list(METRICS), make_comparable=True)
    return {metric: float(scores[metric]) for metric in METRICS}


def per_query(qrels: Mapping[str, Mapping[str, int]], ranking: Ranking, metric: str) -> dict[str, float]:
    """`metric` of each judged query (0 where the ranking has nothing for it), for significance tests."""
    judged, run = ranx_inputs(qrels, ranking)
    scores = evaluate(judged, run, metric, return_mean=False)
    return {query: float(score) for query, score in zip(judged.keys(), scores, strict=True)}


def overlap_recall(found: Mapping[str, Sequence[str]], exact: Mapping[str, Sequence[str]]) -> float:
    """Mean |found ∩ exact| / |exact| per query: how much of exact search's top-k the ANN index returned."""
    ratios = [len(set(found.get(query, ())) & set(ids)) / len(ids) for query, ids in exact.items() if ids]
    return sum(ratios) / len(ratios) if ratios else 0.0
