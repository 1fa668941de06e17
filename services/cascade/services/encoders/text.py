"""The text a model sees for a document: title and body, as BEIR evaluations of sentence-transformers do; and the
passages of a long one, each under its title."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cascade.services.settings import ModelSettings

__all__ = ["Passages", "Titled", "document_text"]

Titled = tuple[str, str]
"""A document's title and text."""


def document_text(title: str, text: str) -> str:
    return f"{title} {text}" if title else text


@dataclass(frozen=True)
class Passages:
    """How a collection made with passages splits its documents (CASCADE_MODELS_PASSAGE_WORDS, ..._OVERLAP,
    CASCADE_MODELS_MAX_PASSAGES): ingest encodes each passage, the reranker scores each."""

    words: int = 150
    overlap: int = 30
    limit: int = 32

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.words:
            raise ValueError(f"a passage's overlap ({self.overlap} words) must be shorter than it ({self.words})")

    @classmethod
    def of(cls, models: ModelSettings) -> Passages:
        return cls(models.passage_words, models.passage_overlap, models.max_passages)

    @property
    def label(self) -> str:
        """Part of each document's content hash: other sizes encode the collection anew."""
        return f"passages {self.words}/{self.overlap}/{self.limit}"

    def split(self, title: str, text: str) -> list[str]:
        """Windows of `words` words, each starting `words - overlap` after the one before and the last one ending
        with the text, at most `limit`; each under the document's title. A text of at most `words` words is one
        passage: the document's own text."""
        tokens = text.split()
        if len(tokens) <= self.words:
            return [document_text(title, text)]
        starts = list(range(0, len(tokens) - self.words, self.words - self.overlap))[: self.limit - 1]
        if len(starts) < self.limit:
            starts.append(len(tokens) - self.words)
        return [document_text(title, " ".join(tokens[start : start + self.words])) for start in starts]

    def split_all(self, documents: Sequence[Titled]) -> tuple[list[str], list[int]]:
        """Every document's passages in one list, and where each document's begin in it."""
        passages: list[str] = []
        starts: list[int] = []
        for title, text in documents:
            starts.append(len(passages))
            passages += self.split(title, text)
        return passages, starts
