"""The quality-latency frontier of the reranker's candidate count N on this machine, through the services.

    python -m scripts.bench_frontier [--queries Q] [--latency-queries 20] [--sizes 10 20 30 50 100]

Per dataset (WikiQA, SciFact, Cranfield test): one `cascade-eval` run in mode rerank at the largest N gives
MRR@10 / nDCG@10 of the reranked and the fused cascade at every N (the first stage's top N in the reranker's
order: exact, as a cross-encoder scores each pair on its own; `cascade.evaluation.harness.candidate_sweep`); then
`--latency-queries` queries one at a time at each N give rerank p50/p99 (the SDK's round trip). The reranker
runs in the configured precision (`CASCADE_MODELS_CROSS_PRECISION`). Writes bench/frontier.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cascade.evaluation.harness import EvalOptions, evaluate_split
from cascade.evaluation.report import write_report
from cascade.evaluation.run import serving
from cascade.runtime.clients import sdk_client
from cascade.services.log import configure_logging
from cascade.services.reranker.fusion import configured_fusion_weight
from cascade.services.settings import BatchingSettings, Settings, StoreSettings
from scripts.benchlib import BENCH_DIR, DATA_DIR, machine, write_result

DATASETS = ("wikiqa", "scifact", "cranfield")


async def frontier(settings: Settings, sizes: list[int], queries: int | None, latency_queries: int
                   ) -> dict[str, dict[int, dict[str, float]]]:
    weight = configured_fusion_weight(settings.models.fusion_weight, settings.models.cross_encoder)
    result: dict[str, dict[int, dict[str, float]]] = {}
    async with serving(settings) as served, sdk_client(served.kafka) as client:
        for dataset in DATASETS:
            quality = await evaluate_split(client, DATA_DIR / dataset, EvalOptions(
                modes=("rerank",), candidates=max(sizes), max_queries=queries, candidate_sweep=tuple(sizes),
                fusion_weight=weight, exact_recall=False))
            write_report([quality], BENCH_DIR / "eval" / f"frontier-{dataset}")
            if "fusion_applied" in quality:
                raise SystemExit(f"the deployment's reranker fuses ({quality['fusion_applied']}): the frontier needs "
                                 "its own scores, so set CASCADE_MODELS_FUSION_WEIGHT=0 there, or run it embedded")
            figures: dict[int, dict[str, float]] = {}
            for size, metrics in quality["candidate_sweep"]["rerank"].items():
                figures[size] = {name: round(metrics[kind][metric], 4) for name, kind, metric in (
                    ("mrr@10", "rerank", "mrr@10"), ("ndcg@10", "rerank", "ndcg@10"),
                    ("fused_mrr@10", "fused", "mrr@10"), ("fused_ndcg@10", "fused", "ndcg@10"))}
            for size in sizes:
                timed = await evaluate_split(client, DATA_DIR / dataset, EvalOptions(
                    modes=("rerank",), candidates=size, max_queries=latency_queries, concurrency=1,
                    exact_recall=False, ingest=False))
                latency = timed["latency_ms"]["rerank"]
                figures[size].update(rerank_p50_ms=round(latency["p50"], 1), rerank_p99_ms=round(latency["p99"], 1))
            print(dataset, figures)
            result[dataset] = figures
    return result


def plot(result: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(1, len(DATASETS), figsize=(5 * len(DATASETS), 4), squeeze=False)
    for axis, dataset in zip(axes[0], DATASETS, strict=True):
        points = sorted(result[dataset].items())
        latency = [figures["rerank_p50_ms"] for _, figures in points]
        for key, label in (("ndcg@10", "reranked"), ("fused_ndcg@10", "fused")):
            axis.plot(latency, [figures[key] for _, figures in points], marker="o", label=label)
        for size, figures in points:
            axis.annotate(f"N={size}", (figures["rerank_p50_ms"], figures["fused_ndcg@10"]), fontsize=8)
        axis.set(title=dataset, xlabel="rerank p50 ms (one query at a time)", ylabel="nDCG@10", xscale="log")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, help="test queries for quality (default: all)")
    parser.add_argument("--latency-queries", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 30, 50, 100])
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    with tempfile.TemporaryDirectory(prefix="cascade-frontier-") as store:
        settings = Settings(store=StoreSettings(path=Path(store)), metrics_port=None,
                            batching=BatchingSettings(score_cache_size=0))  # latency re-asks the same queries
        result: dict[str, Any] = asyncio.run(frontier(settings, args.sizes, args.queries, args.latency_queries))
    result.update(machine=machine(), settings={
        "cross_encoder": Path(settings.models.cross_encoder).name, "precision": settings.models.cross_precision,
        "first_stage": settings.models.bi_encoder or "minilm", "quality_queries": args.queries or "all",
        "latency_queries": args.latency_queries})
    print(write_result("frontier", result))
    plot(result, BENCH_DIR / "frontier.png")


if __name__ == "__main__":
    main()
