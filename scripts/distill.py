"""Distil the cascade into the first stage (Margin-MSE, see cascade.evaluation.bi_distillation) and report the gap.

    python -m scripts.score_teachers      # once: the candidate lists (the cascade scores their heads below)
    python -m scripts.distill [--minutes 30] [--device cuda] [--output DIR] [--student DIR --skip-training]

Steps: (1) the cascade scores each training list's head (cached in ~/.cache/cascade/teachers/cascade.json; the
ColBERT encoder learns from the same file); (2) the student, initialised from the shipped first stage, is trained
and chosen on dev lists; (3) base, student and teacher are measured on WikiQA, SciFact and Cranfield test, written
to bench/distillation.json. The student is saved to --output; shipping it under models/ is a separate, deliberate
step (only if it beats the base on those held-out splits).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cascade.evaluation.bi_distillation import DistillationConfig, distil_bi_encoder
from cascade.evaluation.cascade_teacher import LIST_HEAD, score_cascade, teacher_provenance
from cascade.evaluation.first_stage_gap import measure_gap
from cascade.evaluation.report import shown_path
from cascade.evaluation.teachers import TeacherScores
from cascade.services.encoders import BiEncoder, CrossEncoder
from cascade.services.reranker.fusion import configured_fusion_weight
from cascade.services.settings import ModelSettings
from scripts.benchlib import DATA_DIR, machine, write_result
from scripts.score_teachers import DEFAULT_OUTPUT as CANDIDATE_LISTS

CASCADE_LISTS = CANDIDATE_LISTS.with_name("cascade.json")
DATASETS = ("wikiqa", "scifact", "cranfield")


def cascade_lists(reranker: CrossEncoder, weight: float, size: int) -> Path:
    """The cascade-scored lists, scored now unless cached for this reranker, weight and size."""
    if CASCADE_LISTS.is_file():
        cached = TeacherScores.load(CASCADE_LISTS).provenance.get("teacher", {})
        if cached == teacher_provenance(reranker, weight, size):
            return CASCADE_LISTS
    score_cascade(TeacherScores.load(CANDIDATE_LISTS), reranker, weight, size).save(CASCADE_LISTS)
    return CASCADE_LISTS


def main() -> None:
    defaults = DistillationConfig(teachers=CASCADE_LISTS,
                                  output=Path.home() / ".cache" / "cascade" / "students" / "bi-encoder")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=defaults.output)
    parser.add_argument("--base", default=defaults.base)
    parser.add_argument("--minutes", type=float, default=defaults.time_budget_min)
    parser.add_argument("--list-size", type=int, default=LIST_HEAD, help="candidates per list the cascade scores")
    parser.add_argument("--candidates", type=int, default=20, help="the teacher's rerank depth on test")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--evaluations", type=int, default=defaults.evaluations)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=defaults.device)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--skip-training", action="store_true", help="only measure the student in --output")
    args = parser.parse_args()
    models = ModelSettings()
    reranker = CrossEncoder.load(models.cross_encoder, max_length=models.cross_max_length, device=args.device)
    weight = configured_fusion_weight(None, models.cross_encoder)
    teachers = cascade_lists(reranker, weight, args.list_size)
    if not args.skip_training:
        report = distil_bi_encoder(DistillationConfig(
            teachers=teachers, output=args.output, base=args.base, time_budget_min=args.minutes,
            learning_rate=args.learning_rate, evaluations=args.evaluations, device=args.device, seed=args.seed))
        print(json.dumps({key: report[key] for key in ("start", "best", "steps", "improved")}, indent=2))
    training = json.loads((args.output / "training_report.json").read_text())
    base, student = BiEncoder(args.base, device=args.device), BiEncoder(str(args.output), device=args.device)
    result = measure_gap(DATA_DIR, DATASETS, base, student, reranker, weight, args.candidates, "ndcg@10")
    result |= {"machine": machine(), "student": shown_path(args.output), "student_model_id": student.model_id,
               "teacher": {"reranker": shown_path(Path(models.cross_encoder)), "fusion_weight": weight,
                           "candidates": args.candidates},
               "training": {key: training[key] for key in ("lists", "steps", "train_minutes", "device", "best")}}
    print(write_result("distillation", result))
    print(json.dumps({name: {key: result[name][key] for key in ("base", "student", "teacher", "gap_recovered")}
                      for name in DATASETS}, indent=2))


if __name__ == "__main__":
    main()
