"""Negation and constraint cases (cascade.evaluation.hard_cases): pairwise accuracy of the first stages and the
reranker.

    python -m scripts.eval_hard_cases [--rerankers shipped=models/cascade-reranker-minilm-l6 student=DIR]

Every bi-encoder of the catalogue fetched on this machine (cosine of query and passage, with the model's
prefixes) and the rerankers named (fp32; default: the shipped one). Writes bench/hard_cases.json (keeping the rows
of models not scored this time) and prints a table.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence

import orjson
from tqdm import tqdm

from cascade.evaluation.hard_cases import HardCase, load_hard_cases, pairwise_accuracy
from cascade.services.encoders import BiEncoder, CrossEncoder
from cascade.services.encoders.catalogue import CATALOGUE, ModelNotFetched, resolve_model
from cascade.services.log import configure_logging
from cascade.services.settings import BUNDLED_RERANKER, bundled_models
from scripts.benchlib import BENCH_DIR, machine, write_result


def bi_encoder_accuracy(name: str, cases: list[HardCase]) -> dict[str, float]:
    encoder = BiEncoder(name, device="cpu")

    def score(query: str, passages: Sequence[str]) -> list[float]:
        return (encoder.encode_documents(list(passages)) @ encoder.encode_queries([query])[0]).tolist()
    return pairwise_accuracy(cases, score)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rerankers", nargs="+", default=[f"shipped={bundled_models() / BUNDLED_RERANKER}"],
                        metavar="NAME=PATH",
                        help="cross-encoders to score (default: the shipped one)")
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    cases = load_hard_cases()
    previous = BENCH_DIR / "hard_cases.json"
    # Rows of models this machine does not have (not fetched, or an earlier reranker) stay from the last run.
    result: dict[str, dict[str, float]] = orjson.loads(previous.read_bytes())["accuracy"] if previous.exists() else {}
    for name in tqdm(list(CATALOGUE), desc="bi-encoders", unit="model"):
        try:
            resolve_model(name)
        except ModelNotFetched:
            continue
        result[f"bi:{name}"] = bi_encoder_accuracy(name, cases)
    for name, path in (entry.split("=", 1) for entry in args.rerankers):
        reranker = CrossEncoder.load(path, device="cpu")
        result[f"reranker:{name}"] = pairwise_accuracy(cases, reranker.score)
    kinds = Counter(case.kind for case in cases)
    path = write_result("hard_cases", {"accuracy": result, "cases": dict(kinds), "machine": machine()})
    print("| model | negation | constraint | all |\n|---|---|---|---|")
    for name, accuracy in result.items():
        print(f"| {name} | {accuracy['negation']:.3f} | {accuracy['constraint']:.3f} | {accuracy['all']:.3f} |")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
