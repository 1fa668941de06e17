"""The reranker's distillation: pseudo-queries, contrastive pairs, teacher lists and their ensemble, and a short
training run of a tiny cross-encoder through the real training loop (loaded back through the serving code)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import cascade.evaluation.beir
from cascade.evaluation.hard_cases import load_hard_cases
from cascade.evaluation.hard_cases.templates import contrastive_pairs
from cascade.evaluation.model_card import write_model_card
from cascade.evaluation.pseudo_queries import cloze_queries, python_documentation, title_queries
from cascade.evaluation.teachers import (
    CandidateList,
    QuerySource,
    Table,
    TeacherScores,
    ensemble,
    list_mrr,
    score_teachers,
    tune_ensemble,
)
from cascade.evaluation.training import TrainingConfig, train_reranker, training_lists
from cascade.services.encoders import BiEncoder, CrossEncoder


def test_pseudo_queries_do_not_leave_the_query_in_its_answer() -> None:
    corpus = [{"doc_id": "1", "title": "heat flow in a multilayer slab",
               "text": "heat flow in a multilayer slab . a study of transient conduction through layered walls "
                       "of differing conductivity, with exact solutions for two and three layers and a "
                       "numerical check against the measured temperatures in each layer ."}]
    [title] = title_queries(corpus, 5, random.Random(0))
    assert title.query == corpus[0]["title"]
    assert not title.answer.startswith("heat flow") and title.answer.startswith("a study of transient")
    text = "First sentence is here and long enough. The second one is the one we keep out. Third sentence ends it."
    [cloze] = cloze_queries([text], 5, random.Random(0))
    assert cloze.query not in cloze.answer
    assert len(cloze.answer.split(". ")) == 2
    documentation = python_documentation()
    assert len(documentation) > 300 and all(len(doc["text"].split()) >= 30 for doc in documentation)


def test_contrastive_pairs_ask_both_ways_and_stay_apart_from_the_test_cases() -> None:
    pairs = contrastive_pairs(400, random.Random(3))
    assert {pair.kind for pair in pairs} == {"negation", "constraint"}
    assert all(pair.satisfies != pair.violates for pair in pairs)
    negations = [pair for pair in pairs if pair.kind == "negation"]
    asking_absence = [pair for pair in negations if any(word in pair.query for word in (" no ", "without", "not",
                                                                                          "lacking"))]
    assert 0.3 < len(asking_absence) / len(negations) < 0.7  # the "no" passage is not always the answer
    tested = {case.query for case in load_hard_cases()}
    assert not tested & {pair.query for pair in pairs}


def _list(positives: list[int], good: list[float], noise: list[float], split: str = "train",
          labelled: bool = True) -> CandidateList:
    return CandidateList("toy/" + split, split, "toy", "q", list(range(len(good))), positives, labelled,
                         first_stage=[1.0 - 0.1 * i for i in range(len(good))],
                         scores={"good": good, "noise": noise})


def test_the_ensemble_weighs_teachers_by_their_dev_figures() -> None:
    rng = np.random.default_rng(0)
    lists = []
    for _ in range(20):
        positive = int(rng.integers(0, 6))
        good = rng.normal(size=6)
        good[positive] += 5
        lists.append(_list([positive], good.tolist(), rng.normal(size=6).tolist(), split="dev"))
    weights, report = tune_ensemble(lists)
    assert weights["good"] > 0 and weights["noise"] == 0
    assert report["ensemble"]["toy/dev"] == report["good"]["toy/dev"] == 1.0
    assert list_mrr(lists, [ensemble(item, weights) for item in lists]) == 1.0
    z = ensemble(lists[0], {"good": 1.0})
    assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-3


def test_training_targets_mix_teachers_and_labels() -> None:
    texts = [f"document {i}" for i in range(12)]
    labelled = _list([7], [float(-i) for i in range(12)], [0.0] * 12)
    pseudo = _list([11], [float(-i) for i in range(12)], [0.0] * 12, labelled=False)
    scores = TeacherScores({"toy": texts}, [labelled, pseudo], {"weights": {"good": 1.0}})
    config = TrainingConfig(teachers=Path("unused"), output=Path("unused"), base="", list_size=6, label_weight=0.5)
    made = training_lists(scores, {"good": 1.0}, config, random.Random(0))
    assert [len(item.documents) for item in made] == [6, 6]
    for item in made:
        assert abs(sum(item.target) - 1) < 1e-9
    first, second = made
    assert first.target[first.documents.index("document 7")] >= 0.5  # the label's share
    assert "document 11" in second.documents  # the answer is always in its list, taught by the teachers alone
    assert max(second.target) == second.target[second.documents.index("document 0")]


def test_teacher_lists_leave_out_a_pseudo_querys_source_and_hold_its_answer(
    tiny_bi_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cascade.evaluation.beir, "_CACHE", tmp_path)
    corpus = [f"passage number {i} about topic {i % 3}" for i in range(10)]
    table = Table([*corpus, "the rewritten answer of passage 4"], 10)
    sources = [QuerySource("toy/pseudo", "train", "toy", ["topic 1 passage"], [[10]], [4], labelled=False),
               QuerySource("toy/dev", "dev", "toy", ["topic 2"], [[5]], [None])]
    encoder = BiEncoder(str(tiny_bi_encoder), device="cpu")
    lists = score_teachers({"toy": table}, sources, encoder, [encoder], depth=5)
    pseudo, dev = lists
    assert 4 not in pseudo.documents and 10 in pseudo.documents
    assert len(dev.documents) == 5 and 10 not in dev.documents
    assert set(pseudo.scores) == {encoder.name, "bm25"}
    assert all(len(values) == len(pseudo.documents) for values in [*pseudo.scores.values(), pseudo.first_stage])


def test_a_short_distillation_run_saves_a_reranker_the_services_load(tiny_cross_encoder: Path,
                                                                      tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    texts = [f"passage {i} on subject {i % 4}" for i in range(40)]
    lists = []
    for i in range(24):
        documents = [int(d) for d in rng.choice(40, size=10, replace=False)]
        split = "dev" if i % 4 == 0 else "train"
        lists.append(CandidateList(f"toy/{split}", split, "toy", f"subject {i % 4}", documents, documents[:1],
                                   True, rng.normal(size=10).tolist(), {"good": rng.normal(size=10).tolist()}))
    path = tmp_path / "lists.json"
    provenance = {"weights": {"good": 1.0}, "dev_mrr@10": {"good": {"toy/dev": 0.5}}, "first_stage": "tiny",
                  "depth": 10, "sources": {"toy/train": {"split": "train", "queries": 18, "labelled": True}}}
    TeacherScores({"toy": texts}, lists, provenance).save(path)
    output = tmp_path / "student"
    report = train_reranker(TrainingConfig(teachers=path, output=output, base=str(tiny_cross_encoder),
                                           list_size=4, lists_per_step=2, pairs_per_step=1, contrastive_pairs=6,
                                           epochs=2, evaluations=2, dev_candidates=5, device="cpu"))
    assert report["steps"] == 2 * (18 // 2)
    assert report["counts"] == {"lists": 18, "pairs": 6}
    assert report["history"][0]["step"] == 0 and len(report["history"]) >= 3
    assert set(report["best"]["rerank_mrr@10"]) == {"toy/dev"}
    assert json.loads((output / "cascade.json").read_text())["fusion_weight"] == report["best"]["fusion_weight"]
    reranker = CrossEncoder.load(str(output), device="cpu")
    assert reranker.score("subject 1", ["passage 1 on subject 1", "passage 2 on subject 2"]).shape == (2,)
    figures = {"mrr@10": 0.5, "ndcg@10": 0.5, "recall@100": 0.9}
    evaluation = {dataset: {"bi": figures, "rerank": figures, "fused": figures, "queries": 3, "candidates": 5,
                            "rerank_p50_ms": 12.0} for dataset in ("wikiqa", "scifact", "cranfield")}
    card = write_model_card(output, evaluation, {"negation": 0.5, "constraint": 1.0, "all": 0.75}).read_text()
    assert "| wikiqa test (3) | 0.500 / 0.500 / 0.900 |" in card and "0.750 all" in card
