"""Fits the shipped reranker's calibration (Platt scaling) on the dev suite's dev splits and stores it beside the
model, so every reranked hit carries a relevance probability (`cascade.services.encoders.calibration`).

    python -m scripts.calibrate_reranker [--first-stage minilm] [--candidates 20]

The pairs are what the reranker sees in service: each dev query's top `candidates` from the first stage (the
lists `scripts.eval_generalisation first-stages` cached), scored by the cross-encoder (cached too), labelled 1
where the qrels judge the document relevant and 0 otherwise (unjudged counts as not relevant, as in the metrics).
One logistic curve is fitted on every domain's pairs together (scikit-learn). Whether it holds on a domain it was
not fitted on is measured by leaving each domain out in turn: expected calibration error (ECE, 10 equal-width
bins) and log loss of the held-out domain's probabilities, against the raw score's plain sigmoid. Writes
bench/calibration.json, bench/calibration.png (reliability diagram) and the model's cascade.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from cascade.evaluation.model_card import with_calibration
from cascade.evaluation.suite import Domain, cross_scores
from cascade.services.encoders import Calibration, CrossEncoder
from cascade.services.settings import bundled_models
from scripts.benchlib import BENCH_DIR, machine, write_result
from scripts.eval_generalisation import RERANKER, load_lists, suite_domains

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the file backend

BINS = 10
RAW_SIGMOID = Calibration(1.0, 0.0)
"""The raw score read as a logit: what the fitted curve is compared with."""
Pairs = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def domain_pairs(domain: Domain, first_stage: str, cross: CrossEncoder, candidates: int) -> Pairs:
    """The raw cross-encoder scores of each dev query's top candidates, and their labels."""
    text, qrels = domain.text_of(), domain.qrels["dev"]
    scores: list[float] = []
    labels: list[int] = []
    for query, hits in load_lists(domain.name, "dev", first_stage).items():
        head = [doc for doc, _ in hits[:candidates]]
        scores += cross_scores(cross, domain.queries["dev"][query], [text[doc] for doc in head]).tolist()
        labels += [int(qrels.get(query, {}).get(doc, 0) >= 1) for doc in head]
    return np.array(scores, dtype=np.float32), np.array(labels, dtype=np.int64)


def fit(scores: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> Calibration:
    model = LogisticRegression(C=1e6).fit(scores.reshape(-1, 1), labels)
    return Calibration(float(model.coef_[0][0]), float(model.intercept_[0]))


def _bins(probabilities: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """Each probability's equal-width bin."""
    return np.minimum((probabilities * BINS).astype(np.int64), BINS - 1)


def ece(probabilities: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> float:
    """Expected calibration error: per equal-width bin, |mean probability - share relevant|, weighted by size."""
    bins = _bins(probabilities)
    gaps = [abs(float(probabilities[bins == b].mean()) - float(labels[bins == b].mean())) * int((bins == b).sum())
            for b in range(BINS) if (bins == b).any()]
    return sum(gaps) / len(labels)


def _figures(probabilities: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> dict[str, float]:
    return {"ece": round(ece(probabilities, labels), 4),
            "log_loss": round(float(log_loss(labels, probabilities.astype(np.float64), labels=[0, 1])), 4)}


def held_out(pairs: dict[str, Pairs]) -> dict[str, Any]:
    """Each domain's probabilities from a curve fitted on the other domains, against the raw sigmoid."""
    figures: dict[str, Any] = {}
    for name, (scores, labels) in pairs.items():
        others = [other for other in pairs if other != name]
        curve = fit(np.concatenate([pairs[o][0] for o in others]), np.concatenate([pairs[o][1] for o in others]))
        figures[name] = {"pairs": len(labels), "relevant_share": round(float(labels.mean()), 4),
                         "raw_sigmoid": _figures(RAW_SIGMOID.probabilities(scores), labels),
                         "calibrated_without_this_domain": _figures(curve.probabilities(scores), labels)}
    return figures


def _plot(scores: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], curve: Calibration, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, probabilities in (("raw sigmoid", RAW_SIGMOID.probabilities(scores)),
                                ("calibrated", curve.probabilities(scores))):
        bins = _bins(probabilities)
        used = [b for b in range(BINS) if (bins == b).sum() >= 20]
        axis.plot([probabilities[bins == b].mean() for b in used], [labels[bins == b].mean() for b in used], "o-",
                  label=name)
    axis.plot([0, 1], [0, 1], "k:", label="perfect")
    axis.set_xlabel("predicted probability (bins of 20+ pairs)")
    axis.set_ylabel("share judged relevant")
    axis.set_title("Reranker calibration, dev suite (dev splits)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--first-stage", default="minilm", help="the first stage whose candidates are scored")
    parser.add_argument("--candidates", type=int, default=20)
    args = parser.parse_args()
    folder = bundled_models() / RERANKER
    cross = CrossEncoder.load(str(folder), device="cpu")
    pairs = {domain.name: domain_pairs(domain, args.first_stage, cross, args.candidates)
             for domain in suite_domains()}
    scores = np.concatenate([scores for scores, _ in pairs.values()])
    labels = np.concatenate([labels for _, labels in pairs.values()])
    curve = fit(scores, labels)
    provenance = {"fitted_on": "dev splits of the dev suite's six domains (scripts/build_dev_suite.py)",
                  "first_stage": args.first_stage,
                  "candidates": args.candidates, "pairs": len(labels), "relevant": int(labels.sum())}
    card_path = folder / "cascade.json"
    card = json.loads(card_path.read_text())
    card["calibration"] = {"slope": round(curve.slope, 6), "intercept": round(curve.intercept, 6), **provenance}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    with_calibration(folder)
    result = {"calibration": card["calibration"], "all_domains": {
                  "raw_sigmoid": _figures(RAW_SIGMOID.probabilities(scores), labels),
                  "calibrated": _figures(curve.probabilities(scores), labels)},
              "held_out_domains": held_out(pairs), "machine": machine()}
    print(json.dumps(result["held_out_domains"], indent=1))
    print(f"wrote {card_path} and {write_result('calibration', result)}")
    _plot(scores, labels, curve, BENCH_DIR / "calibration.png")


if __name__ == "__main__":
    main()
