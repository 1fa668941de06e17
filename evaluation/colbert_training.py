"""Train Cascade's ColBERT encoder by distilling the cascade (see evaluation/cascade_teacher.py).

The student is the shipped first stage's transformer (all-MiniLM-L6-v2) with a fresh linear projection to 128
dimensions; per list, the softmax of its MaxSim scores is trained towards the softmax of the cascade's scores
(cross-entropy, as the reranker learns), so it learns the cascade's order of the first stage's neighbourhood.
Checkpoints are chosen on the dev lists by MRR@10 of the student's order of the first stage's top candidates.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from evaluation.cascade_teacher import CASCADE_TEACHER
from evaluation.report import shown_path
from evaluation.teachers import CandidateList, TeacherScores, dev_figures, encoder_scores
from evaluation.training_loop import StudentConfig, shuffled_batches, train_loop
from services.encoders import resolve_model
from services.encoders.late_interaction import (
    PROJECTION,
    LateInteractionCard,
    LateInteractionEncoder,
    LateInteractionModel,
    maxsim,
    tokenize_documents,
    tokenize_queries,
)

__all__ = ["ColbertConfig", "train_colbert"]


@dataclass
class ColbertConfig(StudentConfig):
    dim: int = 128
    query_length: int = 32
    document_length: int = 180
    projection_learning_rate: float = 1e-3
    temperature: float = 1.0


def _maxsim_batch(queries: torch.Tensor, documents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MaxSim of one query (tokens x dim) with each document (docs x tokens x dim), padding masked out."""
    similarities = torch.einsum("qd,ntd->nqt", queries, documents)
    similarities = similarities.masked_fill(~mask[:, None, :], -1e4)
    return similarities.max(dim=2).values.sum(dim=1)


def _loss(model: LateInteractionModel, tokenizer: Any, card: LateInteractionCard, batch: Sequence[CandidateList],
          tables: dict[str, list[str]], config: ColbertConfig) -> torch.Tensor:
    device = model.projection.weight.device
    queries = {k: v.to(device) for k, v in tokenize_queries(tokenizer, card, [item.query for item in batch]).items()}
    documents = {k: v.to(device) for k, v in tokenize_documents(
        tokenizer, card, [tables[item.table][row] for item in batch for row in item.documents]).items()}
    query_vectors, document_vectors = model(queries), model(documents)
    mask = documents["attention_mask"].bool()
    losses, start = [], 0
    for query, item in zip(query_vectors, batch, strict=True):
        end = start + len(item.documents)
        scores = _maxsim_batch(query, document_vectors[start:end], mask[start:end])
        teacher = torch.tensor(item.scores[CASCADE_TEACHER], dtype=scores.dtype, device=device)
        target = torch.softmax(teacher / config.temperature, dim=0)
        losses.append(-(target * torch.log_softmax(scores, dim=0)).sum())
        start = end
    return torch.stack(losses).mean()


def _dev(encoder: LateInteractionEncoder, scores: TeacherScores, depth: int) -> dict[str, float]:
    figures = dev_figures(scores.lists, depth, lambda items: encoder_scores(
        items, scores.tables, encoder.encode_documents, encoder.encode_queries, maxsim))
    return {**{f"dev_mrr@10 {source}": value for source, value in figures.items()},
            "dev_mean": float(np.mean(list(figures.values())))}


def train_colbert(config: ColbertConfig) -> dict[str, Any]:
    """Train within the time budget, keep the checkpoint best on dev, save the folder the services load."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    scores = TeacherScores.load(config.teachers)
    device = config.torch_device
    source = resolve_model(config.base)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if (Path(source) / PROJECTION).is_file():  # a ColBERT encoder already: training goes on from it
        model = LateInteractionModel.load(Path(source), config.dim).to(device)
    else:
        model = LateInteractionModel(AutoModel.from_pretrained(source, dtype=torch.float32), config.dim).to(device)
        torch.nn.init.orthogonal_(model.projection.weight)
    model_id = f"cascade/colbert-minilm-l6-{time.strftime('%Y%m%dT%H%M', time.gmtime())}"
    card = LateInteractionCard(model_id, config.dim, query_length=config.query_length,
                               document_length=config.document_length)
    config.output.mkdir(parents=True, exist_ok=True)
    (config.output / "cascade.json").write_text(json.dumps({"late_interaction": asdict(card)}))
    encoder = LateInteractionEncoder(config.output, loaded=(model, tokenizer))
    train = [item for item in scores.lists if item.split == "train" and CASCADE_TEACHER in item.scores]

    result = train_loop(
        model, [{"params": list(model.encoder.parameters()), "weight_decay": 0.01, "peak_lr": config.learning_rate},
                {"params": list(model.projection.parameters()), "weight_decay": 0.0,
                 "peak_lr": config.projection_learning_rate}],
        shuffled_batches(train, config.lists_per_step, rng), len(train) // config.lists_per_step,
        lambda batch: _loss(model, tokenizer, card, batch, scores.tables, config),
        lambda: _dev(encoder, scores, config.dev_candidates),
        config.loop, "train colbert")
    model.save(config.output, tokenizer, card)
    report = {"config": {key: shown_path(value) for key, value in asdict(config).items()}, "model_id": model_id,
              "teacher": scores.provenance.get("teacher"), "lists": len(train), "steps": result.steps,
              "train_minutes": result.minutes, "start": result.history[0], "best": result.best,
              "history": result.history, "device": str(device)}
    (config.output / "training_report.json").write_text(json.dumps(report, indent=2))
    return report
