"""The model card of a reranker distilled by evaluation/cascade/evaluation/training.py, from its training report
and its evaluation through the services (scripts/bench_reranker.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cascade.services.encoders.catalogue import CATALOGUE

__all__ = ["with_calibration", "write_model_card"]

_INTRODUCTION = """---
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
"""
"""What every card says whatever the training run: the model's shape, how to load it and what it may be used for."""
_HARD_CASE_TEMPLATES = "evaluation/cascade/evaluation/hard_cases/templates.py"
"""Where the generated negation and constraint pairs come from, for a reader who wants to see them."""


def _teacher(name: str) -> str:
    """A teacher as the catalogue names it, with its licence (BM25 is no model)."""
    spec = CATALOGUE.get(name)
    return f"{spec.model_id}, {spec.licence}" if spec else "BM25 (Qdrant's tokenizer), no model"


def _teacher_lines(teachers: dict[str, Any]) -> str:
    """Only the teachers that weigh in the mix: a teacher weighted 0 taught the model nothing."""
    weights = {name: weight for name, weight in teachers["weights"].items() if weight}
    return "\n".join(
        f"  - {_teacher(name)}: weight {weight:g}; dev MRR@10 alone "
        + ", ".join(f"{source} {value:.3f}" for source, value in teachers["dev_mrr@10"][name].items())
        for name, weight in weights.items())


def _data_lines(teachers: dict[str, Any]) -> str:
    """Which query sources carry labels, so that a reader sees which figures the training saw answers for."""
    return "\n".join(f"  - {name}: {entry['queries']} queries ({entry['split']}, "
                     f"{'labelled' if entry['labelled'] else 'pseudo-queries, teachers only'})"
                     for name, entry in teachers["sources"].items())


def _training_recipe(report: dict[str, Any]) -> str:
    """Everything needed to train the model again, read from the report so that the card matches the run."""
    config, teachers, best = report["config"], report["teachers"], report["best"]
    return f"""\
- Start: `{config['base']}` as it was when training began (for the shipped model: the previous reranker, in
  this folder's git history: all-MiniLM-L6-v2 with a 1-logit head fine-tuned on the labelled splits alone).
- Teachers, their scores averaged as per-list z-scores with weights chosen on the dev lists:
{_teacher_lines(teachers)}
- Candidate lists: the shipped first stage's ({teachers['first_stage']}) top {teachers['depth']} for every query,
  as the reranker sees them when serving:
{_data_lines(teachers)}
- Loss per list of {config['list_size']} (up to two positives, the teachers' top two, the rest drawn at random):
  cross-entropy against the teachers' softmax at temperature {config['temperature']}, mixed
  {config['label_weight']} with the labelled positives where a list has labels; plus
  {report['counts']['pairs']} generated negation and constraint pairs (`{_HARD_CASE_TEMPLATES}`),
  {config['pairs_per_step']} a step.
- max_length {config['max_length']} in training (256 when serving), {config['lists_per_step']} lists a step, AdamW lr
  {config['learning_rate']} with warm-up and linear decay over a {config['time_budget_min']:.0f}-minute budget, seed
  {config['seed']}, device {report['device']}: {report['steps']} steps in {report['train_minutes']:.0f} minutes.
- Checkpoint chosen on the dev lists (reranking the first stage's top {config['dev_candidates']}); the
  first-stage fusion weight was tuned there too and is saved in `cascade.json` (Cascade's reranker reads it
  unless `CASCADE_MODELS_FUSION_WEIGHT` is set): {best['fusion_weight']:.1f}. Step 0 is the starting model."""


def _dev_row(row: dict[str, Any]) -> str:
    """One dev evaluation, bi / rerank / fused side by side so that the reranker's gain reads at a glance."""
    loss = f"{row['loss']:.3f}" if "loss" in row else "-"
    sources = sorted(row["rerank_mrr@10"])
    figures = " | ".join(f"{row['bi_mrr@10'][s]:.3f} / {row['rerank_mrr@10'][s]:.3f} / {row['fused_mrr@10'][s]:.3f}"
                         for s in sources)
    return f"| {row['step']} | {row['minutes']:.1f} | {loss} | {figures} | {row['fusion_weight']:.1f} |"


def _history_table(report: dict[str, Any]) -> str:
    """The dev figures through training, which show why the chosen checkpoint was chosen."""
    sources = sorted(report["start"]["rerank_mrr@10"])
    columns = " | ".join(f"{s}: bi / rerank / fused MRR@10" for s in sources)
    header = f"| step | minutes | loss | {columns} | fusion weight |"
    rows = "\n".join(_dev_row(row) for row in report["history"])
    return f"{header}\n|---|---|---|{'---|' * len(sources)}---|\n{rows}"


def _training_section(report: dict[str, Any]) -> str:
    """How the model was made, so that a reader can judge it and train it again."""
    return f"""
## Training (`python -m scripts.score_teachers`, then `python -m scripts.train_reranker`)
{_training_recipe(report)}

{_history_table(report)}
"""


def _evaluation_rows(evaluation: dict[str, Any]) -> str:
    """One row per test set, each mode's figures in one cell so that the modes compare within a row."""
    rows = []
    for dataset in ("wikiqa", "scifact", "cranfield"):
        found = evaluation[dataset]
        cells = " | ".join(" / ".join(f"{found[mode][key]:.3f}" for key in ("mrr@10", "ndcg@10", "recall@100"))
                           for mode in ("bi", "rerank", "fused"))
        rows.append(f"| {dataset} test ({found['queries']}) | {cells} | {found['rerank_p50_ms']:.0f} |")
    return "\n".join(rows)


def _evaluation_section(evaluation: dict[str, Any]) -> str:
    """The model as Cascade serves it, with the caveat that keeps its SciFact figures from being over-read."""
    candidates = evaluation["wikiqa"]["candidates"]
    return f"""
## Evaluation (test splits, every query, through Cascade's services: `python -m scripts.bench_reranker`)

First stage MiniLM-L6 (dense); the reranker reorders its top {candidates} (the CPU default);
fused = reranker and first-stage scores interpolated at the weight above. Each cell MRR@10 / nDCG@10 / Recall@100
(Recall@100 of the reranked rows is that of the {candidates} candidates they hold).

| dataset (queries) | bi | rerank | fused | rerank p50 ms |
|---|---|---|---|---|
{_evaluation_rows(evaluation)}

SciFact caveat: 181 of SciFact's 283 test-positive abstracts are also train positives, so the SciFact figures of a
model trained on SciFact train overstate it; WikiQA's test questions and Cranfield's queries were never trained on
(Cranfield's documents were, as pseudo-queries without labels).
"""


def _hard_cases_section(hard_cases: dict[str, float]) -> str:
    """Negation and constraints are where rerankers fail quietly; the averages above would hide it."""
    return (f"\nNegation and constraint cases (`python -m scripts.eval_hard_cases`, 40 written by the project): "
            f"pairwise accuracy {hard_cases['negation']:.3f} negation, {hard_cases['constraint']:.3f} "
            f"constraint, {hard_cases['all']:.3f} all.\n")


_CALIBRATION_HEADING = "\n## Calibration"


def _calibration_section(folder: Path) -> str:
    """The relevance probabilities the services attach to this model's scores, and what they were fitted on."""
    card = folder / "cascade.json"
    fitted = json.loads(card.read_text()).get("calibration") if card.is_file() else None
    if not fitted:
        return ""
    source = (f", a logistic curve fitted on {fitted['pairs']:,} (query, candidate) pairs ({fitted['relevant']:,} "
              f"judged relevant): the top {fitted['candidates']} of the {fitted['first_stage']} first stage for the "
              f"{fitted['fitted_on']}") if "pairs" in fitted else ""
    return f"""{_CALIBRATION_HEADING} (`python -m scripts.calibrate_reranker`, `bench/calibration.json`)
Hits carry P(relevant) = 1 / (1 + exp(-({fitted['slope']:.4f} * score {fitted['intercept']:+.4f}))){source}. It
is stored in `cascade.json` (`calibration`); how well it holds on a domain it was not fitted on is in the bench
file.
"""


def with_calibration(folder: Path) -> Path:
    """The card with its calibration section written anew (the last section: the rest as it was)."""
    path = folder / "README.md"
    card = path.read_text().split(_CALIBRATION_HEADING, 1)[0].rstrip("\n") + "\n"
    path.write_text(card + _calibration_section(folder))
    return path


def write_model_card(folder: Path, evaluation: dict[str, Any] | None = None,
                     hard_cases: dict[str, float] | None = None) -> Path:
    """Written from the training report and the measured figures, so that the card cannot drift from the model."""
    report = json.loads((folder / "training_report.json").read_text())
    card = _INTRODUCTION + _training_section(report)
    if evaluation:
        card += _evaluation_section(evaluation)
    if hard_cases:
        card += _hard_cases_section(hard_cases)
    path = folder / "README.md"
    path.write_text(card + _calibration_section(folder))
    return path
