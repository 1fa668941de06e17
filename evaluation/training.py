"""Fine-tune a cross-encoder on what it will rerank at serving time.

At serving time the reranker sees the bi-encoder's top 100 over the whole corpus, so every training group
is (query, one positive, negatives) where the negatives are mined by the same bi-encoder over the whole
training corpus (on-topic and off-topic alike), mixed, for WikiQA, with its labelled on-page negatives.
SciFact titles give extra self-supervised groups (title as the query, its abstract as the positive).
The loss is listwise: softmax cross-entropy of the positive against its negatives. Model selection and
the first-stage fusion weight use WikiQA dev scored over its full pool, exactly as at test time.
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from evaluation.beir import BeirSplit, corpus_vectors, exact_top_k, load_split
from evaluation.fusion import best_fusion_weight, fuse
from evaluation.metrics import ranking_metrics
from services.encoders import BiEncoder, CrossEncoder, default_bi_encoder_path

__all__ = ["Group", "TrainingConfig", "build_groups", "train_reranker"]


@dataclass(frozen=True)
class Group:
    query: str
    positive: str
    negatives: tuple[str, ...]


@dataclass
class TrainingConfig:
    data_dir: Path
    output: Path
    base: str = ""
    """Base checkpoint; empty means the bundled all-MiniLM-L6-v2 weights (a fresh 1-logit head on top)."""
    max_length: int = 128
    group_size: int = 8
    groups_per_step: int = 4
    learning_rate: float = 4e-5
    warmup_fraction: float = 0.1
    epochs: int = 4
    time_budget_min: float = 55.0
    evaluations: int = 4
    mined_depth: int = 30
    labelled_negatives: int = 3
    self_supervised_groups: int = 1500
    seed: int = 13
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dev_candidates: int = 100


def _positives(split: BeirSplit) -> dict[str, list[str]]:
    return {query: [doc for doc, score in docs.items() if score >= 1] for query, docs in split.qrels.items()}


def build_groups(split: BeirSplit, bi_encoder: BiEncoder, config: TrainingConfig, rng: random.Random) -> list[Group]:
    """One group per (query, positive): negatives mined from the whole corpus, plus labelled ones if any."""
    texts = dict(zip((doc["doc_id"] for doc in split.corpus), split.texts, strict=True))
    ids = [doc["doc_id"] for doc in split.corpus]
    queries = [query for query in split.queries if _positives(split).get(query)]
    mined = exact_top_k(bi_encoder.encode_queries([split.queries[q] for q in queries]),
                        corpus_vectors(split, bi_encoder), config.mined_depth)
    groups = []
    for query, row in zip(queries, mined, strict=True):
        positives = set(_positives(split)[query])
        labelled = [doc for doc, score in split.qrels[query].items() if score < 1 and doc in texts]
        hard = [ids[i] for i in row if ids[i] not in positives]
        for positive in sorted(positives):
            if positive not in texts:
                continue
            chosen = rng.sample(labelled, min(config.labelled_negatives, len(labelled)))
            pool = [doc for doc in hard if doc not in chosen]
            chosen += pool[: config.group_size - 1 - len(chosen)]
            if len(chosen) == config.group_size - 1:
                groups.append(Group(split.queries[query], texts[positive], tuple(texts[doc] for doc in chosen)))
    return groups


def self_supervised_groups(split: BeirSplit, bi_encoder: BiEncoder, config: TrainingConfig,
                           rng: random.Random) -> list[Group]:
    """Title as the query, the document's body as the positive, bi-encoder neighbours of the title as negatives."""
    candidates = [i for i, doc in enumerate(split.corpus) if len(doc["title"].split()) >= 5 and doc["text"]]
    chosen = rng.sample(candidates, min(config.self_supervised_groups, len(candidates)))
    mined = exact_top_k(bi_encoder.encode_queries([split.corpus[i]["title"] for i in chosen]),
                        corpus_vectors(split, bi_encoder), config.group_size + 2)
    texts = split.texts
    return [Group(split.corpus[i]["title"], split.corpus[i]["text"],
                  tuple(texts[j] for j in row if j != i)[: config.group_size - 1])
            for i, row in zip(chosen, mined, strict=True)]


def rerank_full_pool(encoder: CrossEncoder, split: BeirSplit, bi_encoder: BiEncoder, depth: int
                     ) -> tuple[dict[str, list[tuple[str, float]]], dict[str, list[tuple[str, float]]]]:
    """(first-stage ranking, cross-encoder ranking of the first stage's top `depth`) for every query."""
    ids = [doc["doc_id"] for doc in split.corpus]
    texts = split.texts
    queries = list(split.queries)
    query_vectors = bi_encoder.encode_queries([split.queries[q] for q in queries])
    vectors = corpus_vectors(split, bi_encoder)
    top = exact_top_k(query_vectors, vectors, depth)
    first: dict[str, list[tuple[str, float]]] = {}
    reranked: dict[str, list[tuple[str, float]]] = {}
    for query, query_vector, row in tqdm(list(zip(queries, query_vectors, top, strict=True)), desc="dev rerank",
                                         unit="query", leave=False):
        first[query] = [(ids[i], float(vectors[i] @ query_vector)) for i in row]
        scores = encoder.score(split.queries[query], [texts[i] for i in row])
        reranked[query] = [(ids[i], float(score)) for i, score in zip(row, scores, strict=True)]
    return first, reranked


def _ordered(ranking: dict[str, list[tuple[str, float]]]) -> dict[str, list[tuple[str, float]]]:
    return {query: sorted(hits, key=lambda hit: -hit[1]) for query, hits in ranking.items()}


def evaluate_dev(model: PreTrainedModel, tokenizer: Any, dev: BeirSplit, bi_encoder: BiEncoder,
                 depth: int) -> dict[str, Any]:
    model.eval()  # type: ignore[no-untyped-call]
    # The model being trained, scored through the serving code path (no save/load round trip).
    first, reranked = rerank_full_pool(CrossEncoder(model, tokenizer, "training", max_length=256), dev, bi_encoder,
                                       depth)
    model.train()
    weight, fused_mrr = best_fusion_weight(dev.qrels, first, reranked)
    return {
        "bi_mrr@10": ranking_metrics(dev.qrels, _ordered(first))["mrr@10"],
        "rerank_mrr@10": ranking_metrics(dev.qrels, _ordered(reranked))["mrr@10"],
        "fusion_weight": weight, "fused_mrr@10": fused_mrr,
        "fused_check": ranking_metrics(dev.qrels, fuse(first, reranked, weight))["mrr@10"],
    }


def _batches(groups: list[Group], size: int, rng: random.Random) -> list[list[Group]]:
    shuffled = groups[:]
    rng.shuffle(shuffled)
    return [shuffled[start : start + size] for start in range(0, len(shuffled) - size + 1, size)]


def train_reranker(config: TrainingConfig) -> dict[str, Any]:
    """Train within the time budget, keep the checkpoint best on WikiQA dev, save it with its figures."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    bi_encoder = BiEncoder(device=config.device)
    wikiqa, scifact = config.data_dir / "wikiqa", config.data_dir / "scifact"
    groups = build_groups(load_split(wikiqa, "train"), bi_encoder, config, rng)
    counts = {"wikiqa_train": len(groups)}
    scifact_train = load_split(scifact, "train")
    scifact_groups = build_groups(scifact_train, bi_encoder, config, rng)
    self_groups = self_supervised_groups(scifact_train, bi_encoder, config, rng)
    counts |= {"scifact_train": len(scifact_groups), "scifact_titles": len(self_groups)}
    groups += scifact_groups + self_groups
    dev = load_split(wikiqa, "dev")

    source = config.base or str(default_bi_encoder_path())
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    device = torch.device("cuda" if torch.cuda.is_available() and config.device != "cpu" else "cpu")
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    steps_per_epoch = len(groups) // config.groups_per_step
    total_steps = steps_per_epoch * config.epochs
    budget_s = config.time_budget_min * 60
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"rerank_mrr@10": -1.0}
    best_state: dict[str, torch.Tensor] | None = None
    began = time.monotonic()
    step = 0
    next_eval = 1
    losses: list[float] = []
    with tqdm(total=total_steps, desc="train reranker", unit="step") as bar:
        for epoch in range(config.epochs):
            for batch in _batches(groups, config.groups_per_step, rng):
                progress = max(step / total_steps, (time.monotonic() - began) / budget_s)
                if progress >= 1:
                    break
                scale = min(1.0, progress / config.warmup_fraction) * (1 - progress)
                for group in optimizer.param_groups:
                    group["lr"] = config.learning_rate * scale
                pairs = [(g.query, text) for g in batch for text in (g.positive, *g.negatives)]
                inputs = tokenizer([q for q, _ in pairs], [d for _, d in pairs], padding=True, truncation=True,
                                   max_length=config.max_length, return_tensors="pt").to(device)
                logits = model(**inputs).logits.view(len(batch), config.group_size)
                loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long,
                                                                              device=device))
                loss.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
                losses.append(loss.item())
                step += 1
                bar.update()
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", epoch=epoch)
                if progress >= next_eval / config.evaluations or step == total_steps:
                    next_eval += 1
                    figures = evaluate_dev(model, tokenizer, dev, bi_encoder, config.dev_candidates)
                    figures |= {"step": step, "epoch": epoch, "minutes": (time.monotonic() - began) / 60,
                                "loss": float(np.mean(losses[-100:]))}
                    history.append(figures)
                    tqdm.write(f"dev: {figures}")
                    if figures["rerank_mrr@10"] > best["rerank_mrr@10"]:
                        best, best_state = figures, copy.deepcopy(model.state_dict())
            else:
                continue
            break
    if best_state is None or not history or history[-1]["step"] != step:
        figures = evaluate_dev(model, tokenizer, dev, bi_encoder, config.dev_candidates)
        figures |= {"step": step, "minutes": (time.monotonic() - began) / 60}
        history.append(figures)
        if figures["rerank_mrr@10"] > best["rerank_mrr@10"]:
            best, best_state = figures, copy.deepcopy(model.state_dict())
    assert best_state is not None
    model.load_state_dict(best_state)
    config.output.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(config.output)  # fp16 on disk (half the size); loaded as fp32 on CPU
    tokenizer.save_pretrained(config.output)
    report = {
        "config": {key: os.path.relpath(value) if isinstance(value, Path) else value
                   for key, value in asdict(config).items()},
        "groups": counts, "steps": step, "train_minutes": (time.monotonic() - began) / 60,
        "best": best, "history": history, "device": str(device),
    }
    (config.output / "cascade.json").write_text(json.dumps({"fusion_weight": best["fusion_weight"]}, indent=2))
    (config.output / "training_report.json").write_text(json.dumps(report, indent=2))
    return report
