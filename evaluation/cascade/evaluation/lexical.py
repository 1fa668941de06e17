"""BM25 scored exactly in memory, the way the store scores its sparse vectors (Qdrant's BM25 term vectors, IDF
computed over the corpus at search time)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse
from qdrant_edge import Bm25

__all__ = ["bm25_scores"]


def _term_matrix(vectors: list[Any], vocabulary: dict[int, int]) -> scipy.sparse.csr_matrix:
    indices, values, pointers = [], [], [0]
    for vector in vectors:
        indices += [vocabulary.setdefault(index, len(vocabulary)) for index in vector.indices]
        values += list(vector.values)
        pointers.append(len(indices))
    return scipy.sparse.csr_matrix((values, indices, pointers), shape=(len(vectors), 1 << 20))


def bm25_scores(documents: list[str], queries: list[str]) -> npt.NDArray[np.float32]:
    """Qdrant's BM25 term vectors, scored with the IDF modifier's formula ln((N - n + 0.5) / (n + 0.5) + 1)."""
    model, vocabulary = Bm25(), dict[int, int]()
    corpus = _term_matrix([model.embed_document(text) for text in documents], vocabulary)
    asked = _term_matrix([model.embed_query(text) for text in queries], vocabulary)
    frequency = np.asarray((corpus > 0).sum(axis=0)).ravel()
    idf = np.log((len(documents) - frequency + 0.5) / (frequency + 0.5) + 1.0)
    return np.asarray((asked @ scipy.sparse.diags(idf) @ corpus.T).todense(), dtype=np.float32)
