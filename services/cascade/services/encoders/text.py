"""The text a model sees for a document: title and body, as BEIR evaluations of sentence-transformers do; and the
passages of a long one (how a collection of passages splits it: `cascade.contracts.Passages`), each under its
title."""

from __future__ import annotations

from collections.abc import Sequence

from cascade.contracts import Passages
from cascade.services.settings import ModelSettings

__all__ = ["Titled", "configured_passages", "document_text", "passages_label", "split_all", "split_passages"]

Titled = tuple[str, str]
"""A document's title and text."""


def document_text(title: str, text: str) -> str:
    return f"{title} {text}" if title else text


def configured_passages(models: ModelSettings) -> Passages:
    """How a collection of passages made now splits its documents (CASCADE_MODELS_PASSAGE_WORDS, ..._OVERLAP,
    CASCADE_MODELS_MAX_PASSAGES); an existing one keeps what it was made with."""
    return Passages(words=models.passage_words, overlap=models.passage_overlap, limit=models.max_passages)


def passages_label(passages: Passages) -> str:
    """Part of each document's content hash in a collection of passages."""
    return f"passages {passages.words}/{passages.overlap}/{passages.limit}"


def split_passages(passages: Passages, title: str, text: str) -> list[str]:
    """Windows of `words` words, each starting `words - overlap` after the one before and the last one ending with
    the text, at most `limit` (the first ones and the last); each under the document's title. A text of at most
    `words` words is one passage: the document's own text."""
    tokens = text.split()
    if len(tokens) <= passages.words:
        return [document_text(title, text)]
    windows = list(range(0, len(tokens) - passages.words, passages.words - passages.overlap))
    last = len(tokens) - passages.words
    starts = [*windows[: passages.limit - 1], last] if passages.limit > 1 else windows[:1]  # the first ones, the last
    return [document_text(title, " ".join(tokens[start : start + passages.words])) for start in starts]


def split_all(passages: Passages, documents: Sequence[Titled]) -> tuple[list[str], list[int]]:
    """Every document's passages in one list, and where each document's begin in it."""
    texts: list[str] = []
    starts: list[int] = []
    for title, text in documents:
        starts.append(len(texts))
        texts += split_passages(passages, title, text)
    return texts, starts
