"""First stages and the cascade on a BEIR folder, exactly and in memory: what the services would answer, without
the hours of ingest through Kafka that comparing six first stages on six domains would take on this CPU.

A dense stage is exact cosine search over the bi-encoder's vectors (the services search HNSW, whose recall of
exact search is about 0.99 here), BM25 is Qdrant's own term vectors scored exactly (`lexical.bm25_scores`),
and hybrid is reciprocal-rank fusion (k=60) of the two top lists, as the store fuses its prefetches. The
cascade reranks a first stage's top candidates with a cross-encoder and fuses the two scores as the reranker
service does (`fused_scores`).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from ranx import compare
from tqdm import tqdm

from cascade.evaluation.beir import exact_top_k, load_split, read_qrels, text_vectors
from cascade.evaluation.lexical import bm25_scores
from cascade.evaluation.metrics import Ranking, ranking_metrics, ranx_inputs
from cascade.services.encoders import BiEncoder, CrossEncoder
from cascade.services.reranker.fusion import fused_scores
from cascade.services.store.base import RRF_K

__all__ = ["Domain", "Lists", "bm25_lists", "cross_scores", "dense_lists", "p_values", "rerank_lists", "rrf", "summary",
           "write_trec"]

Lists = dict[str, list[tuple[str, float]]]
"""Query id -> (doc id, score), best first: one stage's answers to one split."""

_SCORES = Path.home() / ".cache" / "cascade" / "scores"


@dataclass(frozen=True)
class Domain:
    """One BEIR folder: its corpus (shared by its splits) and, per split, the judged queries and their qrels."""

    name: str
    ids: list[str]
    texts: list[str]
    queries: dict[str, dict[str, str]]
    qrels: dict[str, dict[str, dict[str, int]]]

    @classmethod
    def load(cls, folder: Path, splits: Sequence[str]) -> Domain:
        first = load_split(folder, splits[0])
        queries = {splits[0]: first.queries}
        for split in splits[1:]:
            queries[split] = load_split(folder, split).queries
        return cls(folder.name, [doc["doc_id"] for doc in first.corpus], first.texts, queries,
                   {split: read_qrels(folder, split) for split in splits})

    def text_of(self) -> dict[str, str]:
        return dict(zip(self.ids, self.texts, strict=True))


def _top(ids: Sequence[str], scores: np.ndarray, depth: int) -> list[tuple[str, float]]:
    order = np.argsort(-scores, kind="stable")[:depth]
    return [(ids[i], float(scores[i])) for i in order]


def dense_lists(domain: Domain, split: str, encoder: BiEncoder, depth: int = 100) -> Lists:
    corpus = text_vectors(domain.texts, encoder, domain.name)
    query_ids = list(domain.queries[split])
    vectors = encoder.encode_queries([domain.queries[split][query] for query in query_ids])
    top = exact_top_k(vectors, corpus, depth)
    return {query: [(domain.ids[i], float(vectors[row] @ corpus[i])) for i in top[row]]
            for row, query in enumerate(query_ids)}


def bm25_lists(domain: Domain, split: str, depth: int = 100) -> Lists:
    query_ids = list(domain.queries[split])
    scores = bm25_scores(domain.texts, [domain.queries[split][query] for query in query_ids])
    return {query: _top(domain.ids, scores[row], depth) for row, query in enumerate(query_ids)}


def rrf(first: Lists, second: Lists, depth: int = 100) -> Lists:
    """Reciprocal-rank fusion of two stages' lists, as the store fuses a dense and a sparse prefetch."""
    fused: Lists = {}
    for query in first:
        scores: dict[str, float] = {}
        for hits in (first[query], second[query]):
            for rank, (doc, _) in enumerate(hits):
                scores[doc] = scores.get(doc, 0.0) + 1.0 / (RRF_K + rank + 1)
        fused[query] = sorted(scores.items(), key=lambda hit: -hit[1])[:depth]
    return fused


def cross_scores(cross: CrossEncoder, query: str, documents: list[str]) -> np.ndarray:
    """The cross-encoder's scores of these pairs, cached on disk by model, length and content."""
    key = hashlib.sha256(orjson.dumps([cross.model_id, cross.max_length, query, documents])).hexdigest()[:24]
    path = _SCORES / key[:2] / f"{key}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    scores = cross.score(query, documents, pass_tokens=8192)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, scores)
    return scores


def rerank_lists(domain: Domain, split: str, first: Lists, cross: CrossEncoder, candidates: int,
                 weights: Sequence[float], scored: int | None = None) -> dict[float, Lists]:
    """Per fusion weight (the first stage's share; 0 is the cross-encoder alone), the top `candidates` of
    `first` reordered, then the rest of `first` below them, as the services answer. `scored`: score the top
    `scored` (cached) and use the first `candidates` of them, so that several counts share one scoring."""
    text = domain.text_of()
    by_weight: dict[float, Lists] = {weight: {} for weight in weights}
    for query, hits in tqdm(first.items(), desc=f"rerank {domain.name}/{split}", unit="query"):
        head, tail = hits[:candidates], hits[candidates:]
        scoring = hits[: max(scored or candidates, candidates)]
        raw = cross_scores(cross, domain.queries[split][query], [text[doc] for doc, _ in scoring])[:candidates]
        first_scores = np.array([score for _, score in head], dtype=np.float32)
        for weight in weights:
            fused = fused_scores(raw, first_scores, weight)
            order = np.argsort(-fused, kind="stable")
            by_weight[weight][query] = [(head[i][0], float(fused[i])) for i in order] + [
                (doc, float(fused.min()) - 1.0 - rank) for rank, (doc, _) in enumerate(tail)]
    return by_weight


def summary(qrels: Mapping[str, Mapping[str, int]], lists: Ranking) -> dict[str, float]:
    metrics = ranking_metrics(qrels, lists)
    return {name: round(metrics[name], 4) for name in ("ndcg@10", "mrr@10", "recall@100")}


def p_values(qrels: Mapping[str, Mapping[str, int]], runs: Mapping[str, Ranking], baseline: str,
             metric: str = "ndcg@10") -> dict[str, float]:
    """Each run against `baseline`: the two-sided paired t-test's p on per-query `metric` (ranx's compare)."""
    judged = ranx_inputs(qrels, {})[0]
    named = [ranx_inputs(qrels, ranking, name)[1] for name, ranking in runs.items()]
    report = compare(judged, named, [metric], stat_test="student", make_comparable=True)
    return {name: round(float(report.comparisons[baseline, name][metric]["p_value"]), 4)
            for name in runs if name != baseline}


def write_trec(path: Path, lists: Lists, tag: str, depth: int = 10) -> None:
    """The top `depth` of each query in TREC run format (query Q0 doc rank score tag), gzipped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{query} Q0 {doc} {rank} {score:.6f} {tag}\n" for query, hits in sorted(lists.items())
             for rank, (doc, score) in enumerate(hits[:depth], start=1)]
    with gzip.open(path, "wt", compresslevel=9) as out:
        out.writelines(lines)
