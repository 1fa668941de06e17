"""First stages compared through the services: each catalogue model on WikiQA, SciFact and Cranfield (test).

    python -m scripts.eval_first_stages [--models minilm bge-small e5-small] [--rerank-model bge-small]

For each model, one `cascade eval` run (a local Kafka, every role in one process, a fresh store so that every
document is encoded and ingest docs/s is real) ingests the three corpora into collections created with that
model and sends every test query in mode `bi`. With `--rerank-model`, the shipped reranker then runs on that
first stage (pure and fused at the reranker's tuned weight). Models must be fetched first
(`cascade models fetch NAME`). Writes bench/first_stages.json (and each run's report under bench/eval/).
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

from evaluation.harness import EvalOptions
from evaluation.run import run_evaluation
from scripts.benchlib import BENCH_DIR, DATA_DIR, machine, write_result
from services.log import configure_logging
from services.settings import Settings, StoreSettings

DATASETS = ("wikiqa", "scifact", "cranfield")


def _figures(report: dict[str, Any], mode: str) -> dict[str, Any]:
    metrics, latency = report["metrics"][mode], report["latency_ms"].get(mode, {})
    return {"mrr@10": round(metrics["mrr@10"], 4), "ndcg@10": round(metrics["ndcg@10"], 4),
            "recall@100": round(metrics["recall@100"], 4), "p50_ms": round(latency.get("p50", 0.0), 1),
            "p99_ms": round(latency.get("p99", 0.0), 1), "ingest_docs_per_s": report["ingest"]["docs_per_s"]}


async def evaluate(model: str, modes: tuple[str, ...], out: Path) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix=f"cascade-eval-{model}-") as store:
        settings = Settings(store=StoreSettings(path=Path(store)), metrics_port=None)
        options = EvalOptions(modes=modes, model=model, exact_recall=False)  # type: ignore[arg-type]
        return await run_evaluation(settings, [DATA_DIR / name for name in DATASETS], options, out)


def plot(result: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(1, len(DATASETS), figsize=(5 * len(DATASETS), 4), squeeze=False)
    for axis, dataset in zip(axes[0], DATASETS, strict=True):
        stages = result[dataset]
        names = list(stages)
        for offset, metric in enumerate(("ndcg@10", "recall@100")):
            axis.bar([i + offset * 0.4 for i in range(len(names))], [stages[name][metric] for name in names],
                     width=0.4, label=metric)
        axis.set_xticks([i + 0.2 for i in range(len(names))], names, rotation=30, ha="right")
        axis.set_title(dataset)
        axis.set_ylim(0, 1)
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["minilm", "bge-small", "e5-small"])
    parser.add_argument("--rerank-model", help="run the shipped reranker (pure and fused) on this first stage")
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    result: dict[str, Any] = {dataset: {} for dataset in DATASETS}
    for model in args.models:
        modes = ("bi", "rerank") if model == args.rerank_model else ("bi",)
        for report in asyncio.run(evaluate(model, modes, BENCH_DIR / "eval" / f"first-stage-{model}")):
            dataset = report["dataset"]
            result[dataset][model] = _figures(report, "bi")
            if "rerank" in modes:
                result[dataset]["cascade"] = {**_figures(report, "rerank"), "first_stage": model}
                fused = next(mode for mode in report["metrics"] if mode.startswith("rerank+fusion"))
                metrics = report["metrics"][fused]
                result[dataset]["cascade_fused"] = {"first_stage": model, "fusion": fused, **{
                    name: round(metrics[name], 4) for name in ("mrr@10", "ndcg@10", "recall@100")}}
    result["machine"] = machine()
    result["note"] = ("through the services (local Kafka, embedded Qdrant Edge), every test query, mode bi at 8 "
                      "in flight; p50/p99 are the SDK's round trips; ingest_docs_per_s is the whole corpus "
                      "encoded and stored through Kafka on this 2-core CPU")
    path = write_result("first_stages", result)
    plot(result, BENCH_DIR / "first_stages.png")
    for dataset in DATASETS:
        for name, figures in result[dataset].items():
            print(dataset, name, figures)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
