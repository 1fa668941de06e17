"""Ranking metrics through ranx (an established implementation), plus first-stage recall against exact search.

Relevance is a qrels score >= 1; graded scores (Cranfield: 1-4) are gains for nDCG, as in BEIR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ranx import Qrels, Run, evaluate

__all__ = ["METRICS", "Ranking", "overlap_recall", "ranking_metrics"]

METRICS = ("mrr@10", "ndcg@10", "recall@10", "recall@100")

Ranking = Mapping[str, Sequence[tuple[str, float]]]
"""Query id -> (doc id, score) pairs, best first."""


def ranking_metrics(qrels: Mapping[str, Mapping[str, int]], ranking: Ranking) -> dict[str, float]:
    """Mean of each metric over every judged query; a query with no answer scores 0."""
    judged = {query: {doc: score for doc, score in docs.items() if score >= 1} for query, docs in qrels.items()}
    judged = {query: docs for query, docs in judged.items() if docs}
    run = {query: {doc: float(len(hits) - rank) for rank, (doc, _) in enumerate(hits)}
           for query, hits in ranking.items() if query in judged and hits}
    for query in judged.keys() - run.keys():
        run[query] = {"__no_result__": 0.0}
    scores = evaluate(Qrels(judged), Run(run), list(METRICS), make_comparable=True)
    return {metric: float(scores[metric]) for metric in METRICS}


def overlap_recall(found: Mapping[str, Sequence[str]], exact: Mapping[str, Sequence[str]]) -> float:
    """Mean |found ∩ exact| / |exact| per query: how much of exact search's top-k the ANN index returned."""
    ratios = [len(set(found.get(query, ())) & set(ids)) / len(ids) for query, ids in exact.items() if ids]
    return sum(ratios) / len(ratios) if ratios else 0.0
