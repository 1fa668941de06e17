"""Train Cascade's ColBERT encoder, contrastively or by distilling the cascade (see evaluation/cascade_teacher.py).

The student is the shipped first stage's transformer (all-MiniLM-L6-v2) with a fresh linear projection to 128
dimensions. Two losses over the same lists (a query and the head of its first-stage candidates):
- "distillation": per list, the softmax of the student's MaxSim scores is trained towards the softmax of the
  cascade's scores (cross-entropy, as the reranker learns), so it learns the cascade's order of the first stage's
  neighbourhood;
- "contrastive": per query, a softmax over every document of the step (its own list's first-stage hard negatives
  and the other lists' documents as in-batch negatives) trained towards its positives (labelled answers, or the
  passage a pseudo-query was cut from), as ColBERT itself was trained.
Checkpoints are chosen on the dev lists by MRR@10 of the student's order of the first stage's top candidates.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from cascade.evaluation.cascade_teacher import CASCADE_TEACHER, LIST_HEAD, list_head
from cascade.evaluation.report import shown_path
from cascade.evaluation.teachers import CandidateList, TeacherScores, dev_figures, encoder_scores
from cascade.evaluation.training_loop import StudentConfig, shuffled_batches, train_loop
from cascade.services.encoders import resolve_model
from cascade.services.encoders.late_interaction import (
    PROJECTION,
    LateInteractionCard,
    LateInteractionEncoder,
    LateInteractionModel,
    maxsim,
    tokenize_documents,
    tokenize_queries,
)

__all__ = ["ColbertConfig", "contrastive_loss", "distillation_loss", "train_colbert"]


@dataclass
class ColbertConfig(StudentConfig):
    dim: int = 128
    query_length: int = 32
    document_length: int = 180
    projection_learning_rate: float = 1e-3
    temperature: float = 1.0
    """The cascade's softmax temperature (distillation)."""
    loss: Literal["distillation", "contrastive"] = "contrastive"
    """Contrastive measured better on the dev lists (the shipped encoder's model card)."""
    list_size: int = LIST_HEAD
    """Contrastive: documents per list (the head the cascade scores for distillation)."""
    pseudo_queries: bool = True
    """Also train on the pseudo-queries (their positive: a rewrite of the passage each was cut from), not only on
    labelled queries; they are the only training queries over Cranfield's and Python's documentation's kinds of
    text."""


def _maxsim_batch(queries: torch.Tensor, documents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MaxSim of each query (queries x tokens x dim) with each document (docs x tokens x dim), padding masked
    out: queries x docs."""
    similarities = torch.einsum("bqd,ntd->bnqt", queries, documents)
    similarities = similarities.masked_fill(~mask[None, :, None, :], -1e4)
    return similarities.max(dim=3).values.sum(dim=2)


def _batch_scores(model: LateInteractionModel, tokenizer: Any, card: LateInteractionCard,
                  batch: Sequence[CandidateList], tables: dict[str, list[str]]) -> torch.Tensor:
    """MaxSim of every query of the batch with every document of the batch (lists' documents in order)."""
    device = model.projection.weight.device
    queries = {k: v.to(device) for k, v in tokenize_queries(tokenizer, card, [item.query for item in batch]).items()}
    documents = {k: v.to(device) for k, v in tokenize_documents(
        tokenizer, card, [tables[item.table][row] for item in batch for row in item.documents]).items()}
    return _maxsim_batch(model(queries), model(documents), documents["attention_mask"].bool())


def distillation_loss(scores: torch.Tensor, batch: Sequence[CandidateList], temperature: float) -> torch.Tensor:
    """Per query, cross-entropy of its own list's MaxSim softmax against the cascade's softmax."""
    losses, start = [], 0
    for row, item in enumerate(batch):
        end = start + len(item.documents)
        teacher = torch.softmax(torch.tensor(item.scores[CASCADE_TEACHER], device=scores.device) / temperature, dim=0)
        losses.append(-(teacher * torch.log_softmax(scores[row, start:end], dim=0)).sum())
        start = end
    return torch.stack(losses).mean()


def contrastive_loss(scores: torch.Tensor, batch: Sequence[CandidateList]) -> torch.Tensor:
    """Per query, cross-entropy of the MaxSim softmax over every document of the batch against uniform weight on
    its positives (the same passage can appear in another list too)."""
    documents = [(item.table, row) for item in batch for row in item.documents]
    target = torch.tensor([[float(table == item.table and row in item.positives) for table, row in documents]
                           for item in batch], device=scores.device)
    target = target / target.sum(dim=1, keepdim=True)
    return -(target * torch.log_softmax(scores, dim=1)).sum(dim=1).mean()


def _loss(model: LateInteractionModel, tokenizer: Any, card: LateInteractionCard, batch: Sequence[CandidateList],
          tables: dict[str, list[str]], config: ColbertConfig) -> torch.Tensor:
    scores = _batch_scores(model, tokenizer, card, batch, tables)
    if config.loss == "contrastive":
        return contrastive_loss(scores, batch)
    return distillation_loss(scores, batch, config.temperature)


def _training_lists(scores: TeacherScores, config: ColbertConfig) -> list[CandidateList]:
    """Distillation: the cascade-scored heads. Contrastive: each training list cut to the same head (its positives,
    then the first stage's order), so both losses see the same documents; no teacher scores needed. Either way
    without the pseudo-queries' lists unless `config.pseudo_queries`."""
    train = [item for item in scores.lists if item.split == "train" and (item.labelled or config.pseudo_queries)]
    if config.loss == "distillation":
        return [item for item in train if CASCADE_TEACHER in item.scores]
    return [item.picked(list_head(item, config.list_size)) for item in train if item.positives]


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
    train = _training_lists(scores, config)

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
              "loss": config.loss,
              "teacher": scores.provenance.get("teacher") if config.loss == "distillation" else None,
              "lists": len(train), "steps": result.steps,
              "train_minutes": result.minutes, "start": result.history[0], "best": result.best,
              "history": result.history, "device": str(device)}
    (config.output / "training_report.json").write_text(json.dumps(report, indent=2))
    return report
