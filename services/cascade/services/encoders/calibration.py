"""Relevance probabilities from a cross-encoder's raw scores: Platt scaling, a logistic curve fitted on judged
(query, candidate) pairs of the dev suite (scripts/calibrate_reranker.py) and stored beside the model in its
cascade.json as {"calibration": {"slope": a, "intercept": b, ...}}.

A raw score only orders one query's candidates: its scale drifts between queries and domains. The probability
P(relevant | score s) = 1 / (1 + exp(-(a * s + b))) is one number a threshold can be set on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["Calibration", "read_calibration"]


@dataclass(frozen=True)
class Calibration:
    slope: float
    intercept: float

    def probabilities(self, scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        logits = np.clip(self.slope * scores.astype(np.float64) + self.intercept, -60.0, 60.0)
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def read_calibration(model: str) -> Calibration | None:
    """The calibration saved beside the model `model` (a folder), or None (a hub name, or none was fitted)."""
    card = Path(model) / "cascade.json"
    if not card.is_file():
        return None
    fitted = json.loads(card.read_text()).get("calibration")
    return Calibration(float(fitted["slope"]), float(fitted["intercept"])) if fitted else None
