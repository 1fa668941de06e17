"""First stages compared through the services: each catalogue model, BM25 and hybrid, on WikiQA, SciFact and
Cranfield (every test query), then the shipped reranker on the hybrid first stage.

    python -m scripts.eval_first_stages [--models minilm bge-small e5-small] [--hybrid-model bge-small]
                                        [--no-rerank]

Each model gets one `cascade-eval` run (a local Kafka, every role in one process, a fresh store, so every
document is encoded and ingest docs/s is real) that ingests the three corpora into collections created with
that model and sends every test query in mode `bi`; the `--hybrid-model` run also tries the `sparse` (BM25)
and `hybrid` (RRF of both, inside the store) first stages. The reranker then runs on the hybrid first stage
(chosen before any figure was seen: fusing a dense and a lexical list is the usual way to raise Recall@100,
which bounds what a reranker can do), pure and fused, at a fusion weight re-tuned for this first stage on
WikiQA dev (MRR@10) before the test queries run. Models must be fetched first (`cascade models fetch NAME`).
Updates bench/first_stages.json (the stages it measures) and .png after each run, each run's report under
bench/eval/first-stage-*/.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import matplotlib
import orjson

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cascade.contracts.messages import FirstStage
from cascade.evaluation.harness import EvalOptions
from cascade.evaluation.run import run_evaluation
from cascade.services.log import configure_logging
from cascade.services.settings import BatchingSettings, Settings, StoreSettings
from scripts.benchlib import BENCH_DIR, DATA_DIR, machine, write_result

DATASETS = ("wikiqa", "scifact", "cranfield")
PLOT_ORDER = ["minilm", "e5-small", "bge-small", "mpnet", "sparse", "hybrid", "cascade", "cascade_fused"]


def _figures(report: dict[str, Any], mode: str) -> dict[str, Any]:
    metrics, latency = report["metrics"][mode], report["latency_ms"].get(mode, {})
    return {"mrr@10": round(metrics["mrr@10"], 4), "ndcg@10": round(metrics["ndcg@10"], 4),
            "recall@100": round(metrics["recall@100"], 4), "p50_ms": round(latency.get("p50", 0.0), 1),
            "p99_ms": round(latency.get("p99", 0.0), 1), "ingest_docs_per_s": report["ingest"]["docs_per_s"]}


def _settings(store: Path) -> Settings:
    """Every query encoded (no query-vector cache: each first stage runs the same queries, and a cache hit
    would hide the encoder's cost from the later ones)."""
    return Settings(store=StoreSettings(path=store), batching=BatchingSettings(query_cache_size=0), metrics_port=None)


async def evaluate(model: str, store: Path, options: EvalOptions, out: Path) -> list[dict[str, Any]]:
    settings = _settings(store)
    return await run_evaluation(settings, [DATA_DIR / name for name in DATASETS], options, out)


def _previous() -> dict[str, Any]:
    """The figures of earlier runs, which this run updates for the stages it measures."""
    path = BENCH_DIR / "first_stages.json"
    previous: dict[str, Any] = orjson.loads(path.read_bytes()) if path.is_file() else {}
    return {**previous, **{dataset: previous.get(dataset, {}) for dataset in DATASETS}}


def _save(result: dict[str, Any]) -> Path:
    path = write_result("first_stages", {**result, "machine": machine(), "note": NOTE})
    plot(result, BENCH_DIR / "first_stages.png")
    return path


NOTE = ("through the services (local Kafka, embedded Qdrant Edge), every test query, 8 in flight; p50/p99 are "
        "the SDK's round trips; ingest_docs_per_s: the whole corpus encoded and stored through Kafka on this "
        "2-core CPU (BM25 term vectors included); sparse = BM25 with IDF, hybrid = RRF(k=60) of the hybrid "
        "model's dense list and the BM25 list, both inside the store")


def plot(result: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(1, len(DATASETS), figsize=(5 * len(DATASETS), 4), squeeze=False)
    for axis, dataset in zip(axes[0], DATASETS, strict=True):
        stages = result[dataset]
        names = sorted(stages, key=lambda name: PLOT_ORDER.index(name) if name in PLOT_ORDER else len(PLOT_ORDER))
        for offset, metric in enumerate(("ndcg@10", "recall@100")):
            axis.bar([i + offset * 0.4 for i in range(len(names))], [stages[name][metric] for name in names],
                     width=0.4, label=metric)
        axis.set_xticks([i + 0.2 for i in range(len(names))], names, rotation=30, ha="right")
        axis.set_title(dataset)
        axis.set_ylim(0, 1)
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def tune_fusion_weight(model: str, store: Path, result: dict[str, Any]) -> float:
    """The reranker's fusion weight for the hybrid first stage, chosen on WikiQA dev (MRR@10, its metric)."""
    options = EvalOptions(modes=("rerank",), model=model, exact_recall=False, first_stages=("hybrid",),
                          split="dev", fusion_sweep=tuple(round(0.1 * step, 1) for step in range(11)))
    settings = _settings(store)
    [report] = asyncio.run(run_evaluation(settings, [DATA_DIR / "wikiqa"], options,
                                          BENCH_DIR / "eval" / "first-stage-hybrid-rerank-dev"))
    by_weight = {float(name.split("(")[1].rstrip(")")): metrics["mrr@10"]
                 for name, metrics in report["metrics"].items() if "+fusion(" in name}
    best = max(sorted(by_weight), key=lambda weight: by_weight[weight])
    result["fusion_weight_tuned_on_wikiqa_dev"] = {"weight": best, "dev_mrr@10_by_weight": {
        f"{weight:g}": round(mrr, 4) for weight, mrr in sorted(by_weight.items())}}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["bge-small", "e5-small", "minilm"])
    parser.add_argument("--hybrid-model", default="bge-small")
    parser.add_argument("--no-rerank", action="store_true")
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    result = _previous()
    with tempfile.TemporaryDirectory(prefix="cascade-first-stages-") as stores:
        for model in args.models:
            stages: tuple[FirstStage, ...] = ("dense", "sparse", "hybrid") if model == args.hybrid_model else (
                "dense",)
            options = EvalOptions(modes=("bi",), model=model, exact_recall=False, first_stages=stages)
            for report in asyncio.run(evaluate(model, Path(stores) / model, options,
                                               BENCH_DIR / "eval" / f"first-stage-{model}")):
                dataset = report["dataset"].split("/")[0]
                result[dataset][model] = _figures(report, "bi")
                for stage in stages[1:]:
                    result[dataset][stage] = {**_figures(report, f"bi[{stage}]"), "dense_model": model}
            print(_save(result))
        if not args.no_rerank:
            weight = tune_fusion_weight(args.hybrid_model, Path(stores) / args.hybrid_model, result)
            options = EvalOptions(modes=("rerank",), model=args.hybrid_model, exact_recall=False,
                                  first_stages=("hybrid",), fusion_weight=weight)
            for report in asyncio.run(evaluate(args.hybrid_model, Path(stores) / args.hybrid_model, options,
                                               BENCH_DIR / "eval" / "first-stage-hybrid-rerank")):
                dataset = report["dataset"].split("/")[0]
                fused = next(mode for mode in report["metrics"] if "+fusion" in mode)
                result[dataset]["cascade"] = {**_figures(report, "rerank[hybrid]"), "first_stage": "hybrid"}
                result[dataset]["cascade_fused"] = {"first_stage": "hybrid", "fusion": fused, **{
                    name: round(report["metrics"][fused][name], 4) for name in ("mrr@10", "ndcg@10", "recall@100")}}
            print(_save(result))
    for dataset in DATASETS:
        for name, figures in result[dataset].items():
            print(dataset, name, figures)


if __name__ == "__main__":
    main()
