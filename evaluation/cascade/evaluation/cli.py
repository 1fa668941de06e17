"""The `cascade-eval` command: ranking quality and latency on BEIR folders, through the services."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import get_args

from cascade.contracts.messages import Mode
from cascade.evaluation.harness import EvalOptions
from cascade.evaluation.run import run_evaluation
from cascade.services.log import configure_logging
from cascade.services.settings import Settings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cascade-eval", description=__doc__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--modes", nargs="+", default=["bi", "rerank"], choices=get_args(Mode))
    parser.add_argument("--late-interaction", action="store_true",
                        help="evaluation collections store token vectors (needed by mode colbert)")
    parser.add_argument("--passages", action="store_true",
                        help="evaluation collections split long documents into passages, each found by its best one")
    parser.add_argument("--max-queries", type=int)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--first-stages", nargs="+", choices=["dense", "sparse", "hybrid"], default=["dense"])
    parser.add_argument("--model", help="first-stage model of the evaluation collections (`cascade models list`)")
    parser.add_argument("--no-exact-recall", action="store_true",
                        help="skip encoding the corpus in-process to compare HNSW with exact search")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    options = EvalOptions(modes=tuple(args.modes), max_queries=args.max_queries, concurrency=args.concurrency,
                          model=args.model, exact_recall=not args.no_exact_recall,
                          first_stages=tuple(args.first_stages), late_interaction=args.late_interaction,
                          passages=args.passages)
    asyncio.run(run_evaluation(settings, args.folders, options, args.out))


if __name__ == "__main__":
    main()
