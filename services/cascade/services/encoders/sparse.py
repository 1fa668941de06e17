"""The sparse first stage: BM25 term vectors from Qdrant's own BM25 tokenizer (English, stemmed, stop words
removed), the same for the embedded store and a Qdrant server. Documents carry term frequencies normalised by
length; the store applies IDF at search time, so nothing is re-encoded as the collection grows."""

from __future__ import annotations

from collections.abc import Sequence

from qdrant_edge import Bm25, SparseVector

from cascade.services.store import Sparse

__all__ = ["Bm25Encoder"]


def _sparse(vector: SparseVector) -> Sparse:
    return Sparse(list(vector.indices), list(vector.values))


class Bm25Encoder:
    def __init__(self) -> None:
        self._model = Bm25()

    def encode_documents(self, documents: Sequence[str]) -> list[Sparse]:
        return [_sparse(self._model.embed_document(document)) for document in documents]

    def encode_query(self, query: str) -> Sparse:
        return _sparse(self._model.embed_query(query))
