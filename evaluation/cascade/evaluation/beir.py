"""BEIR folders (corpus.jsonl, queries*.jsonl, qrels/*.tsv) and a cached exact first stage over them."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
from tqdm import tqdm

from cascade.sdk import read_jsonl_documents
from cascade.services.encoders import BiEncoder, document_text

__all__ = ["BeirSplit", "corpus_vectors", "exact_top_k", "load_split", "read_qrels", "text_vectors"]

_CACHE = Path.home() / ".cache" / "cascade" / "vectors"


@dataclass(frozen=True)
class BeirSplit:
    name: str
    corpus: list[dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def texts(self) -> list[str]:
        return [document_text(doc["title"], doc["text"]) for doc in self.corpus]


def load_split(folder: Path, split: str = "test") -> BeirSplit:
    """A split of a BEIR folder: `test` reads corpus.jsonl and queries.jsonl, `train`/`dev` their suffixed files
    where they exist (WikiQA has a corpus per split; SciFact shares one corpus)."""
    suffix = "" if split == "test" else f".{split}"
    corpus_path = folder / f"corpus{suffix}.jsonl"
    corpus = list(read_jsonl_documents(corpus_path if corpus_path.exists() else folder / "corpus.jsonl"))
    with (folder / f"queries{suffix}.jsonl").open("rb") as lines:
        queries = {str(row["_id"]): row["text"] for row in map(orjson.loads, lines)}
    qrels = read_qrels(folder, split)
    judged = {query_id: text for query_id, text in queries.items() if query_id in qrels}
    return BeirSplit(f"{folder.name}/{split}", corpus, judged, qrels)


def read_qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    """The judgements of a split: query id -> document id -> relevance."""
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / f"{split}.tsv").open() as rows:
        for row in csv.DictReader(rows, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


def corpus_vectors(split: BeirSplit, encoder: BiEncoder) -> npt.NDArray[np.float32]:
    return text_vectors(split.texts, encoder, split.name)


def text_vectors(texts: list[str], encoder: BiEncoder, name: str, chunk: int = 256) -> npt.NDArray[np.float32]:
    """The bi-encoder's vectors of these documents, cached on disk by model and content (they take minutes on
    CPU, a 12-layer model on a large corpus hours): each chunk is kept as it is encoded, so an interrupted run
    resumes where it stopped."""
    key = hashlib.sha256(orjson.dumps([encoder.model_id, encoder.max_length, texts])).hexdigest()[:20]
    path, parts = _CACHE / f"{key}.npy", _CACHE / f"{key}.parts-{chunk}"
    if path.exists():
        cached: npt.NDArray[np.float32] = np.load(path)
        return cached
    parts.mkdir(parents=True, exist_ok=True)
    for start in tqdm(range(0, len(texts), chunk), desc=f"encode {name} ({encoder.name})", unit="batch"):
        part = parts / f"{start}.npy"
        if not part.exists():
            _save(part, encoder.encode_documents(texts[start : start + chunk]))
    vectors = np.concatenate([np.load(parts / f"{start}.npy") for start in range(0, len(texts), chunk)])
    _save(path, vectors)
    shutil.rmtree(parts)
    return vectors


def _save(path: Path, array: npt.NDArray[np.float32]) -> None:
    """Whole or not at all: an interrupt mid-write leaves no file to trust on the next run."""
    staging = path.with_name(f"{path.name}.tmp")
    with staging.open("wb") as out:
        np.save(out, array)
    os.replace(staging, path)


def exact_top_k(
    query_vectors: npt.NDArray[np.float32], corpus: npt.NDArray[np.float32], k: int
) -> npt.NDArray[np.int64]:
    """Row i: indices of the k corpus vectors nearest query i by cosine (brute force), best first."""
    scores = query_vectors @ corpus.T
    top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)
