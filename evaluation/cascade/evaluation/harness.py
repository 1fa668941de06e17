"""The evaluation harness: a BEIR folder through the running services, every mode, metrics and latencies.

The corpus goes in through the ingest service and every query through the query service (and reranker) with
the SDK over Kafka, exactly as users run them. Mode `rerank` asks for k = candidates = 100 so the whole
reranked list comes back with both scores, which also gives the first-stage-fused ranking offline.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cascade.contracts import Hit, SearchResult
from cascade.contracts.messages import FirstStage, Mode
from cascade.evaluation.beir import BeirSplit, corpus_vectors, exact_top_k, load_split
from cascade.evaluation.fusion import fuse
from cascade.evaluation.metrics import overlap_recall, ranking_metrics
from cascade.evaluation.timing import timed_gather
from cascade.sdk import SearchClient, SearchFailed, SearchTimeout
from cascade.services.encoders import BiEncoder

__all__ = ["EvalOptions", "candidate_sweep", "eval_collection", "evaluate_split"]

DEPTH = 100


@dataclass(frozen=True)
class EvalOptions:
    modes: tuple[Mode, ...] = ("bi", "rerank")
    max_queries: int | None = None
    concurrency: int = 8
    timeout_s: float = 600.0
    fusion_weight: float | None = None
    """First-stage share for the fused variant of mode rerank (None: no fused variant)."""
    fusion_sweep: tuple[float, ...] = ()
    """More first-stage shares to report fused variants for (tuning one on a dev split)."""
    split: str = "test"
    model: str | None = None
    """The first-stage model of the evaluation collections (a catalogue name; None: the services' default)."""
    first_stages: tuple[FirstStage, ...] = ("dense",)
    """Each mode runs once per first stage; runs other than dense are reported as `mode[first_stage]`."""
    exact_recall: bool = True
    """Also encode the corpus in-process to measure the HNSW search's recall against exact search."""
    candidates: int = DEPTH
    """First-stage candidates per query (mode rerank reranks them all and returns them all)."""
    candidate_sweep: tuple[int, ...] = ()
    """Smaller candidate counts to score mode rerank at, from the same run (see `candidate_sweep`)."""
    ingest: bool = True
    """False: the collection already holds the corpus (a second run on the same services), so it is not sent."""
    keep_runs: bool = False
    """Also report each ranking's top 10 per query (`runs`), for per-query metrics and significance tests."""
    late_interaction: bool = False
    """Evaluate a collection that also stores token vectors (mode colbert needs one)."""
    passages: bool = False
    """Evaluate a collection of passages (each document found and reranked by its best passage)."""

    @property
    def collection_suffix(self) -> str:
        return ((f"-{self.model}" if self.model else "") + ("-colbert" if self.late_interaction else "")
                + ("-passages" if self.passages else ""))


async def _run_mode(client: SearchClient, collection: str, queries: dict[str, str], mode: Mode,
                    first_stage: FirstStage, options: EvalOptions) -> tuple[dict[str, SearchResult], list[float], int]:
    results: dict[str, SearchResult] = {}
    failed: list[str] = []

    async def one(query_id: str) -> None:
        try:
            results[query_id] = await client.search(queries[query_id], collection=collection, k=options.candidates,
                                                    candidates=options.candidates, mode=mode,
                                                    timeout_s=options.timeout_s,
                                                    first_stage=first_stage)
        except (SearchFailed, SearchTimeout) as exc:
            failed.append(query_id)
            tqdm.write(f"{mode} {query_id}: {exc}")

    timed = await timed_gather(list(queries), one, options.concurrency, f"{collection} {mode}")
    return results, [ms for query_id, ms in timed if query_id in results], len(failed)


def _first_stage_lists(hits: dict[str, list[Hit]]) -> dict[str, list[tuple[str, float]]]:
    return {query: [(hit.doc_id, hit.first_stage_score or 0.0) for hit in found] for query, found in hits.items()}


def candidate_sweep(qrels: dict[str, dict[str, int]], results: dict[str, SearchResult], sizes: tuple[int, ...],
                    fusion_weight: float | None) -> dict[int, dict[str, dict[str, float]]]:
    """Mode rerank's metrics at fewer candidates, from one run with more: each query's first-stage top N (by
    the first-stage score every hit carries) in the reranker's order, and fused over those N. Exact, because
    a cross-encoder scores each pair on its own and the reranker normalises fusion per candidate set."""
    by_first_stage = {query: sorted(result.hits, key=lambda hit: -(hit.first_stage_score or 0.0))
                      for query, result in results.items()}
    sweep: dict[int, dict[str, dict[str, float]]] = {}
    for size in sizes:
        kept = {query: hits[:size] for query, hits in by_first_stage.items()}
        reranked = {query: sorted(((hit.doc_id, hit.score) for hit in hits), key=lambda pair: -pair[1])
                    for query, hits in kept.items()}
        sweep[size] = {"rerank": ranking_metrics(qrels, reranked)}
        if fusion_weight is not None:
            sweep[size]["fused"] = ranking_metrics(qrels, fuse(_first_stage_lists(kept), reranked, fusion_weight))
    return sweep


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": statistics.median(values), "p90": float(np.percentile(values, 90)),
            "p99": float(np.percentile(values, 99)), "mean": statistics.fmean(values)}


def _first_stage_recall(split: BeirSplit, queries: dict[str, str], bi_results: dict[str, SearchResult],
                        bi_encoder: BiEncoder) -> float:
    """Share of exact (brute-force) search's top 100 that the service's HNSW search returned."""
    ids = [doc["doc_id"] for doc in split.corpus]
    order = list(queries)
    top = exact_top_k(bi_encoder.encode_queries([queries[q] for q in order]), corpus_vectors(split, bi_encoder), DEPTH)
    exact = {query: [ids[i] for i in row] for query, row in zip(order, top, strict=True)}
    found = {query: [hit.doc_id for hit in result.hits] for query, result in bi_results.items()}
    return overlap_recall(found, exact)


async def _ingest(client: SearchClient, collection: str, documents: list[dict[str, str]], options: EvalOptions
                  ) -> dict[str, Any]:
    """Every document through the ingest service (unchanged ones are skipped there), timed."""
    began = time.perf_counter()
    with tqdm(total=len(documents), desc=f"ingest {collection}", unit="doc") as bar:
        acks = await client.index(documents, collection=collection, model=options.model,
                                  late_interaction=options.late_interaction or None,
                                  passages=options.passages or None, timeout_s=7200,
                                  progress=bar.update)
    seconds = time.perf_counter() - began
    indexed = sum(ack.status == "indexed" for ack in acks)
    return {"indexed": indexed, "seconds": round(seconds, 1), "docs_per_s": round(indexed / seconds, 2) if indexed
            else None}


def eval_collection(folder: Path, options: EvalOptions) -> str:
    """The collection a split is evaluated in."""
    return f"eval-{folder.name}-{options.split}{options.collection_suffix}"


def _fusion_applied(results: Mapping[str, SearchResult]) -> float | str | None:
    """The first-stage weight the reranker fused into these results' scores (it names it), if any; "mixed" when
    the results disagree (rerankers configured differently, a rolling deploy)."""
    weights = {result.models.get("fusion_weight") for result in results.values()}
    named = {weight for weight in weights if weight is not None}
    if not named:
        return None
    return float(named.pop()) if weights == named and len(named) == 1 else "mixed"


def _top_ids(ranking: Mapping[str, Sequence[tuple[str, float]]], depth: int = 10) -> dict[str, list[str]]:
    return {query: [doc for doc, _ in hits[:depth]] for query, hits in ranking.items()}


async def evaluate_split(client: SearchClient, folder: Path, options: EvalOptions,
                         bi_encoder: BiEncoder | None = None) -> dict[str, Any]:
    """Ingest the corpus (unless `options.ingest` is off), run the queries in each mode, score them."""
    split = load_split(folder, options.split)
    collection = eval_collection(folder, options)
    queries = dict(list(split.queries.items())[: options.max_queries])
    qrels = {query: split.qrels[query] for query in queries}  # a subset is scored on its own queries only
    # A document with no text cannot be indexed (the contract refuses it); it is counted, not silently lost.
    documents = [doc for doc in split.corpus if doc["text"].strip()]
    report: dict[str, Any] = {"dataset": split.name, "queries": len(queries), "documents": len(documents),
                              "ingest": await _ingest(client, collection, documents, options)
                              if options.ingest else None,
                              "skipped_empty_documents": len(split.corpus) - len(documents),
                              "metrics": {}, "latency_ms": {}, "server_ms": {}, "failures": {}}
    rankings: dict[str, dict[str, list[tuple[str, float]]]] = {}
    results_by_mode: dict[str, dict[str, SearchResult]] = {}
    for first_stage in options.first_stages:
        for mode in options.modes:
            name = mode if first_stage == "dense" else f"{mode}[{first_stage}]"
            results, latencies, failures = await _run_mode(client, collection, queries, mode, first_stage, options)
            results_by_mode[name] = results
            rankings[name] = {query: [(hit.doc_id, hit.score) for hit in result.hits]
                              for query, result in results.items()}
            report["metrics"][name] = ranking_metrics(qrels, rankings[name])
            if options.keep_runs:
                report.setdefault("runs", {})[name] = _top_ids(rankings[name])
            report["latency_ms"][name] = _percentiles(latencies)
            report["server_ms"][name] = {
                stage: _percentiles([value for r in results.values()
                                     if (value := getattr(r.timings, stage)) is not None])
                for stage in ("encode_ms", "ann_ms", "rerank_queue_ms", "rerank_ms", "total_ms")}
            report["failures"][name] = failures
            if (applied := _fusion_applied(results)) is not None:
                # The deployment fused already: its ranking is reported as it is, never fused a second time, and
                # the sweeps (which need the cross-encoder's own scores) are left out.
                report.setdefault("fusion_applied", {})[name] = applied
                continue
            weights = ([] if options.fusion_weight is None else [options.fusion_weight]) + list(options.fusion_sweep)
            if mode == "rerank" and options.candidate_sweep:
                report.setdefault("candidate_sweep", {})[name] = candidate_sweep(
                    qrels, results, options.candidate_sweep, options.fusion_weight)
            if mode == "rerank" and weights:
                first = _first_stage_lists({query: result.hits for query, result in results.items()})
                for weight in weights:
                    fused = fuse(first, rankings[name], weight)
                    report["metrics"][f"{name}+fusion({weight:g})"] = ranking_metrics(qrels, fused)
                    if options.keep_runs:
                        report["runs"][f"{name}+fusion({weight:g})"] = _top_ids(fused)
    if "bi" in results_by_mode and bi_encoder is not None and options.exact_recall:
        report["first_stage_recall@100_vs_exact"] = _first_stage_recall(split, queries, results_by_mode["bi"],
                                                                        bi_encoder)
    return report
