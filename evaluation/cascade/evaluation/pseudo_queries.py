"""Queries without labels, drawn from text: a document's title (its body is the answer) and inverse-cloze spans (a
sentence taken out of a passage; the rest of the passage is the answer). They let the reranker's student see
domains that have no training split (Cranfield's aeronautics, Python's documentation) with a teacher to grade it.

Each pseudo-query comes with the text it was drawn from, rewritten so the query is not in it word for word.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["PseudoQuery", "cloze_queries", "python_documentation", "sentences", "title_queries"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


@dataclass(frozen=True)
class PseudoQuery:
    kind: str
    """"title" or "cloze"."""
    query: str
    answer: str
    """The passage the query came from, without the query's words in it verbatim."""
    source: int
    """Index of the originating document in its corpus (excluded from its candidates: `answer` replaces it)."""


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def title_queries(corpus: Sequence[dict[str, str]], count: int, rng: random.Random, min_words: int = 4
                  ) -> list[PseudoQuery]:
    """A title of at least `min_words` words as the query, its body as the answer."""
    usable = [i for i, doc in enumerate(corpus)
              if len(doc["title"].split()) >= min_words and len(doc["text"].split()) >= 20]
    return [PseudoQuery("title", corpus[i]["title"].strip(), _without_prefix(corpus[i]["text"], corpus[i]["title"]), i)
            for i in sorted(rng.sample(usable, min(count, len(usable))))]


def _without_prefix(text: str, title: str) -> str:
    """The body without the title it repeats at its start (Cranfield's abstracts do)."""
    words, heading = text.split(), title.split()
    if [word.lower() for word in words[: len(heading)]] != [word.lower() for word in heading]:
        return text.strip()
    return " ".join(words[len(heading) :]).lstrip(" .")


def cloze_queries(texts: Sequence[str], count: int, rng: random.Random, min_sentences: int = 3) -> list[PseudoQuery]:
    """Inverse cloze: one sentence (5-40 words) out of a passage of at least `min_sentences`, the rest as answer."""
    found: list[PseudoQuery] = []
    order = list(range(len(texts)))
    rng.shuffle(order)
    for i in order:
        parts = sentences(texts[i])
        if len(parts) < min_sentences:
            continue
        picks = [k for k, part in enumerate(parts) if 5 <= len(part.split()) <= 40]
        if not picks:
            continue
        k = rng.choice(picks)
        found.append(PseudoQuery("cloze", parts[k], " ".join(parts[:k] + parts[k + 1 :]), i))
        if len(found) == count:
            break
    return sorted(found, key=lambda query: query.source)


def python_documentation(min_words: int = 30) -> list[dict[str, str]]:
    """Python's own reference documentation (the `pydoc_data` topics shipped with CPython, PSF licence), as a
    corpus of paragraphs titled by their topic: technical prose unlike any of the evaluation sets."""
    from pydoc_data.topics import topics

    def paragraphs() -> Iterator[dict[str, str]]:
        for topic, body in sorted(topics.items()):
            for number, block in enumerate(re.split(r"\n\s*\n", body)):
                text = " ".join(block.split())
                if len(text.split()) >= min_words and not block.startswith("   "):
                    yield {"doc_id": f"{topic}-{number}", "title": topic, "text": text}

    return list(paragraphs())
