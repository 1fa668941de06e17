"""The reranker's training lists come from the dev suite's train splits, its choices from the dev splits, and
no test query is read."""

from __future__ import annotations

import json
from pathlib import Path

from cascade.evaluation.teachers import suite_sources


def _domain(folder: Path, splits: dict[str, list[tuple[str, str]]]) -> Path:
    """A BEIR folder of 4 documents; per split, (query id, relevant doc id) pairs."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": f"d{i}", "title": "", "text": f"document {i}"}) + "\n" for i in range(4)))
    for split, judged in splits.items():
        suffix = "" if split == "test" else f".{split}"
        (folder / f"queries{suffix}.jsonl").write_text("".join(
            json.dumps({"_id": query, "text": f"question {query}"}) + "\n" for query, _ in judged))
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
            f"{query}\t{doc}\t1\n" for query, doc in judged))
    return folder


def test_train_and_dev_queries_become_sources_and_test_queries_are_never_read(tmp_path: Path) -> None:
    medical = _domain(tmp_path / "medical", {"train": [("q1", "d1"), ("q2", "d3")], "dev": [("q3", "d2")],
                                             "test": [("q4", "d0")]})
    forum = _domain(tmp_path / "forum", {"dev": [("q5", "d1")], "test": [("q6", "d2")]})  # no train split
    (medical / "queries.jsonl").write_text("not json: reading the test split would fail\n")
    tables, sources = suite_sources([medical, forum])
    assert sorted(tables) == ["forum", "medical"] and tables["medical"].searchable == 4
    assert [(source.name, source.split, source.queries, source.positives) for source in sources] == [
        ("medical/train", "train", ["question q1", "question q2"], [[1], [3]]),
        ("medical/dev", "dev", ["question q3"], [[2]]),
        ("forum/dev", "dev", ["question q5"], [[1]]),
    ]
