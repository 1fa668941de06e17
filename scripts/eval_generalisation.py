"""Which answer ranks best where nobody tuned: every first stage and the cascade on the dev suite's six domains
(scripts/build_dev_suite.py), the defaults chosen on the dev splits only, then reported on the test splits.

    python -m scripts.eval_generalisation first-stages [--stages bm25 minilm e5-small ...]
    python -m scripts.eval_generalisation cascade --first-stage e5-small+bm25
    python -m scripts.eval_generalisation report

`first-stages` ranks each split with each stage (`cascade.evaluation.suite`: exact search, the store's BM25 and
RRF) and caches the top 100 lists. `cascade` reranks a first stage's top candidates with the shipped
cross-encoder, on dev at every fusion weight and candidate count, chooses both by the mean dev nDCG@10 over the
domains (never per domain), and ranks the test split with the choice. `report` chooses the defaults on the dev
figures and writes bench/generalisation.json (test figures, each against the shipped first stage with a paired
t-test: ranx's compare), the dev figures that chose, bench/generalisation.png and the per-query top 10 of every
run in TREC format (bench/generalisation/runs/SPLIT/DOMAIN/NAME.trec.gz).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib
import orjson

from cascade.evaluation.metrics import ranking_metrics
from cascade.evaluation.suite import (
    Domain,
    Lists,
    bm25_lists,
    dense_lists,
    p_values,
    rerank_lists,
    rrf,
    summary,
    write_trec,
)
from cascade.services.encoders import BiEncoder, CrossEncoder
from cascade.services.log import configure_logging
from cascade.services.settings import bundled_models
from scripts.benchlib import BENCH_DIR, machine, write_result
from scripts.build_dev_suite import BUILDERS, require_built

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the file backend

SPLITS = ("dev", "test")
DENSE = ("minilm", "minilm-distilled", "e5-small", "bge-small")
LISTS = Path.home() / ".cache" / "cascade" / "generalisation"
RUNS = BENCH_DIR / "generalisation" / "runs"
RERANKER = "cascade-reranker-minilm-l6"
WEIGHTS = tuple(round(0.1 * step, 1) for step in range(11))
CANDIDATES = (10, 20)
"""Candidate counts tried on dev on this CPU (the pairs a query costs); 100 is what a GPU affords (unmeasured
here: no GPU was lent)."""


def _lists_path(domain: str, split: str, name: str) -> Path:
    return LISTS / domain / split / f"{name}.json"


def _save_lists(domain: str, split: str, name: str, lists: Lists) -> None:
    path = _lists_path(domain, split, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(lists))
    write_trec(RUNS / split / domain / f"{name}.trec.gz", lists, name)


def load_lists(domain: str, split: str, name: str) -> Lists:
    lists: Lists = {query: [(doc, score) for doc, score in hits]
                    for query, hits in orjson.loads(_lists_path(domain, split, name).read_bytes()).items()}
    return lists


def suite_domains() -> list[Domain]:
    return [Domain.load(folder, SPLITS) for folder in require_built(sorted(BUILDERS))]


def first_stages(stages: list[str]) -> None:
    domains = suite_domains()
    for stage in stages:
        encoder = BiEncoder(stage, device="cpu") if stage in DENSE else None
        for domain in domains:
            for split in SPLITS:
                if encoder is not None:
                    lists = dense_lists(domain, split, encoder)
                    _save_lists(domain.name, split, stage, lists)
                    if _lists_path(domain.name, split, "bm25").exists():
                        _save_lists(domain.name, split, f"{stage}+bm25",
                                    rrf(lists, load_lists(domain.name, split, "bm25")))
                elif stage == "bm25":
                    _save_lists(domain.name, split, stage, bm25_lists(domain, split))
                else:
                    raise SystemExit(f"unknown stage {stage!r}: one of bm25, {', '.join(DENSE)}")
            # Only dev figures are shown: the test split is for the report, never for choosing.
            print(domain.name, "dev", stage, summary(domain.qrels["dev"], load_lists(domain.name, "dev", stage)))


def _dev_means(domains: list[Domain], names: list[str]) -> dict[str, float]:
    """Each named run's nDCG@10 on the dev split, averaged over the domains."""
    return {name: sum(ranking_metrics(domain.qrels["dev"], load_lists(domain.name, "dev", name))["ndcg@10"]
                      for domain in domains) / len(domains) for name in names}


def _choose(names: list[str], means: dict[str, float]) -> str:
    """The best mean; a tie goes to the cheaper cascade (fewer candidates, then a smaller first-stage share),
    among first stages to the first by name."""
    def cost(name: str) -> tuple[int, float, str]:
        return (*_cascade_setting(name), name) if name.startswith("cascade[") else (0, 0.0, name)
    return max(sorted(names, key=cost), key=lambda name: means[name])


def cascade(first_stage: str, dev_only: bool) -> None:
    """Reranks `first_stage` on dev at every weight and candidate count, keeps the best on the mean over
    domains, and ranks test with it (unless `dev_only`)."""
    domains = suite_domains()
    cross = CrossEncoder.load(str(bundled_models() / RERANKER), device="cpu")
    tried: list[str] = []
    for domain in domains:
        first = load_lists(domain.name, "dev", first_stage)
        for candidates in CANDIDATES:  # the largest count's scores serve every count
            for weight, lists in rerank_lists(domain, "dev", first, cross, candidates, WEIGHTS,
                                              scored=max(CANDIDATES)).items():
                name = _cascade_name(first_stage, candidates, weight)
                _save_lists(domain.name, "dev", name, lists)
                if name not in tried:
                    tried.append(name)
    means = _dev_means(domains, tried)
    best = _choose(tried, means)
    candidates, weight = _cascade_setting(best)
    print("dev nDCG@10 means:", means, "\nchosen:", best)
    for domain in [] if dev_only else domains:
        test_first = load_lists(domain.name, "test", first_stage)
        [lists] = rerank_lists(domain, "test", test_first, cross, candidates, (weight,)).values()
        _save_lists(domain.name, "test", best, lists)


def _cascade_name(first_stage: str, candidates: int, weight: float) -> str:
    return f"cascade[{first_stage}]@{candidates}+fusion({weight:g})"


def _cascade_setting(name: str) -> tuple[int, float]:
    candidates, fusion = name.split("]@")[1].split("+fusion(")
    return int(candidates), float(fusion.rstrip(")"))


def _available(domains: list[Domain], split: str) -> list[str]:
    """The runs every domain has for `split`."""
    named = [{path.name.removesuffix(".json") for path in (LISTS / domain.name / split).glob("*.json")}
             for domain in domains]
    return sorted(set.intersection(*named))


def report() -> None:
    domains = suite_domains()
    dev_runs = _available(domains, "dev")
    dev = _dev_means(domains, dev_runs)
    stages = [name for name in dev_runs if not name.startswith("cascade[")]
    best_stage = _choose(stages, dev)
    cascades = [name for name in dev_runs if name.startswith(f"cascade[{best_stage}]")]
    if not cascades:
        raise SystemExit(f"the cascade over the best first stage on dev ({best_stage}) was not run: "
                         f"python -m scripts.eval_generalisation cascade --first-stage {best_stage}")
    best_cascade = _choose(cascades, dev)
    rerank_wins = dev[best_cascade] > dev[best_stage]
    shipped = best_cascade if rerank_wins else best_stage
    candidates, weight = _cascade_setting(best_cascade)
    result: dict[str, Any] = {
        "split": "test", "domains": {},
        "defaults": {"first_stage": best_stage, "mode": "rerank" if rerank_wins else "bi",
                     "fusion_weight": weight, "candidates_cpu": candidates, "candidates_gpu": 100},
        "dev": {"ndcg@10_mean_over_domains": {name: round(mean, 4) for name, mean in dev.items()},
                "first_stage_chosen": best_stage, "cascade_best": best_cascade},
    }
    test_runs = [name for name in _available(domains, "test") if name in stages or name == shipped]
    if shipped not in test_runs:
        raise SystemExit(f"{shipped} has no test run: run `cascade --first-stage {best_stage}` again")
    for domain in domains:
        qrels = domain.qrels["test"]
        runs = {name: load_lists(domain.name, "test", name) for name in test_runs}
        significance = p_values(qrels, runs, best_stage)
        result["domains"][domain.name] = {
            "queries": len(qrels),
            "first_stages": {name: {**summary(qrels, runs[name]), "p_value": significance.get(name, 1.0)}
                             for name in stages if name in runs},
            "cascade": {"name": shipped, **summary(qrels, runs[shipped]), "p_value": significance.get(shipped, 1.0)},
        }
    result["mean"] = _means(result["domains"])
    result["machine"] = machine()
    print(f"wrote {write_result('generalisation', result)}")
    _plot(result, BENCH_DIR / "generalisation.png")


def _means(domains: dict[str, Any]) -> dict[str, Any]:
    """Every first stage and the cascade, each metric averaged over the domains; and how the shipped default
    compares with each domain's best first stage."""
    names = list(next(iter(domains.values()))["first_stages"])
    mean: dict[str, Any] = {"first_stages": {}, "cascade": {}}
    for metric in ("ndcg@10", "mrr@10"):
        for name in names:
            mean["first_stages"].setdefault(name, {})[metric] = round(
                sum(figures["first_stages"][name][metric] for figures in domains.values()) / len(domains), 4)
        shipped = [figures["cascade"][metric] for figures in domains.values()]
        mean["cascade"][metric] = round(sum(shipped) / len(shipped), 4)
    margins = {domain: round(figures["cascade"]["ndcg@10"] - max(stage["ndcg@10"] for stage in
                                                                  figures["first_stages"].values()), 4)
               for domain, figures in domains.items()}
    mean["cascade_minus_best_first_stage_ndcg@10"] = {"per_domain": margins,
                                                      "mean": round(sum(margins.values()) / len(margins), 4)}
    return mean


def _plot(result: dict[str, Any], path: Path) -> None:
    domains = sorted(result["domains"])
    names = list(result["domains"][domains[0]]["first_stages"])
    figure, axis = plt.subplots(figsize=(12, 4.5))
    width = 0.85 / (len(names) + 1)
    for i, name in enumerate([*names, "shipped"]):
        values = [result["domains"][domain]["cascade" if name == "shipped" else "first_stages"]
                  [name if name != "shipped" else "cascade"]["ndcg@10"] if name != "shipped" else
                  result["domains"][domain]["cascade"]["ndcg@10"] for domain in domains]
        axis.bar([d + i * width for d in range(len(domains))], values, width, label=name,
                 edgecolor="black" if name == "shipped" else None)
    axis.set_xticks([d + 0.42 for d in range(len(domains))], domains)
    axis.set_ylabel("nDCG@10 (test split)")
    axis.set_title(f"First stages and the shipped default ({result['domains'][domains[0]]['cascade']['name']})")
    axis.legend(fontsize=7, ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    stages = commands.add_parser("first-stages")
    stages.add_argument("--stages", nargs="+", default=["bm25", *DENSE])
    chain = commands.add_parser("cascade")
    chain.add_argument("--first-stage", required=True)
    chain.add_argument("--dev-only", action="store_true", help="choose on dev; rank no test split yet")
    commands.add_parser("report")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    if args.command == "first-stages":
        first_stages(args.stages)
    elif args.command == "cascade":
        cascade(args.first_stage, args.dev_only)
    else:
        report()


if __name__ == "__main__":
    main()
