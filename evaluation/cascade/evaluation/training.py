"""Train Cascade's cross-encoder by distillation: the student reads candidate lists as it will at serving time (the
first stage's top candidates, see cascade.evaluation.teachers) and learns the teachers' ordering of each list.

Loss, per list: cross-entropy of the student's softmax against a soft target, the teachers' ensemble softmaxed
at `temperature`, mixed (`label_weight`) with the labelled positives where a list has labels. Pseudo-query lists
are taught by the teachers alone (their answers are rewritten passages: a hard label could teach the student
to spot the rewriting). Negation and constraint pairs (cascade.evaluation.hard_cases.templates) add lists of two
whose target is the satisfying passage. Checkpoints are chosen on the dev lists (WikiQA dev questions and
held-out SciFact train claims, reranking the first stage's top `dev_candidates`); the first-stage fusion weight
is tuned there too.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from cascade.evaluation.fusion import WEIGHTS
from cascade.evaluation.hard_cases.templates import contrastive_pairs
from cascade.evaluation.report import shown_path
from cascade.evaluation.teachers import CandidateList, TeacherScores, dev_lists, ensemble, list_mrr
from cascade.evaluation.training_loop import LoopConfig, train_loop
from cascade.services.encoders import CrossEncoder
from cascade.services.reranker.fusion import fused_scores

__all__ = ["TrainingConfig", "TrainingList", "train_reranker", "training_lists"]


@dataclass
class TrainingConfig:
    teachers: Path
    """The cached teacher lists (python -m scripts.score_teachers)."""
    output: Path
    base: str
    """Starting checkpoint: a cross-encoder folder, or a bi-encoder's (a fresh 1-logit head on top)."""
    max_length: int = 192
    list_size: int = 8
    lists_per_step: int = 4
    pairs_per_step: int = 2
    contrastive_pairs: int = 3000
    temperature: float = 1.0
    label_weight: float = 0.5
    learning_rate: float = 3e-5
    warmup_fraction: float = 0.05
    epochs: int = 3
    time_budget_min: float = 60.0
    evaluations: int = 3
    dev_candidates: int = 20
    seed: int = 13
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass(frozen=True)
class TrainingList:
    query: str
    documents: tuple[str, ...]
    target: tuple[float, ...]
    """The distribution the student's softmax over `documents` is trained towards."""


def _softmax(values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    shifted = np.exp(values - values.max())
    normalised: np.ndarray[Any, np.dtype[np.float64]] = shifted / shifted.sum()
    return normalised


def _sample(item: CandidateList, teacher: np.ndarray[Any, np.dtype[np.float64]], size: int,
            rng: random.Random) -> list[int]:
    """Positions to train on: up to two positives, the teachers' top two, the rest drawn at random."""
    positions = [item.documents.index(doc) for doc in item.positives[:2]]
    positions += [int(i) for i in np.argsort(-teacher) if int(i) not in positions][: 2]
    rest = [i for i in range(len(item.documents)) if i not in positions]
    return positions + rng.sample(rest, min(size - len(positions), len(rest)))


def training_lists(scores: TeacherScores, weights: dict[str, float], config: TrainingConfig, rng: random.Random
                   ) -> list[TrainingList]:
    """One list per training query, its documents sampled afresh on each call (so each epoch differs)."""
    made = []
    for item in scores.lists:
        if item.split != "train":
            continue
        teacher = ensemble(item, weights)
        chosen = _sample(item, teacher, config.list_size, rng)
        target = _softmax(teacher[chosen] / config.temperature)
        if item.labelled:
            labels = np.array([float(item.documents[i] in item.positives) for i in chosen])
            target = (1 - config.label_weight) * target + config.label_weight * labels / labels.sum()
        texts = scores.tables[item.table]
        made.append(TrainingList(item.query, tuple(texts[item.documents[i]] for i in chosen), tuple(target)))
    return made


def _pair_lists(config: TrainingConfig, rng: random.Random) -> list[TrainingList]:
    return [TrainingList(pair.query, (pair.satisfies, pair.violates), (1.0, 0.0))
            for pair in contrastive_pairs(config.contrastive_pairs, rng)]


def _dev_scores(encoder: CrossEncoder, lists: Sequence[CandidateList], tables: dict[str, list[str]]
                ) -> list[np.ndarray[Any, np.dtype[np.float64]]]:
    return [np.asarray(encoder.score(item.query, [tables[item.table][doc] for doc in item.documents]),
                       dtype=np.float64)
            for item in tqdm(lists, desc="dev rerank", unit="query", leave=False)]


def evaluate_dev(model: PreTrainedModel, tokenizer: Any, scores: TeacherScores, depth: int) -> dict[str, Any]:
    """Dev MRR@10 per source of the first stage, the student alone and fused with the first stage at the weight
    best on dev (mean over sources); `rerank_mean` is what checkpoints are chosen by."""
    model.eval()  # type: ignore[no-untyped-call]
    # The model being trained, scored through the serving code path (no save/load round trip).
    encoder = CrossEncoder(model, tokenizer, "training", max_length=256)
    by_source = {source: [item.head(depth) for item in items]
                 for source, items in dev_lists(scores.lists).items()}
    student = {source: _dev_scores(encoder, items, scores.tables) for source, items in by_source.items()}
    model.train()
    first = {source: [np.asarray(item.first_stage) for item in items] for source, items in by_source.items()}

    def fused(weight: float) -> dict[str, float]:
        return {source: list_mrr(items, [fused_scores(cross.astype(np.float32), bi.astype(np.float32), weight)
                                         .astype(np.float64)
                                         for cross, bi in zip(student[source], first[source], strict=True)])
                for source, items in by_source.items()}

    by_weight = {weight: fused(weight) for weight in WEIGHTS}
    weight = max(WEIGHTS, key=lambda w: (np.mean(list(by_weight[w].values())), -w))
    rerank = {source: list_mrr(items, student[source]) for source, items in by_source.items()}
    return {"bi_mrr@10": {source: list_mrr(items, first[source]) for source, items in by_source.items()},
            "rerank_mrr@10": rerank, "rerank_mean": float(np.mean(list(rerank.values()))),
            "fusion_weight": weight, "fused_mrr@10": by_weight[weight]}


def _load(config: TrainingConfig, device: torch.device) -> tuple[PreTrainedModel, Any]:
    tokenizer = AutoTokenizer.from_pretrained(config.base)
    model = AutoModelForSequenceClassification.from_pretrained(config.base, num_labels=1, dtype=torch.float32)
    return model.to(device).train(), tokenizer


def _batches(lists: list[TrainingList], pairs: list[TrainingList], config: TrainingConfig, rng: random.Random
             ) -> list[list[TrainingList]]:
    """Steps of `lists_per_step` teacher lists and `pairs_per_step` contrastive pairs."""
    rng.shuffle(lists)
    rng.shuffle(pairs)
    steps = len(lists) // config.lists_per_step
    return [lists[i * config.lists_per_step : (i + 1) * config.lists_per_step]
            + pairs[(i * config.pairs_per_step) % max(len(pairs), 1) :][: config.pairs_per_step]
            for i in range(steps)]


def _loss(model: PreTrainedModel, tokenizer: Any, batch: list[TrainingList], config: TrainingConfig,
          device: torch.device) -> torch.Tensor:
    """Mean over the batch's lists of the cross-entropy between each list's target and the student's softmax."""
    inputs = tokenizer([item.query for item in batch for _ in item.documents],
                       [text for item in batch for text in item.documents], padding=True, truncation=True,
                       max_length=config.max_length, return_tensors="pt").to(device)
    logits = model(**inputs).logits.view(-1)
    losses, start = [], 0
    for item in batch:
        end = start + len(item.documents)
        target = torch.tensor(item.target, dtype=logits.dtype, device=device)
        losses.append(-(target * torch.log_softmax(logits[start:end], dim=0)).sum())
        start = end
    return torch.stack(losses).mean()


def train_reranker(config: TrainingConfig) -> dict[str, Any]:
    """Train within the time budget, keep the checkpoint best on the dev lists (by pure rerank MRR@10), save it
    with its figures. The starting checkpoint is evaluated first, so the report says whether training helped."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    scores = TeacherScores.load(config.teachers)
    weights = scores.provenance["weights"]
    device = torch.device("cuda" if torch.cuda.is_available() and config.device != "cpu" else "cpu")
    model, tokenizer = _load(config, device)
    pairs = _pair_lists(config, rng)
    counts = {"lists": sum(item.split == "train" for item in scores.lists), "pairs": len(pairs)}

    def evaluate() -> dict[str, Any]:
        figures = evaluate_dev(model, tokenizer, scores, config.dev_candidates)
        return figures | {"dev_mean": figures["rerank_mean"]}

    result = train_loop(
        model, [{"params": list(model.parameters()), "weight_decay": 0.01, "peak_lr": config.learning_rate}],
        lambda: _batches(training_lists(scores, weights, config, rng), pairs, config, rng),
        counts["lists"] // config.lists_per_step, lambda batch: _loss(model, tokenizer, batch, config, device),
        evaluate, LoopConfig(config.time_budget_min, config.epochs, config.evaluations, config.warmup_fraction),
        "distil reranker")
    config.output.mkdir(parents=True, exist_ok=True)
    # fp16 on disk (half the size); loaded as fp32 on CPU
    model.half().save_pretrained(config.output)  # type: ignore[no-untyped-call]
    tokenizer.save_pretrained(config.output)
    report = {
        "config": {key: shown_path(value) for key, value in asdict(config).items()},
        "teachers": scores.provenance, "counts": counts, "steps": result.steps, "train_minutes": result.minutes,
        "start": result.history[0], "best": result.best, "history": result.history,
        "improved": result.best["step"] > 0, "device": str(device),
    }
    (config.output / "cascade.json").write_text(json.dumps({"fusion_weight": result.best["fusion_weight"]},
                                                           indent=2))
    (config.output / "training_report.json").write_text(json.dumps(report, indent=2))
    return report
