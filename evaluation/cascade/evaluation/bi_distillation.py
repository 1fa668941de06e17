"""Distil the cascade into the first stage: a bi-encoder student trained with Margin-MSE.

For a query and two of its candidates, the student's margin s(q, d_i) - s(q, d_j) (scaled cosines) is regressed
on the teacher's margin t(q, d_i) - t(q, d_j), where the teacher is the cascade (evaluation/cascade_teacher.py).
Every pair of a list counts (the positive against each mined negative, and the negatives among themselves), so
the student learns the cascade's whole ordering of the first stage's neighbourhood, not only where the answer
goes. The cosine scale is learnt with the encoder (a cosine margin lives in [-2, 2], the teacher's in z units).

Checkpoints are chosen on the dev lists (WikiQA dev, held-out SciFact train claims) by MRR@10 of the student's
order of the first stage's top `dev_candidates`; the test splits are only read by `evaluate_first_stages`.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from cascade.evaluation.cascade_teacher import CASCADE_TEACHER
from cascade.evaluation.report import shown_path
from cascade.evaluation.teachers import CandidateList, TeacherScores, dev_figures, encoder_scores
from cascade.evaluation.training_loop import StudentConfig, shuffled_batches, train_loop
from cascade.services.encoders import BiEncoder, resolve_model
from cascade.services.encoders.bi_encoder import ModelCard, embed, read_model_card

__all__ = ["DistillationConfig", "distil_bi_encoder", "margin_mse"]


@dataclass
class DistillationConfig(StudentConfig):
    query_length: int = 64
    document_length: int = 192
    scale_learning_rate: float = 1e-2
    initial_scale: float = 10.0


def margin_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the student's and the teacher's margins over every ordered pair of a list."""
    student_margins = student[:, None] - student[None, :]
    teacher_margins = teacher[:, None] - teacher[None, :]
    return ((student_margins - teacher_margins) ** 2).mean()


class _Student(torch.nn.Module):
    """The bi-encoder and the learnt scale of its cosines (a cosine margin lives in [-2, 2], the teacher's in z
    units)."""

    def __init__(self, encoder: PreTrainedModel, initial_scale: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(initial_scale)))


def _dev(student: _Student, tokenizer: Any, config: DistillationConfig, scores: TeacherScores) -> dict[str, float]:
    """Dev figures of the model being trained, encoded through the serving `BiEncoder` (its base's pooling and
    prefixes), each list's documents scored by cosine."""
    encoder = BiEncoder(config.base, loaded=(student.encoder, tokenizer), max_length=256)

    figures = dev_figures(scores.lists, config.dev_candidates, lambda items: encoder_scores(
        items, scores.tables, encoder.encode_documents, encoder.encode_queries, np.dot))
    return {**{f"dev_mrr@10 {source}": value for source, value in figures.items()},
            "dev_mean": float(np.mean(list(figures.values()))), "scale": student.log_scale.exp().item()}


def _loss(student: _Student, tokenizer: Any, card: ModelCard, batch: Sequence[CandidateList],
          tables: dict[str, list[str]], config: DistillationConfig) -> torch.Tensor:
    device = student.log_scale.device
    queries = tokenizer([card.query_prefix + item.query for item in batch], padding=True, truncation=True,
                        max_length=config.query_length, return_tensors="pt").to(device)
    documents = tokenizer([card.document_prefix + tables[item.table][row] for item in batch for row in item.documents],
                          padding=True, truncation=True, max_length=config.document_length,
                          return_tensors="pt").to(device)
    query_vectors = embed(student.encoder, queries, card.pooling)
    document_vectors = embed(student.encoder, documents, card.pooling)
    losses, start = [], 0
    for query, item in zip(query_vectors, batch, strict=True):
        end = start + len(item.documents)
        scores = student.log_scale.exp() * (document_vectors[start:end] @ query)
        teacher = torch.tensor(item.scores[CASCADE_TEACHER], dtype=scores.dtype, device=device)
        losses.append(margin_mse(scores, teacher))
        start = end
    return torch.stack(losses).mean()


def distil_bi_encoder(config: DistillationConfig) -> dict[str, Any]:
    """Train within the time budget, keep the checkpoint best on dev, save it with its model card (pooling,
    prefixes, a model id naming this training) and its training report."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    scores = TeacherScores.load(config.teachers)
    device = config.torch_device
    source = resolve_model(config.base)
    card = read_model_card(Path(source))
    tokenizer = AutoTokenizer.from_pretrained(source)
    student = _Student(AutoModel.from_pretrained(source, dtype=torch.float32), config.initial_scale).to(device)
    train = [item for item in scores.lists if item.split == "train" and CASCADE_TEACHER in item.scores]

    result = train_loop(
        student, [{"params": list(student.encoder.parameters()), "weight_decay": 0.01, "peak_lr": config.learning_rate},
                  {"params": [student.log_scale], "weight_decay": 0.0, "peak_lr": config.scale_learning_rate}],
        shuffled_batches(train, config.lists_per_step, rng), len(train) // config.lists_per_step,
        lambda batch: _loss(student, tokenizer, card, batch, scores.tables, config),
        lambda: _dev(student, tokenizer, config, scores),
        config.loop, "distil first stage")
    model_id = f"cascade/minilm-l6-distilled-{time.strftime('%Y%m%dT%H%M', time.gmtime())}"
    config.output.mkdir(parents=True, exist_ok=True)
    student.encoder.half().save_pretrained(config.output)  # type: ignore[no-untyped-call]  # fp16 on disk
    tokenizer.save_pretrained(config.output)
    (config.output / "cascade.json").write_text(json.dumps({
        "pooling": card.pooling, "query_prefix": card.query_prefix, "document_prefix": card.document_prefix,
        "model_id": model_id}, indent=2))
    report = {"config": {key: shown_path(value) for key, value in asdict(config).items()}, "model_id": model_id,
              "teacher": scores.provenance.get("teacher"), "lists": len(train), "steps": result.steps,
              "train_minutes": result.minutes, "start": result.history[0], "best": result.best,
              "history": result.history, "improved": result.best["step"] > 0, "device": str(device)}
    (config.output / "training_report.json").write_text(json.dumps(report, indent=2))
    return report
