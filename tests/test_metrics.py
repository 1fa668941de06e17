"""The metrics on a tiny handmade BEIR folder whose figures are worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cascade.evaluation.beir import load_split
from cascade.evaluation.metrics import overlap_recall, ranking_metrics


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("".join(
        f'{{"_id": "d{i}", "title": "t{i}", "text": "text {i}"}}\n' for i in range(6)))
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "one"}\n{"_id": "q2", "text": "two"}\n'
                                            '{"_id": "q3", "text": "unjudged"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td4\t2\nq2\td0\t1\n"
                                                 "q2\td5\t0\n")
    return tmp_path


def test_load_split_keeps_judged_queries(tiny_beir: Path) -> None:
    split = load_split(tiny_beir)
    assert set(split.queries) == {"q1", "q2"}
    assert len(split.corpus) == 6
    assert split.texts[0] == "t0 text 0"


def test_metrics_match_hand_computation(tiny_beir: Path) -> None:
    split = load_split(tiny_beir)
    ranking = {
        "q1": [("d4", 0.9), ("d2", 0.8), ("d1", 0.7)],  # grades 2 at rank 1, 1 at rank 3
        "q2": [("d5", 0.9), ("d3", 0.5)],  # d5 is judged 0: not relevant; d0 never found
    }
    metrics = ranking_metrics(split.qrels, ranking)
    ndcg_q1 = (2 / math.log2(2) + 1 / math.log2(4)) / (2 / math.log2(2) + 1 / math.log2(3))
    assert metrics["mrr@10"] == pytest.approx((1 + 0) / 2)
    assert metrics["ndcg@10"] == pytest.approx((ndcg_q1 + 0) / 2)
    assert metrics["recall@10"] == pytest.approx((1 + 0) / 2)


def test_a_query_without_results_counts_as_zero(tiny_beir: Path) -> None:
    metrics = ranking_metrics(load_split(tiny_beir).qrels, {"q1": [("d1", 1.0)]})
    assert metrics["mrr@10"] == pytest.approx(0.5)


def test_overlap_recall() -> None:
    assert overlap_recall({"a": ["1", "2"], "b": ["3"]}, {"a": ["1", "9"], "b": ["3", "4"]}) == pytest.approx(0.5)
