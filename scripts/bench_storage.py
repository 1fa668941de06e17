"""Bytes stored per document, plain against with token vectors (mode colbert), measured as disk blocks allocated.

    python -m scripts.bench_storage [--documents 1000]

Per corpus (WikiQA, SciFact, Cranfield test), the first `--documents` documents are encoded (MiniLM; ColBERT) and
upserted into an Edge collection in two halves; the marginal cost of a document is the growth of the blocks the
collection's files occupy between the halves, over the second half's documents (a preallocated, sparse file
counts only the pages written, so neither its apparent size nor a collection's fixed cost is counted). Beside it,
the vectors' own size: 384 float32 dense, and 128 float16 per token. Adds `bytes_per_document` (and
`per_dataset.bytes_per_document`) to bench/late_interaction.json (`python -m scripts.bench_late_interaction` first)
and draws bench/late_interaction.png.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from cascade.evaluation.beir import load_split
from cascade.services.encoders import BiEncoder, LateInteractionEncoder
from cascade.services.settings import BUNDLED_COLBERT, StoreSettings, bundled_models
from cascade.services.store import EdgeStore, StoredDocument
from scripts.bench_late_interaction import DATASETS, MODES, plot
from scripts.benchlib import BENCH_DIR, DATA_DIR, write_result


def _allocated(folder: Path) -> int:
    return sum(path.stat().st_blocks * 512 for path in folder.rglob("*") if path.is_file())


async def _marginal(documents: list[StoredDocument], token_dim: int | None) -> float:
    half = len(documents) // 2
    with tempfile.TemporaryDirectory() as root:
        store = EdgeStore(StoreSettings(path=Path(root)))
        await store.ensure_collection("c", len(documents[0].vector), "m", token_dim)
        await store.upsert("c", documents[:half])
        await store.close()
        before = _allocated(Path(root) / "c")
        store = EdgeStore(StoreSettings(path=Path(root)))
        await store.upsert("c", documents[half:])
        await store.close()
        return (_allocated(Path(root) / "c") - before) / (len(documents) - half)


def measure(dataset: str, count: int, dense: BiEncoder, late: LateInteractionEncoder) -> dict[str, Any]:
    split = load_split(DATA_DIR / dataset, "test")
    corpus = [doc for doc in split.corpus if doc["text"].strip()][:count]
    texts = [text for doc, text in zip(split.corpus, split.texts, strict=True) if doc["text"].strip()][:count]
    vectors = dense.encode_documents(texts)
    tokens = [matrix for start in tqdm(range(0, len(texts), 64), desc=f"colbert {dataset}", unit="batch")
              for matrix in late.encode_documents(texts[start : start + 64])]

    def stored(with_tokens: bool) -> list[StoredDocument]:
        return [StoredDocument(doc_id=doc["doc_id"], vector=vector.tolist(), title=doc["title"], text=doc["text"],
                               content_hash="h" * 32, model_id=dense.model_id, ingested_at_ms=0.0,
                               tokens=matrix if with_tokens else None)
                for doc, vector, matrix in zip(corpus, vectors, tokens, strict=True)]

    mean_tokens = sum(len(matrix) for matrix in tokens) / len(tokens)
    return {"plain": asyncio.run(_marginal(stored(False), None)),
            "colbert": asyncio.run(_marginal(stored(True), late.dim)),
            "mean_tokens": round(mean_tokens, 1), "dense_vector_bytes": 4 * dense.dim,
            "token_vector_bytes": round(2 * late.dim * mean_tokens)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--colbert", type=Path, default=bundled_models() / BUNDLED_COLBERT)
    args = parser.parse_args()
    dense, late = BiEncoder(device="cpu"), LateInteractionEncoder(args.colbert, device="cpu")
    found = {dataset: measure(dataset, args.documents, dense, late) for dataset in DATASETS}
    path = BENCH_DIR / "late_interaction.json"
    result = orjson.loads(path.read_bytes())
    per_dataset = {"plain": [round(found[d]["plain"]) for d in DATASETS],
                   "colbert": [round(found[d]["colbert"]) for d in DATASETS]}
    by_mode = {mode: per_dataset["colbert" if mode == "colbert" else "plain"] for mode in MODES}
    result["bytes_per_document"] = {mode: round(sum(values) / len(values)) for mode, values in by_mode.items()}
    result["per_dataset"]["bytes_per_document"] = by_mode
    result["storage"] = {"method": "marginal allocated disk blocks per document (scripts/bench_storage.py)",
                         "documents_per_corpus": args.documents, "datasets": list(DATASETS), **found}
    print(write_result("late_interaction", result))
    plot(result, BENCH_DIR / "late_interaction.png")
    print(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
