"""The dev suite's builder (scripts/build_dev_suite.py): its parsing and splitting, and, where the suite has been
built on this machine, the folders themselves (skipped where they are not)."""

from __future__ import annotations

import pytest

from cascade.evaluation.beir import load_split
from scripts.build_dev_suite import (
    BUILDERS,
    DATA,
    DEV,
    TEST,
    check,
    duplicate_clusters,
    seeded_order,
    split_of,
    startup_thread,
)

THREAD = """## How do I price a B2B product?

- posted by: [Ann](https://example.org) on 2010-01-01
- tagged: `pricing`
- score: 4

We sell to <b>small</b> firms &amp; wonder how.


## Answer 3

- posted by: [Bo](https://example.org) on 2010-01-02
- score: 2

<p>Charge more than you think.</p>


## Answer 7

- score: 1

<p>Ask   your customers.</p>
"""


def test_a_thread_page_gives_its_title_body_and_answers_as_plain_text() -> None:
    title, body, answers = startup_thread(THREAD)
    assert title == "How do I price a B2B product?"
    assert body == "We sell to small firms & wonder how."
    assert answers == ["Charge more than you think.", "Ask your customers."]


def test_duplicates_are_clustered_transitively() -> None:
    clusters = duplicate_clusters([("a", "b"), ("c", "d"), ("b", "e")])
    assert sorted(map(sorted, clusters)) == [["a", "b", "e"], ["c", "d"]]


def test_splits_are_seeded_disjoint_and_sized() -> None:
    keys = [f"k{i}" for i in range(1000)]
    order = seeded_order(keys)
    assert order == seeded_order(reversed(keys))  # the input's order does not matter, only the seed
    splits = [split_of(key, order) for key in keys]
    assert (splits.count("dev"), splits.count("test"), splits.count("train")) == (DEV, TEST, 1000 - DEV - TEST)


@pytest.mark.parametrize("domain", sorted(BUILDERS))
def test_a_built_domain_is_a_beir_folder_with_disjoint_splits(domain: str) -> None:
    folder = DATA / domain
    if not (folder / "SOURCE.json").exists():
        pytest.skip(f"{folder} is not built here (python -m scripts.build_dev_suite)")
    assert not check(DATA), "the built files differ from scripts/dev_suite.sha256.json"
    dev, test = load_split(folder, "dev"), load_split(folder, "test")
    assert 0 < len(dev.queries) <= DEV and 0 < len(test.queries) <= TEST
    assert not set(dev.queries) & set(test.queries)
    documents = {document["doc_id"] for document in dev.corpus}
    assert all(set(judged) <= documents for judged in (*dev.qrels.values(), *test.qrels.values()))
