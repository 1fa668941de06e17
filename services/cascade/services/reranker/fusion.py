"""Fusing the cross-encoder's score with the first stage's, per candidate set.

Both scores are z-normalised within the set (their scales differ: logits against cosines), then mixed:
`weight` is the first stage's share, 0 meaning the pure cross-encoder. A small trained reranker can be
confidently wrong on candidates unlike its training data; the first stage's opinion tempers that.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["configured_fusion_weight", "fused_scores"]

Scores = npt.NDArray[np.float32]


def _z(scores: Scores) -> Scores:
    spread = float(scores.std())
    return (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)


def fused_scores(cross: Scores, first_stage: Scores, weight: float) -> Scores:
    if weight == 0:
        return cross
    return ((1 - weight) * _z(cross) + weight * _z(first_stage)).astype(np.float32)


def configured_fusion_weight(setting: float | None, model: str) -> float:
    """The setting if given, else the weight tuned on dev data and saved beside the model (cascade.json)."""
    if setting is not None:
        return setting
    card = Path(model) / "cascade.json"
    return float(json.loads(card.read_text())["fusion_weight"]) if card.is_file() else 0.0
