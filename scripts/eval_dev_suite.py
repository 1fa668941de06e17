"""The shipped cascade on the dev suite's dev splits (scripts/build_dev_suite.py): does the second stage help
outside the two domains it was tuned on? Dev splits only: the test splits are for reporting, never for choosing.

    python -m scripts.eval_dev_suite [--domains argument forum ...] [--candidates 20]
    python -m scripts.eval_dev_suite --from-report bench/dev_suite/eval/eval.json    # its figures again

Every domain through the services (a local Kafka, every role in one process, a fresh store): mode bi (the first
stage alone), mode rerank (the cross-encoder's own order) and its fusion with the first stage at the shipped
weight. Per domain: nDCG@10 and MRR@10 of each, and a paired two-sided t-test (ranx's compare) of each reranked variant
against the first stage over the per-query nDCG@10 (`cascade.evaluation.metrics.per_query`, ranx). Writes
bench/dev_suite.json (figures), bench/dev_suite/eval/ (the harness's reports, with the per-query top 10 of every
run) and bench/dev_suite.png.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import matplotlib
import orjson

from cascade.evaluation.beir import read_qrels
from cascade.evaluation.harness import EvalOptions
from cascade.evaluation.metrics import per_query
from cascade.evaluation.run import run_evaluation
from cascade.evaluation.suite import p_values
from cascade.services.log import configure_logging
from cascade.services.settings import Settings, StoreSettings
from scripts.benchlib import BENCH_DIR, machine, write_result
from scripts.build_dev_suite import BUILDERS, require_built

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the file backend

_METRIC = "ndcg@10"


def _summary(report: dict[str, Any], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    runs = {name: {query: [(doc, 0.0) for doc in docs] for query, docs in run.items()}
            for name, run in report["runs"].items()}
    scores = {name: per_query(qrels, run, _METRIC) for name, run in runs.items()}
    significance = p_values(qrels, runs, "bi", _METRIC)
    queries = sorted(scores["bi"])
    summary: dict[str, Any] = {"queries": report["queries"], "documents": report["documents"],
                               "metrics": report["metrics"], "versus_bi": {}}
    for name in runs:
        if name == "bi":
            continue
        delta = [scores[name][query] - scores["bi"][query] for query in queries]
        summary["versus_bi"][name] = {f"{_METRIC}_delta": round(sum(delta) / len(delta), 4),
                                      "p_value": significance[name],
                                      "wins": sum(d > 0 for d in delta), "losses": sum(d < 0 for d in delta)}
    return summary


def _plot(result: dict[str, Any], path: Path) -> None:
    domains = sorted(result["domains"])
    names = list(result["domains"][domains[0]]["metrics"])
    figure, axis = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        axis.bar([d + i * width for d in range(len(domains))],
                 [result["domains"][domain]["metrics"][name][_METRIC] for domain in domains], width, label=name)
    axis.set_xticks([d + 0.4 - width / 2 for d in range(len(domains))], domains)
    axis.set_ylabel("nDCG@10 (dev)")
    axis.set_title(f"The shipped cascade on the dev suite ({result['candidates']} candidates)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", nargs="+", choices=sorted(BUILDERS), default=sorted(BUILDERS))
    parser.add_argument("--candidates", type=int, default=20, help="first-stage candidates reranked (CPU default)")
    parser.add_argument("--from-report", type=Path,
                        help="summarise an evaluation this script ran before (its eval.json) instead of running one")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    folders = require_built(args.domains)
    if args.from_report:
        by_name = {report["dataset"]: report for report in orjson.loads(args.from_report.read_bytes())}
        reports = [by_name[f"{folder.name}/dev"] for folder in folders]
    else:
        options = EvalOptions(modes=("bi", "rerank"), split="dev", exact_recall=False, candidates=args.candidates,
                              keep_runs=True)
        with tempfile.TemporaryDirectory(prefix="cascade-dev-suite-") as store:
            settings = Settings(store=StoreSettings(path=Path(store)))
            reports = asyncio.run(run_evaluation(settings, folders, options, BENCH_DIR / "dev_suite" / "eval"))
    result: dict[str, Any] = {"candidates": args.candidates, "split": "dev", "domains": {}, "machine": machine()}
    for folder, report in zip(folders, reports, strict=True):
        qrels = read_qrels(folder, "dev")
        result["domains"][folder.name] = _summary(report, qrels)
        print(folder.name, result["domains"][folder.name]["versus_bi"])
    print(f"wrote {write_result('dev_suite', result)}")
    _plot(result, BENCH_DIR / "dev_suite.png")


if __name__ == "__main__":
    main()
