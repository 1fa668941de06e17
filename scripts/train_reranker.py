"""Distil the teachers into Cascade's cross-encoder (see cascade.evaluation.training for the recipe).

    python -m scripts.score_teachers          # once: the teachers' scores, cached
    python -m scripts.train_reranker [--output DIR] [--base DIR] [--minutes 60] [--device cuda]

The student starts from `--base` (default: the shipped reranker) and is saved to `--output` (default: a folder in
the cache, so the shipped model is replaced only by hand, once the new one is better on the dev lists).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cascade.evaluation.training import TrainingConfig, train_reranker
from cascade.services.settings import BUNDLED_RERANKER, bundled_models
from scripts.score_teachers import DEFAULT_OUTPUT as TEACHERS

SHIPPED = bundled_models() / BUNDLED_RERANKER


def main() -> None:
    defaults = TrainingConfig(teachers=TEACHERS, output=Path.home() / ".cache" / "cascade" / "students" / "reranker",
                              base=str(SHIPPED))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teachers", type=Path, default=defaults.teachers)
    parser.add_argument("--output", type=Path, default=defaults.output)
    parser.add_argument("--base", default=defaults.base, help="starting checkpoint (default: the shipped reranker)")
    parser.add_argument("--minutes", type=float, default=defaults.time_budget_min, help="training time budget")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--label-weight", type=float, default=defaults.label_weight)
    parser.add_argument("--contrastive-pairs", type=int, default=defaults.contrastive_pairs)
    parser.add_argument("--evaluations", type=int, default=defaults.evaluations)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=defaults.device)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    config = TrainingConfig(
        teachers=args.teachers, output=args.output, base=args.base, time_budget_min=args.minutes,
        epochs=args.epochs, max_length=args.max_length, learning_rate=args.learning_rate,
        temperature=args.temperature, label_weight=args.label_weight, contrastive_pairs=args.contrastive_pairs,
        evaluations=args.evaluations, device=args.device, seed=args.seed,
    )
    report = train_reranker(config)
    print(json.dumps({key: report[key] for key in ("start", "best", "counts", "steps", "improved")}, indent=2))


if __name__ == "__main__":
    main()
