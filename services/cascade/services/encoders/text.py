"""The text a model sees for a document: title and body, as BEIR evaluations of sentence-transformers do; and the
passages of a long one, each under its title."""

from __future__ import annotations

from dataclasses import dataclass

from cascade.services.settings import ModelSettings

__all__ = ["Passages", "document_text"]


def document_text(title: str, text: str) -> str:
    return f"{title} {text}" if title else text


@dataclass(frozen=True)
class Passages:
    """How a collection made with passages splits its documents (CASCADE_MODELS_PASSAGE_WORDS, ..._OVERLAP,
    CASCADE_MODELS_MAX_PASSAGES): ingest encodes each passage, the reranker scores each."""

    words: int = 150
    overlap: int = 30
    limit: int = 32

    @classmethod
    def of(cls, models: ModelSettings) -> Passages:
        return cls(models.passage_words, models.passage_overlap, models.max_passages)

    @property
    def label(self) -> str:
        """Part of each document's content hash: other sizes encode the collection anew."""
        return f"passages {self.words}/{self.overlap}/{self.limit}"

    def split(self, title: str, text: str) -> list[str]:
        """Windows of `words` words, each starting `words - overlap` after the one before, at most `limit`; each
        under the document's title. A text of at most `words` words is one passage: the document's own text."""
        tokens = text.split()
        if len(tokens) <= self.words:
            return [document_text(title, text)]
        starts = range(0, len(tokens) - self.overlap, max(self.words - self.overlap, 1))
        return [document_text(title, " ".join(tokens[start : start + self.words])) for start in starts][:self.limit]
