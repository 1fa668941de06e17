"""How a collection of passages splits a document: full windows that advance, the last one ending with the text,
at most the limit (the first ones and the last); and which layout a new collection takes from its documents."""

from __future__ import annotations

import pytest

from cascade.contracts import DocumentEvent, Passages
from cascade.services.encoders.text import split_all, split_passages
from cascade.services.ingest.processor import Layout
from cascade.services.settings import ModelSettings


def _bounds(passages: list[str]) -> list[tuple[str, str]]:
    return [(passage.split()[0], passage.split()[-1]) for passage in passages]


def _text(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


@pytest.mark.parametrize(("words", "bounds"), [
    (24, [("w0", "w23")]),  # fits: one passage, the text itself
    (25, [("w0", "w23"), ("w1", "w24")]),  # one word over: a second full window ending with the text
    (40, [("w0", "w23"), ("w16", "w39")]),
    (56, [("w0", "w23"), ("w16", "w39"), ("w32", "w55")]),
])
def test_windows_are_full_advance_and_end_with_the_text(words: int, bounds: list[tuple[str, str]]) -> None:
    passages = split_passages(Passages(words=24, overlap=8, limit=32), "", _text(words))
    assert _bounds(passages) == bounds
    assert all(len(passage.split()) == min(words, 24) for passage in passages)


def test_past_the_limit_the_first_passages_and_the_last_are_kept() -> None:
    passages = split_passages(Passages(words=24, overlap=8, limit=3), "Title", _text(1000))
    assert _bounds(passages) == [("Title", "w23"), ("Title", "w39"), ("Title", "w999")]
    assert all(passage.startswith("Title w") for passage in passages)
    assert _bounds(split_passages(Passages(words=24, overlap=8, limit=1), "", _text(1000))) == [("w0", "w23")]


def test_split_all_says_where_each_document_begins() -> None:
    texts, starts = split_all(Passages(words=24, overlap=8), [("", _text(10)), ("", _text(56)), ("", _text(3))])
    assert starts == [0, 1, 4] and len(texts) == 5


def test_an_overlap_as_long_as_a_passage_is_refused() -> None:
    with pytest.raises(ValueError, match="must be shorter"):
        Passages(words=24, overlap=24)
    with pytest.raises(ValueError, match=r"overlap \(24 words\) must be shorter than it \(24\)"):
        ModelSettings(passage_words=24, passage_overlap=24)


def test_a_new_collection_takes_the_layout_of_the_first_document_that_says() -> None:
    def event(**layout: bool) -> DocumentEvent:
        return DocumentEvent(collection="c", doc_id="d", text="t", **layout)

    sizes = Passages(words=24, overlap=8)
    assert Layout.asked([event(late_interaction=False), event(passages=True)], sizes) == Layout()  # 2nd refused
    assert Layout.asked([event(passages=True), event(late_interaction=False)], sizes) == Layout(passages=sizes)
    assert Layout.asked([event(), event(late_interaction=True), event(passages=True)], sizes) == Layout(
        late_interaction=True)
    assert Layout.asked([event(passages=False)], sizes) == Layout()
