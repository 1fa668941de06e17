"""Train Cascade's ColBERT encoder (mode colbert), contrastively or distilling the cascade (see
cascade.evaluation.colbert_training).

    python -m scripts.score_teachers       # first: the candidate lists (cached; `--teachers` alone is enough here)
    python -m scripts.distill              # and for --loss distillation: the cascade's scores of them (cached)
    python -m scripts.train_colbert [--loss contrastive|distillation] [--minutes 30] [--device cuda] [--output DIR]

Contrastive (the default, it measured better) needs only the candidate lists: their positives and the first
stage's hard negatives.

The encoder is saved to --output (default: a folder in the cache); `models/cascade-colbert-minilm-l6` is the one
shipped, replaced by hand once a new one is better on the dev lists.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cascade.evaluation.colbert_training import ColbertConfig, train_colbert
from scripts.distill import CANDIDATE_LISTS, CASCADE_LISTS


def main() -> None:
    defaults = ColbertConfig(teachers=CASCADE_LISTS, output=Path.home() / ".cache" / "cascade" / "students" / "colbert")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=defaults.output)
    parser.add_argument("--base", default=defaults.base,
                        help="starting encoder: a bi-encoder (fresh projection) or a ColBERT folder (continued)")
    parser.add_argument("--loss", choices=["distillation", "contrastive"], default=defaults.loss)
    parser.add_argument("--no-pseudo-queries", dest="pseudo_queries", action="store_false",
                        help="train on labelled queries only")
    parser.add_argument("--minutes", type=float, default=defaults.time_budget_min)
    parser.add_argument("--dim", type=int, default=defaults.dim)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--evaluations", type=int, default=defaults.evaluations)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=defaults.device)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    lists = CASCADE_LISTS if args.loss == "distillation" else CANDIDATE_LISTS
    report = train_colbert(ColbertConfig(
        teachers=lists, output=args.output, base=args.base, loss=args.loss, dim=args.dim,
        time_budget_min=args.minutes, learning_rate=args.learning_rate, evaluations=args.evaluations,
        device=args.device, seed=args.seed, pseudo_queries=args.pseudo_queries))
    print(json.dumps({key: report[key] for key in ("loss", "start", "best", "steps", "lists")}, indent=2))


if __name__ == "__main__":
    main()
