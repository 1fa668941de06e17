"""The cheaper answers' training: the cascade as teacher, Margin-MSE, and short runs of a tiny bi-encoder and a tiny
ColBERT encoder through the real training loop, loaded back through the serving encoders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cascade.evaluation.bi_distillation import DistillationConfig, distil_bi_encoder, margin_mse
from cascade.evaluation.cascade_teacher import CASCADE_TEACHER, list_head, score_cascade
from cascade.evaluation.colbert_training import ColbertConfig, contrastive_loss, train_colbert
from cascade.evaluation.first_stage_gap import gap_recovered
from cascade.evaluation.teachers import CandidateList, TeacherScores
from cascade.services.encoders import BiEncoder, CrossEncoder, LateInteractionEncoder

TEXTS = [f"passage {i} about {topic}" for i, topic in enumerate(
    ["rivers", "mountains", "volcanoes", "deserts", "glaciers", "oceans", "forests", "islands"])]


def _lists() -> TeacherScores:
    """Training lists (the answer first) and dev lists over one small table."""
    lists = []
    for i in range(8):
        documents = [i, *[j for j in range(8) if j != i][:4]]
        for split in ("train", "dev"):
            lists.append(CandidateList(f"toy/{split}", split, "toy", f"where are the {TEXTS[i].split()[-1]}",
                                       documents, [i], True, [0.5, 0.4, 0.3, 0.2, 0.1], {}))
    return TeacherScores({"toy": TEXTS}, lists, {"teachers": {}})


def test_margin_mse_counts_margins_not_levels() -> None:
    teacher = torch.tensor([3.0, 1.0, -2.0])
    assert margin_mse(teacher + 7.5, teacher).item() == pytest.approx(0.0)  # a shift changes no margin
    assert margin_mse(teacher.flip(0), teacher).item() > 1.0


def test_the_gap_recovered_is_the_students_share_of_the_teachers_lead() -> None:
    assert gap_recovered(0.60, 0.66, 0.70) == pytest.approx(0.6)
    assert gap_recovered(0.60, 0.58, 0.70) == pytest.approx(-0.2)
    assert gap_recovered(0.60, 0.65, 0.60) is None  # no lead to recover


def test_the_cascade_scores_each_training_lists_head_as_served(tiny_cross_encoder: Path) -> None:
    scores = _lists()
    item = scores.lists[0]
    assert list_head(CandidateList(**{**item.__dict__, "positives": [item.documents[3]]}), 3)[0] == 3
    reranker = CrossEncoder.load(str(tiny_cross_encoder), device="cpu")
    taught = score_cascade(scores, reranker, 0.3, size=3)
    train = [found for found in taught.lists if found.split == "train"]
    assert all(len(found.documents) == 3 and found.documents[0] == found.positives[0] for found in train)
    head = train[0]
    cross = reranker.score(head.query, [TEXTS[row] for row in head.documents])
    first = np.asarray(head.first_stage)
    expected = 0.7 * (cross - cross.mean()) / cross.std() + 0.3 * (first - first.mean()) / first.std()
    assert head.scores[CASCADE_TEACHER] == pytest.approx(expected.tolist(), abs=1e-5)  # the services' fusion
    assert all(not found.scores for found in taught.lists if found.split == "dev")
    assert taught.provenance["teacher"] == {"reranker": tiny_cross_encoder.name, "fusion_weight": 0.3,
                                            "list_size": 3}


def _taught(tmp_path: Path) -> Path:
    scores = _lists()
    for item in scores.lists:
        if item.split == "train":
            item.scores[CASCADE_TEACHER] = [2.0, 0.5, 0.0, -0.5, -1.0]
    path = tmp_path / "cascade.json"
    scores.save(path)
    return path


def test_a_short_margin_mse_run_saves_a_bi_encoder_the_services_load(tiny_bi_encoder: Path, tmp_path: Path) -> None:
    output = tmp_path / "student"
    report = distil_bi_encoder(DistillationConfig(teachers=_taught(tmp_path), output=output,
                                                  base=str(tiny_bi_encoder), lists_per_step=2, epochs=1,
                                                  time_budget_min=10.0, evaluations=1, device="cpu"))
    assert report["steps"] == 4 and report["start"]["step"] == 0 and "scale" in report["best"]
    card = json.loads((output / "cascade.json").read_text())
    student = BiEncoder(str(output), device="cpu")
    assert student.model_id == card["model_id"] == report["model_id"]
    assert student.model_id.startswith("cascade/minilm-l6-distilled-")  # a new model id: a new content hash
    assert student.encode_queries(["rivers"]).shape == (1, 32)


def test_a_short_colbert_run_saves_an_encoder_the_services_load(tiny_bi_encoder: Path, tmp_path: Path) -> None:
    output = tmp_path / "colbert"
    report = train_colbert(ColbertConfig(teachers=_taught(tmp_path), output=output, base=str(tiny_bi_encoder),
                                         loss="distillation", dim=8, lists_per_step=2, epochs=1,
                                         time_budget_min=10.0, evaluations=1, device="cpu"))
    assert report["steps"] == 4 and report["best"]["dev_mean"] >= report["start"]["dev_mean"]
    encoder = LateInteractionEncoder(output, device="cpu")
    [query] = encoder.encode_queries(["rivers"])
    [document] = encoder.encode_documents([TEXTS[0]])
    assert query.shape == (encoder.card.query_length, 8)  # padded with [MASK] tokens, all scored
    assert document.shape[1] == 8 and np.allclose(np.linalg.norm(document, axis=1), 1.0, atol=1e-3)
    again = train_colbert(ColbertConfig(teachers=_taught(tmp_path), output=tmp_path / "more", base=str(output),
                                        dim=8, lists_per_step=2, epochs=1, time_budget_min=10.0, evaluations=1,
                                        device="cpu"))
    assert again["start"]["dev_mean"] == pytest.approx(report["best"]["dev_mean"])  # it went on from there


def test_a_contrastive_colbert_run_learns_from_positives_without_teacher_scores(tiny_bi_encoder: Path,
                                                                                tmp_path: Path) -> None:
    lists = _lists()
    for item in lists.lists[8::2]:  # the last four training lists stand for pseudo-queries, left out here
        item.labelled = False
    path = tmp_path / "lists.json"
    lists.save(path)  # no cascade scores: only the positives and the first stage's candidates
    report = train_colbert(ColbertConfig(teachers=path, output=tmp_path / "contrastive", base=str(tiny_bi_encoder),
                                         loss="contrastive", dim=8, lists_per_step=2, epochs=1, time_budget_min=10.0,
                                         evaluations=1, device="cpu", pseudo_queries=False))
    assert report["loss"] == "contrastive" and report["teacher"] is None
    assert report["lists"] == 4 and report["steps"] == 2 and report["history"][-1]["loss"] > 0
    assert LateInteractionEncoder(tmp_path / "contrastive", device="cpu").encode_queries(["rivers"])[0].shape[1] == 8


def test_the_contrastive_loss_targets_a_querys_positives_among_every_document_of_the_step() -> None:
    lists = [item for item in _lists().lists if item.split == "train"][:2]  # queries 0 and 1: each list holds both
    assert [item.documents for item in lists] == [[0, 1, 2, 3, 4], [1, 0, 2, 3, 4]]
    scores = torch.full((2, 10), -5.0)
    scores[0, [0, 6]] = 5.0  # query 0's answer, in its own list and in the other one (both count)
    scores[1, [1, 5]] = 5.0
    assert contrastive_loss(scores, lists).item() == pytest.approx(np.log(2), abs=1e-3)  # its least: two copies
    scores[0, 6] = -5.0  # its answer as it appears in the other list scored low: still a positive, so penalised
    assert 1.0 < contrastive_loss(scores, lists).item() < 5.0
    scores[0, [0, 1]] = torch.tensor([-5.0, 5.0])  # an in-batch negative (query 1's answer) ranked first
    assert contrastive_loss(scores, lists).item() > 5.0
