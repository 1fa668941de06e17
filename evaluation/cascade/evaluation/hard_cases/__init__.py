"""Negation and constraint pairs written by the project ("hotels without a pool", "laptops with at least 32 GB"):
each query has a passage that satisfies it and a near-twin that violates it. A model scores a case right when
it ranks the satisfying passage above the violating one (pairwise accuracy). Bi-encoders, which compare two
independent summaries, are expected to fail here; a cross-encoder, which reads both together, should not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

__all__ = ["CONSTRAINTS", "HardCase", "load_hard_cases", "pairwise_accuracy"]

CONSTRAINTS = Path(__file__).with_name("constraints.jsonl")

Scorer = Callable[[str, Sequence[str]], Sequence[float]]
"""Scores of the given passages for one query (higher: more relevant)."""


@dataclass(frozen=True)
class HardCase:
    id: str
    kind: Literal["negation", "constraint"]
    query: str
    satisfies: str
    violates: str


def load_hard_cases(path: Path = CONSTRAINTS) -> list[HardCase]:
    with path.open("rb") as lines:
        return [HardCase(**orjson.loads(line)) for line in lines if line.strip()]


def pairwise_accuracy(cases: Sequence[HardCase], score: Scorer) -> dict[str, float]:
    """Share of cases whose satisfying passage scores above the violating one, per kind and over all."""
    right: dict[str, list[bool]] = {}
    for case in cases:
        satisfies, violates = score(case.query, [case.satisfies, case.violates])
        for key in (case.kind, "all"):
            right.setdefault(key, []).append(bool(satisfies > violates))
    return {key: sum(outcomes) / len(outcomes) for key, outcomes in right.items()}
