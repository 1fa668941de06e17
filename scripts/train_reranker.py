"""Fine-tune Cascade's cross-encoder (see evaluation/training.py for the recipe).

    python -m scripts.train_reranker [--output models/cascade-reranker-minilm-l6] [--minutes 55] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluation.training import TrainingConfig, train_reranker
from scripts.benchlib import DATA_DIR, ROOT


def main() -> None:
    defaults = TrainingConfig(data_dir=DATA_DIR, output=ROOT / "models" / "cascade-reranker-minilm-l6")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=defaults.data_dir)
    parser.add_argument("--output", type=Path, default=defaults.output)
    parser.add_argument("--base", default=defaults.base, help="base checkpoint (default: bundled MiniLM-L6)")
    parser.add_argument("--minutes", type=float, default=defaults.time_budget_min, help="training time budget")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--self-supervised-groups", type=int, default=defaults.self_supervised_groups)
    parser.add_argument("--evaluations", type=int, default=defaults.evaluations)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=defaults.device)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    config = TrainingConfig(
        data_dir=args.data, output=args.output, base=args.base, time_budget_min=args.minutes, epochs=args.epochs,
        max_length=args.max_length, learning_rate=args.learning_rate,
        self_supervised_groups=args.self_supervised_groups, evaluations=args.evaluations, device=args.device,
        seed=args.seed,
    )
    report = train_reranker(config)
    print(json.dumps({"best": report["best"], "groups": report["groups"], "steps": report["steps"],
                      "train_minutes": round(report["train_minutes"], 1)}, indent=2))


if __name__ == "__main__":
    main()
