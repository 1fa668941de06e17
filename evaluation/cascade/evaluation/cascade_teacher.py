"""The cascade as a teacher for first stages: each training list's head (its labelled positives, then the first
stage's best) scored by Cascade's reranker and fused with the first stage at the reranker's tuned weight, exactly
as the services rank a candidate set. Scored once and cached: the distilled bi-encoder (Margin-MSE) and the
ColBERT encoder both learn from it.

Dev lists are kept whole and unscored: students are chosen on them by their labels.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cascade.evaluation.teachers import CandidateList, TeacherScores
from cascade.services.encoders import CrossEncoder
from cascade.services.reranker.fusion import fused_scores

__all__ = ["CASCADE_TEACHER", "LIST_HEAD", "list_head", "score_cascade", "teacher_provenance"]

CASCADE_TEACHER = "cascade"
LIST_HEAD = 8
"""Documents per training list the first-stage students learn from (the head the cascade scores)."""


def list_head(item: CandidateList, size: int) -> list[int]:
    """Positions of the documents to score: up to two positives, then the first stage's order."""
    positions = [item.documents.index(doc) for doc in item.positives[:2] if doc in item.documents]
    return (positions + [i for i in range(len(item.documents)) if i not in positions])[:size]


def teacher_provenance(reranker: CrossEncoder, weight: float, size: int) -> dict[str, object]:
    """What names the teacher in a cache and a report: the reranker's folder name (not a machine path)."""
    return {"reranker": Path(reranker.model_id).name, "fusion_weight": weight, "list_size": size}


def score_cascade(scores: TeacherScores, reranker: CrossEncoder, weight: float, size: int) -> TeacherScores:
    """Training lists cut to their head of `size` and scored by the cascade; dev lists as they are."""
    lists = []
    for item in tqdm(scores.lists, desc="cascade teacher", unit="list"):
        if item.split != "train":
            lists.append(replace(item, scores={}))
            continue
        head = item.picked(list_head(item, size))
        cross = reranker.score(item.query, [scores.tables[item.table][row] for row in head.documents])
        first = np.asarray(head.first_stage, dtype=np.float32)
        lists.append(replace(head, scores={CASCADE_TEACHER: fused_scores(cross, first, weight).tolist()}))
    provenance = scores.provenance | {"teacher": teacher_provenance(reranker, weight, size)}
    return TeacherScores(scores.tables, lists, provenance)
