"""The model card of a reranker distilled by evaluation/cascade/evaluation/training.py, from its training report and its evaluation
through the services (scripts/bench_reranker.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cascade.services.encoders.catalogue import CATALOGUE

__all__ = ["write_model_card"]



def _teacher(name: str) -> str:
    """A teacher as the catalogue names it, with its licence (BM25 is no model)."""
    spec = CATALOGUE.get(name)
    return f"{spec.model_id}, {spec.licence}" if spec else "BM25 (Qdrant's tokenizer), no model"


def _dev_row(row: dict[str, Any]) -> str:
    loss = f"{row['loss']:.3f}" if "loss" in row else "-"
    sources = sorted(row["rerank_mrr@10"])
    figures = " | ".join(f"{row['bi_mrr@10'][s]:.3f} / {row['rerank_mrr@10'][s]:.3f} / {row['fused_mrr@10'][s]:.3f}"
                         for s in sources)
    return f"| {row['step']} | {row['minutes']:.1f} | {loss} | {figures} | {row['fusion_weight']:.1f} |"


def _evaluation_rows(evaluation: dict[str, Any]) -> str:
    rows = []
    for dataset in ("wikiqa", "scifact", "cranfield"):
        found = evaluation[dataset]
        cells = " | ".join(" / ".join(f"{found[mode][key]:.3f}" for key in ("mrr@10", "ndcg@10", "recall@100"))
                           for mode in ("bi", "rerank", "fused"))
        rows.append(f"| {dataset} test ({found['queries']}) | {cells} | {found['rerank_p50_ms']:.0f} |")
    return "\n".join(rows)


def write_model_card(folder: Path, evaluation: dict[str, Any] | None = None,
                     hard_cases: dict[str, float] | None = None) -> Path:
    report = json.loads((folder / "training_report.json").read_text())
    config, teachers, best = report["config"], report["teachers"], report["best"]
    sources = sorted(report["start"]["rerank_mrr@10"])
    weights = {name: weight for name, weight in teachers["weights"].items() if weight}
    teacher_lines = "\n".join(
        f"  - {_teacher(name)}: weight {weight:g}; dev MRR@10 alone "
        + ", ".join(f"{source} {value:.3f}" for source, value in teachers["dev_mrr@10"][name].items())
        for name, weight in weights.items())
    data_lines = "\n".join(f"  - {name}: {entry['queries']} queries ({entry['split']}, "
                           f"{'labelled' if entry['labelled'] else 'pseudo-queries, teachers only'})"
                           for name, entry in teachers["sources"].items())
    history = "\n".join(_dev_row(row) for row in report["history"])
    card = f"""---
license: other
base_model: sentence-transformers/all-MiniLM-L6-v2
pipeline_tag: text-classification
tags: [cross-encoder, reranker, distillation]
---
# cascade-reranker-minilm-l6

A cross-encoder reranker (one logit per (query, passage) pair, MiniLM-L6, 22.7M parameters) trained by Cascade on
this project's CPU machines, where no pretrained reranker can be downloaded: the knowledge of stronger encoders
(the teachers) distilled into a model that reads query and passage together.
Load it with `AutoModelForSequenceClassification` (weights stored in fp16; run in fp32 on CPU).

**Licence and intended use.** Trained on WikiQA (Microsoft Research Data License: research only, no direct
commercial use), SciFact (CC BY-NC 2.0), Cranfield's documents (research use) and Python's documentation (PSF
licence), with teachers under MIT. Use it for research and for trying Cascade. In production, point
`CASCADE_MODELS_CROSS_ENCODER` at a reranker you are licensed to use, such as
`cross-encoder/ms-marco-MiniLM-L6-v2`.

## Training (`python -m scripts.score_teachers`, then `python -m scripts.train_reranker`)
- Start: `{config['base']}` as it was when training began (for the shipped model: the previous reranker, in
  this folder's git history: all-MiniLM-L6-v2 with a 1-logit head fine-tuned on the labelled splits alone).
- Teachers, their scores averaged as per-list z-scores with weights chosen on the dev lists:
{teacher_lines}
- Candidate lists: the shipped first stage's ({teachers['first_stage']}) top {teachers['depth']} for every query,
  as the reranker sees them when serving:
{data_lines}
- Loss per list of {config['list_size']} (up to two positives, the teachers' top two, the rest drawn at random):
  cross-entropy against the teachers' softmax at temperature {config['temperature']}, mixed
  {config['label_weight']} with the labelled positives where a list has labels; plus
  {report['counts']['pairs']} generated negation and constraint pairs (`evaluation/cascade/evaluation/hard_cases/templates.py`),
  {config['pairs_per_step']} a step.
- max_length {config['max_length']} in training (256 when serving), {config['lists_per_step']} lists a step, AdamW lr
  {config['learning_rate']} with warm-up and linear decay over a {config['time_budget_min']:.0f}-minute budget, seed
  {config['seed']}, device {report['device']}: {report['steps']} steps in {report['train_minutes']:.0f} minutes.
- Checkpoint chosen on the dev lists (reranking the first stage's top {config['dev_candidates']}); the
  first-stage fusion weight was tuned there too and is saved in `cascade.json` (Cascade's reranker reads it
  unless `CASCADE_MODELS_FUSION_WEIGHT` is set): {best['fusion_weight']:.1f}. Step 0 is the starting model.

| step | minutes | loss | {' | '.join(f'{s}: bi / rerank / fused MRR@10' for s in sources)} | fusion weight |
|---|---|---|{'---|' * len(sources)}---|
{history}
"""
    if evaluation:
        card += f"""
## Evaluation (test splits, every query, through Cascade's services: `python -m scripts.bench_reranker`)

First stage MiniLM-L6 (dense); the reranker reorders its top {evaluation['wikiqa']['candidates']} (the CPU default);
fused = reranker and first-stage scores interpolated at the weight above. Each cell MRR@10 / nDCG@10 / Recall@100
(Recall@100 of the reranked rows is that of the {evaluation['wikiqa']['candidates']} candidates they hold).

| dataset (queries) | bi | rerank | fused | rerank p50 ms |
|---|---|---|---|---|
{_evaluation_rows(evaluation)}

SciFact caveat: 181 of SciFact's 283 test-positive abstracts are also train positives, so the SciFact figures of a
model trained on SciFact train overstate it; WikiQA's test questions and Cranfield's queries were never trained on
(Cranfield's documents were, as pseudo-queries without labels).
"""
    if hard_cases:
        card += (f"\nNegation and constraint cases (`python -m scripts.eval_hard_cases`, 40 written by the project): "
                 f"pairwise accuracy {hard_cases['negation']:.3f} negation, {hard_cases['constraint']:.3f} "
                 f"constraint, {hard_cases['all']:.3f} all.\n")
    path = folder / "README.md"
    path.write_text(card)
    return path
