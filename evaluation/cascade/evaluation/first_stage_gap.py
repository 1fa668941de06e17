"""How much of the cascade's lead a distilled first stage recovers, on test splits the training never read.

Per split: the base bi-encoder and the student search the whole corpus exactly (brute force, so the index plays
no part); the teacher is the cascade as served: the base's top `candidates` reranked and fused with the base's
scores at the reranker's weight. Gap recovered = (student - base) / (teacher - base).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cascade.evaluation.beir import BeirSplit, corpus_vectors, exact_top_k, load_split
from cascade.evaluation.metrics import Ranking, ranking_metrics
from cascade.services.encoders import BiEncoder, CrossEncoder
from cascade.services.reranker.fusion import fused_scores

__all__ = ["gap_recovered", "measure_gap"]

DEPTH = 100


def _search(encoder: BiEncoder, split: BeirSplit) -> Ranking:
    ids = list(split.queries)
    queries = encoder.encode_queries([split.queries[query] for query in ids])
    vectors = corpus_vectors(split, encoder)
    top = exact_top_k(queries, vectors, DEPTH)
    # scores of the top rows only: the full query x corpus product is exact_top_k's, not repeated here
    return {query: [(split.corpus[int(row)]["doc_id"], float(vectors[row] @ queries[i])) for row in top[i]]
            for i, query in enumerate(ids)}


def _cascade(first: Ranking, split: BeirSplit, reranker: CrossEncoder, weight: float, candidates: int) -> Ranking:
    texts = dict(zip((doc["doc_id"] for doc in split.corpus), split.texts, strict=True))
    ranked = {}
    for query, hits in tqdm(first.items(), desc=f"cascade {split.name}", unit="query"):
        head = hits[:candidates]
        cross = reranker.score(split.queries[query], [texts[doc] for doc, _ in head])
        fused = fused_scores(cross, np.asarray([score for _, score in head], dtype=np.float32), weight)
        ranked[query] = sorted(((doc, float(s)) for (doc, _), s in zip(head, fused, strict=True)),
                               key=lambda hit: -hit[1]) + list(hits[candidates:])
    return ranked


def gap_recovered(base: float, student: float, teacher: float) -> float | None:
    """(student - base) / (teacher - base); None where the teacher does not lead the base."""
    return (student - base) / (teacher - base) if teacher > base else None


def measure_gap(data_dir: Path, datasets: Sequence[str], base: BiEncoder, student: BiEncoder,
                reranker: CrossEncoder, weight: float, candidates: int, metric: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for dataset in datasets:
        split = load_split(data_dir / dataset, "test")
        base_ranking, student_ranking = _search(base, split), _search(student, split)
        figures = {name: ranking_metrics(split.qrels, ranking) for name, ranking in (
            ("base", base_ranking), ("student", student_ranking),
            ("teacher", _cascade(base_ranking, split, reranker, weight, candidates)))}
        values = {name: round(found[metric], 4) for name, found in figures.items()}
        gap = gap_recovered(values["base"], values["student"], values["teacher"])
        result[dataset] = values | {
            "gap_recovered": None if gap is None else round(gap, 3), "metric": metric, "queries": len(split.queries),
            "all": {name: {key: round(value, 4) for key, value in found.items()} for name, found in figures.items()},
        }
    return result
