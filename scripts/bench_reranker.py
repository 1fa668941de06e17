"""The reranker through the services on WikiQA, SciFact and Cranfield test (every query): bi, pure rerank and fused.

    python -m scripts.bench_reranker [--model models/cascade-reranker-minilm-l6] [--candidates 20] [--name reranker]

Per dataset, on the default first stage (MiniLM, dense): mode `bi` asks for the top 100 (Recall@100); mode
`rerank` reranks the first stage's top `--candidates` (Cascade's CPU default: 20), and `fused` is the same run
fused with the first-stage scores at the model's tuned weight (its `cascade.json`), as the services fuse by
default. Rerank p50/p99 come from `--latency-queries` queries one at a time (the SDK's round trip), since the
quality runs keep 8 in flight. Writes bench/<name>.json (with the model's training figures) and
bench/eval/<name>-*; `--card` rewrites the model card.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from cascade.evaluation.harness import EvalOptions, evaluate_split
from cascade.evaluation.model_card import write_model_card
from cascade.evaluation.report import markdown_table, write_report
from cascade.evaluation.run import serving
from cascade.runtime.clients import sdk_client
from cascade.services.log import configure_logging
from cascade.services.reranker.fusion import configured_fusion_weight
from cascade.services.settings import BUNDLED_RERANKER, ModelSettings, Settings, StoreSettings, bundled_models
from scripts.benchlib import BENCH_DIR, DATA_DIR, ROOT, machine, write_result

DATASETS = ("wikiqa", "scifact", "cranfield")
KEYS = ("mrr@10", "ndcg@10", "recall@100")


def _figures(metrics: dict[str, float]) -> dict[str, float]:
    return {key: round(metrics[key], 4) for key in KEYS}


async def evaluate(settings: Settings, candidates: int, latency_queries: int, name: str) -> dict[str, Any]:
    weight = configured_fusion_weight(None, settings.models.cross_encoder)
    result: dict[str, Any] = {}
    async with serving(settings) as served, sdk_client(served.kafka) as client:
        for dataset in DATASETS:
            folder = DATA_DIR / dataset
            first = await evaluate_split(client, folder, EvalOptions(modes=("bi",), exact_recall=False))
            reranked = await evaluate_split(client, folder, EvalOptions(
                modes=("rerank",), candidates=candidates, fusion_weight=weight, exact_recall=False, ingest=False))
            timed = await evaluate_split(client, folder, EvalOptions(
                modes=("rerank",), candidates=candidates, max_queries=latency_queries, concurrency=1,
                exact_recall=False, ingest=False))
            reports = [first, reranked]
            write_report(reports, BENCH_DIR / "eval" / f"{name}-{dataset}")
            print(markdown_table(reports))
            latency = timed["latency_ms"]["rerank"]
            result[dataset] = {
                "bi": _figures(first["metrics"]["bi"]), "rerank": _figures(reranked["metrics"]["rerank"]),
                "fused": _figures(reranked["metrics"][f"rerank+fusion({weight:g})"]),
                "queries": reranked["queries"], "candidates": candidates, "fusion_weight": weight,
                "rerank_p50_ms": round(latency["p50"], 1), "rerank_p99_ms": round(latency["p99"], 1),
                "bi_p50_ms": round(first["latency_ms"]["bi"]["p50"], 1),
            }
    return result


def training_figures(model: Path) -> dict[str, Any]:
    """What the model's training report says about its training (distilled models: teachers and queries)."""
    report = json.loads((model / "training_report.json").read_text())
    teachers = report.get("teachers", {})
    sources = teachers.get("sources", {})
    return {
        "minutes": round(report["train_minutes"], 1),
        "queries": sum(s["queries"] for s in sources.values() if s["labelled"] and s["split"] == "train"),
        "pseudo_queries": sum(s["queries"] for s in sources.values() if not s["labelled"]),
        "contrastive_pairs": report.get("counts", {}).get("pairs", 0),
        "teachers": {name: weight for name, weight in teachers.get("weights", {}).items() if weight},
        "steps": report["steps"], "device": report["device"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=bundled_models() / BUNDLED_RERANKER)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--latency-queries", type=int, default=20)
    parser.add_argument("--name", default="reranker")
    parser.add_argument("--card", action="store_true",
                        help="rewrite the model's README.md (model card) with these figures and its hard-case "
                             "accuracy (bench/hard_cases.json, row reranker:shipped)")
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    with tempfile.TemporaryDirectory(prefix="cascade-reranker-") as store:
        settings = Settings(store=StoreSettings(path=Path(store)), metrics_port=None,
                            models=ModelSettings(cross_encoder=str(args.model)))
        result = asyncio.run(evaluate(settings, args.candidates, args.latency_queries, args.name))
    result |= {"training": training_figures(args.model), "machine": machine(),
               "model": str(args.model.resolve().relative_to(ROOT)) if args.model.resolve().is_relative_to(ROOT)
               else args.model.name}
    print(write_result(args.name, result))
    if args.card:
        hard_cases = json.loads((BENCH_DIR / "hard_cases.json").read_text())["accuracy"].get("reranker:shipped")
        print(write_model_card(args.model, result, hard_cases))


if __name__ == "__main__":
    main()
