"""Score the reranker's training lists with the teachers, once, and cache them with their provenance.

    python -m scripts.score_teachers [--pseudo 300] [--depth 30] [--output ~/.cache/cascade/teachers/lists.json]
                                     [--teachers bge-small e5-small]

Lists: the shipped first stage's top `depth` for WikiQA train/dev questions, SciFact train claims (100 held out as
dev), pseudo-queries (titles and inverse-cloze sentences) from SciFact, Cranfield's documents and Python's
documentation, and the train and dev queries of every dev-suite domain built (`--no-dev-suite` leaves them out;
their test queries are never read). Teachers: bge-small and e5-small (`cascade models fetch` them first) and
BM25. The ensemble's weights are chosen on the dev lists; bench/teachers.json records them with each teacher's
dev MRR@10.
`--teachers` with no names keeps BM25 alone: the lists the first-stage students learn from (their candidates and
positives do not depend on the teachers) in a fraction of the time; the reranker's training needs the dense ones.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from cascade.evaluation.report import shown_path
from cascade.evaluation.teachers import (
    DENSE_TEACHERS,
    TeacherScores,
    build_sources,
    provenance,
    score_teachers,
    suite_sources,
    tune_ensemble,
)
from cascade.services.encoders import BiEncoder
from scripts.benchlib import DATA_DIR, machine, write_result
from scripts.build_dev_suite import built_domains, require_built

DEFAULT_OUTPUT = Path.home() / ".cache" / "cascade" / "teachers" / "lists.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--pseudo", type=int, default=300, help="pseudo-queries per kind and corpus")
    parser.add_argument("--depth", type=int, default=30, help="first-stage candidates per list")
    parser.add_argument("--teacher-length", type=int, default=256,
                        help="teachers' document truncation (tokens; 256, as served, shares the vector cache)")
    parser.add_argument("--teachers", nargs="*", default=list(DENSE_TEACHERS), help="dense teachers (BM25 always)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--no-dev-suite", action="store_true", help="leave the dev suite's domains out")
    args = parser.parse_args()
    tables, sources = build_sources(args.data, random.Random(args.seed), args.pseudo)
    suite_domains = [] if args.no_dev_suite else built_domains()
    suite_tables, suite = suite_sources(require_built(suite_domains))
    tables, sources = tables | suite_tables, sources + suite
    first_stage = BiEncoder(device=args.device)
    teachers = [BiEncoder(name, max_length=args.teacher_length, device=args.device) for name in args.teachers]
    lists = score_teachers(tables, sources, first_stage, teachers, args.depth)
    weights, dev = tune_ensemble(lists)
    found = provenance(tables, sources, first_stage, teachers, args.depth, args.seed, suite_domains) | {
        "weights": weights, "dev_mrr@10": dev}
    TeacherScores({name: table.texts for name, table in tables.items()}, lists, found).save(args.output)
    if set(args.teachers) == set(DENSE_TEACHERS):  # the report describes the reranker's full ensemble only
        write_result("teachers", {"machine": machine(), "cache": shown_path(args.output), **found})
    print(f"{len(lists)} lists cached in {args.output}; ensemble weights {weights}; dev MRR@10 {dev}")


if __name__ == "__main__":
    main()
