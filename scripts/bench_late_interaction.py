"""The cheaper answers against the cascade, from one run on the same queries: bi, distilled bi, colbert, rerank
(cross-encoder) and fused rerank on WikiQA, SciFact and Cranfield test, through the services.

    python -m scripts.bench_late_interaction [--student models/cascade-bi-minilm-l6-distilled] [--latency-queries 40]

Per dataset: the shipped first stage (MiniLM) ingests the corpus into a plain collection (modes bi, rerank, fused)
and into one with token vectors (mode colbert: the dense top 100 rescored by MaxSim in the store); the distilled
student is served by a second set of services, as their default model, for mode distilled. Quality: every test
query at concurrency 8 (bi, colbert and distilled return 100 hits; rerank reorders the top 20, the CPU default,
and fused is that run fused at the reranker's weight). Latency: `--latency-queries` queries one at a time per mode
(fused costs what rerank does). Ingest docs/s: the ingest service's, acks included. Writes
bench/late_interaction.json and bench/eval/late-interaction-*; then `python -m scripts.bench_storage` adds the bytes
stored per document (allocated disk blocks: a folder's apparent size counts preallocated files) and draws
bench/late_interaction.png.
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

from cascade.evaluation.harness import EvalOptions, evaluate_split
from cascade.evaluation.report import markdown_table, shown_path, write_report
from cascade.evaluation.run import serving
from cascade.runtime.clients import sdk_client
from cascade.services.log import configure_logging
from cascade.services.reranker.fusion import configured_fusion_weight
from cascade.services.settings import BUNDLED_COLBERT, ModelSettings, Settings, StoreSettings, bundled_models
from scripts.benchlib import BENCH_DIR, DATA_DIR, machine, write_result

DATASETS = ("wikiqa", "scifact", "cranfield")
MODES = ("bi", "distilled", "colbert", "rerank", "fused")
RERANK_CANDIDATES = 20


def _row(run: dict[str, Any], quality_mode: str, latency_mode: str) -> dict[str, float]:
    """One mode's figures on one dataset: quality from the concurrent run, latency from the one-at-a-time run."""
    metrics = run["quality"]["metrics"][quality_mode]
    latency = run["latency"]["latency_ms"][latency_mode]
    return {"mrr@10": round(metrics["mrr@10"], 4), "ndcg@10": round(metrics["ndcg@10"], 4),
            "p50_ms": round(latency["p50"], 1), "p99_ms": round(latency["p99"], 1),
            "queries": run["quality"]["queries"]}


def _mean_rate(rates: list[float]) -> float:
    return round(sum(rates) / len(rates), 1)


async def _measure(settings: Settings, modes: dict[str, EvalOptions], latency_queries: int
                   ) -> dict[str, dict[str, Any]]:
    """Per dataset and run name: the quality report and the latency report."""
    found: dict[str, dict[str, Any]] = {}
    async with serving(settings) as served, sdk_client(served.kafka) as client:
        for dataset in DATASETS:
            folder = DATA_DIR / dataset
            for name, options in modes.items():
                quality = await evaluate_split(client, folder, options)
                latency = await evaluate_split(client, folder, EvalOptions(**{
                    **options.__dict__, "max_queries": latency_queries, "concurrency": 1, "ingest": False,
                    "fusion_weight": None}))
                found.setdefault(dataset, {})[name] = {"quality": quality, "latency": latency}
    return found


def plot(result: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for dataset in DATASETS:
        points = [(result[dataset][mode]["p50_ms"], result[dataset][mode]["ndcg@10"], mode) for mode in MODES]
        axes[0].plot([p[0] for p in points], [p[1] for p in points], "o", label=dataset)
        for x, y, mode in points:
            axes[0].annotate(mode, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("query latency p50, ms (one at a time, this CPU; log)")
    axes[0].set_ylabel("nDCG@10")
    axes[0].legend()
    axes[0].set_title("quality against latency")
    sizes = result["bytes_per_document"]
    axes[1].bar(list(sizes), [sizes[mode] / 1024 for mode in sizes], color="tab:gray")
    axes[1].set_ylabel("KiB stored per document (mean over the three corpora)")
    axes[1].set_title("storage")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", type=Path, default=bundled_models() / "cascade-bi-minilm-l6-distilled")
    parser.add_argument("--colbert", type=Path, default=bundled_models() / BUNDLED_COLBERT)
    parser.add_argument("--latency-queries", type=int, default=40)
    parser.add_argument("--only-colbert", action="store_true",
                        help="measure mode colbert alone (a new ColBERT encoder) into the existing JSON, the other "
                             "modes' figures kept")
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    models = ModelSettings(late_interaction=str(args.colbert))
    weight = configured_fusion_weight(None, models.cross_encoder)
    first = EvalOptions(modes=("bi",), exact_recall=False)
    runs = {"bi": first,
            "rerank": EvalOptions(modes=("rerank",), candidates=RERANK_CANDIDATES, fusion_weight=weight,
                                  exact_recall=False, ingest=False),
            "colbert": EvalOptions(modes=("colbert",), exact_recall=False, late_interaction=True)}
    if args.only_colbert:
        with tempfile.TemporaryDirectory(prefix="cascade-late-") as store:
            found = asyncio.run(_measure(Settings(store=StoreSettings(path=Path(store)), metrics_port=None,
                                                  models=models), {"colbert": runs["colbert"]}, args.latency_queries))
        result = orjson.loads((BENCH_DIR / "late_interaction.json").read_bytes())
        for dataset in DATASETS:
            run = found[dataset]["colbert"]
            print(markdown_table([run["quality"]]))
            result[dataset]["colbert"] = _row(run, "colbert", "colbert")
        rates = [found[dataset]["colbert"]["quality"]["ingest"]["docs_per_s"] for dataset in DATASETS]
        result["per_dataset"]["ingest_docs_per_s"]["colbert"] = rates
        result["ingest_docs_per_s"]["colbert"] = _mean_rate(rates)
        result["models"]["colbert"] = shown_path(args.colbert)
        result["colbert_measured_separately"] = True
        result["colbert_machine"] = machine()  # latency and ingest compare with the other rows on one machine only
        print(write_result("late_interaction", result))
        plot(result, BENCH_DIR / "late_interaction.png")
        return
    with tempfile.TemporaryDirectory(prefix="cascade-late-") as store, \
            tempfile.TemporaryDirectory(prefix="cascade-distilled-") as student_store:
        base = asyncio.run(_measure(Settings(store=StoreSettings(path=Path(store)), metrics_port=None,
                                             models=models), runs, args.latency_queries))
        distilled = asyncio.run(_measure(Settings(
            store=StoreSettings(path=Path(student_store)), metrics_port=None,
            models=models.model_copy(update={"bi_encoder": str(args.student)})), {"distilled": first},
            args.latency_queries))
    result: dict[str, Any] = {}
    ingest: dict[str, list[float]] = {mode: [] for mode in MODES}
    for dataset in DATASETS:
        runs_here = base[dataset] | distilled[dataset]
        student = runs_here["distilled"]["quality"]
        for table in ("metrics", "latency_ms", "server_ms", "failures"):
            student[table] = {"distilled": student[table]["bi"]}
        reports = [runs_here[name]["quality"] for name in ("bi", "distilled", "colbert", "rerank")]
        write_report(reports, BENCH_DIR / "eval" / f"late-interaction-{dataset}")
        print(markdown_table(reports))
        result[dataset] = {}
        for mode in MODES:
            name = {"fused": "rerank"}.get(mode, mode)
            quality_mode = {"fused": f"rerank+fusion({weight:g})"}.get(mode, mode)
            latency_mode = {"distilled": "bi", "fused": "rerank"}.get(mode, mode)
            result[dataset][mode] = _row(runs_here[name], quality_mode, latency_mode)
            collection_of = {"rerank": "bi", "fused": "bi"}.get(mode, mode)
            ingest[mode].append(runs_here[collection_of]["quality"]["ingest"]["docs_per_s"])
    result["ingest_docs_per_s"] = {mode: _mean_rate(values) for mode, values in ingest.items()}
    result["per_dataset"] = {"ingest_docs_per_s": ingest}
    result |= {"machine": machine(), "rerank_candidates": RERANK_CANDIDATES, "fusion_weight": weight,
               "colbert_candidates": 100, "latency_queries": args.latency_queries,
               "models": {"bi": "all-MiniLM-L6-v2", "distilled": shown_path(args.student),
                          "colbert": shown_path(args.colbert), "reranker": shown_path(Path(models.cross_encoder))}}
    print(write_result("late_interaction", result))


if __name__ == "__main__":
    main()
