"""The first stage at a million vectors: HNSW latency, recall and footprint in Qdrant Edge, through the store.

    python -m scripts.bench_first_stage_1m [--queries 300]

Vectors: the real all-MiniLM-L6-v2 embeddings of the three shipped corpora (WikiQA, SciFact, Cranfield:
12,544 documents), each replicated with noise drawn from the corpora's own covariance (scaled by `NOISE`,
then renormalised), so the collection keeps the spread and the intrinsic dimension of real embeddings; the
originals are among the points. Queries: the real embeddings of the three sets' test queries.

For each configuration (100k and 1M points with float vectors; 1M with Qdrant's scalar int8 quantisation
and rescoring, `CASCADE_STORE_QUANTIZATION=int8`): load the points through `EdgeStore.upsert`, build the
index with `EdgeStore.build_index` (the copy optimised in a child process, as in serving), reopen the store,
and time `EdgeStore.search` at top-100 (payloads included, as the query service asks) one query at a time;
recall@100 against the store's exact search; the same at lower search breadths (hnsw_ef). The reopened
store runs in a fresh child process: RAM is the
growth of its resident memory from before the store opens to after the queries. Disk is the collection
folder's size. Writes bench/first_stage_1m.json.

`--server` measures the same million float vectors on a Qdrant server instead (the project's 1.18.3 build, one
node, `QdrantStore`, HNSW built by the server's own optimizer in the background: build is the wait until every
vector is indexed), and adds its row (`1m_server`) beside Edge's. RAM there is the server process's resident memory
after the queries.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from tqdm import tqdm

from cascade.evaluation.beir import corpus_vectors, load_split
from cascade.infra.local_qdrant import LocalQdrant
from cascade.services.encoders.bi_encoder import BiEncoder
from cascade.services.settings import StoreSettings
from cascade.services.store import QdrantStore, VectorStore, first_version, open_store
from cascade.services.store.edge import EdgeStore
from scripts.benchlib import BENCH_DIR, DATA_DIR, machine, upsert_points, write_result

COLLECTION = "million"
DATASETS = ("wikiqa", "scifact", "cranfield")
NOISE = 0.5
"""Scale of the covariance-shaped noise added to each copy (copies sit at cosine ~0.9 from their original)."""
TOP = 100
WARM_UP = 20
EFS = (128, 256)
"""Search breadths measured beside the store's default (`CASCADE_STORE_HNSW_EF`, 512), on the same queries."""


def real_embeddings(encoder: BiEncoder) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(documents, test queries) of the shipped corpora, embedded by `encoder` (documents cached on disk)."""
    documents, queries = [], []
    for name in DATASETS:
        split = load_split(DATA_DIR / name)
        documents.append(corpus_vectors(split, encoder))
        queries.append(encoder.encode_queries(list(split.queries.values())))
    return np.concatenate(documents).astype(np.float32), np.concatenate(queries).astype(np.float32)


def synthesise(real: npt.NDArray[np.float32], points: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """`points` unit vectors: the real ones, then noisy copies of them (module docstring)."""
    rng = np.random.default_rng(seed)
    centred = real - real.mean(axis=0)
    _, singular, basis = np.linalg.svd(centred, full_matrices=False)
    scale = singular / np.sqrt(len(real) - 1)  # standard deviation along each principal direction
    copies = points - len(real)
    out = np.empty((points, real.shape[1]), dtype=np.float32)
    out[: len(real)] = real
    for start in range(0, copies, 100_000):
        size = min(100_000, copies - start)
        noise = (rng.standard_normal((size, len(scale))) * scale * NOISE) @ basis
        block = real[rng.integers(0, len(real), size)] + noise
        out[len(real) + start : len(real) + start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def resident_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def measure_in_child(settings: StoreSettings, queries: npt.NDArray[np.float32], points: int) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as child:
        return child.submit(_measure, settings, queries, points).result()


def _measure(settings: StoreSettings, queries: npt.NDArray[np.float32], points: int) -> dict[str, Any]:
    return asyncio.run(measure(settings, queries, points))


async def _timed(store: VectorStore, queries: npt.NDArray[np.float32]) -> tuple[list[float], list[set[str]]]:
    for query in queries[:WARM_UP]:  # page the index in: a serving store is warm
        await store.search(COLLECTION, query.tolist(), TOP)
    latencies, found = [], []
    for query in tqdm(queries, desc="ANN top-100", unit="query"):
        began = time.perf_counter()
        hits = await store.search(COLLECTION, query.tolist(), TOP)
        latencies.append((time.perf_counter() - began) * 1000)
        found.append({hit.doc_id for hit in hits})
    return latencies, found


def _summary(latencies: list[float], found: list[set[str]], exact: list[set[str]]) -> dict[str, float]:
    return {"p50_ms": statistics.median(latencies), "p99_ms": float(np.percentile(latencies, 99)),
            "recall@100": statistics.fmean(len(hits & truth) / len(truth) for hits, truth in zip(found, exact,
                                                                                                 strict=True))}


async def _exact(store: VectorStore, queries: npt.NDArray[np.float32]) -> list[set[str]]:
    """Each query's true top 100 (the store's exact search): what recall is measured against."""
    return [{hit.doc_id for hit in await store.search(COLLECTION, query.tolist(), TOP, exact=True)}
            for query in tqdm(queries, desc="exact top-100", unit="query")]


async def _by_ef(settings: StoreSettings, queries: npt.NDArray[np.float32], exact: list[set[str]]
                 ) -> dict[int, dict[str, float]]:
    """The same queries at each of EFS, a store opened per search breadth."""
    by_ef = {}
    for ef in EFS:
        store = open_store(settings.model_copy(update={"hnsw_ef": ef}))
        try:
            by_ef[ef] = _summary(*await _timed(store, queries), exact)
        finally:
            await store.close()
    return by_ef


def _printed(result: dict[str, Any]) -> dict[str, Any]:
    print({key: round(value, 4) if isinstance(value, float) else value for key, value in result.items()})
    return result


async def measure(settings: StoreSettings, queries: npt.NDArray[np.float32], points: int) -> dict[str, Any]:
    """The store's defaults (and RAM), then the same queries at each of EFS (a store reopened per ef)."""
    before = resident_bytes()
    store = EdgeStore(settings)
    try:
        latencies, found = await _timed(store, queries)
        ram = resident_bytes() - before
        exact = await _exact(store, queries)
        pending = await store.pending_index_points(COLLECTION)
    finally:
        await store.close()
    return {**_summary(latencies, found, exact), "ram_bytes_per_vector": ram / points,
            "by_ef": await _by_ef(settings, queries, exact),
            "bytes_per_vector": folder_bytes(settings.path / COLLECTION) / points, "unindexed_points": pending}


async def configuration(vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], root: Path,
                        quantization: str) -> dict[str, Any]:
    path = root / f"{len(vectors)}-{quantization}"
    settings = StoreSettings(path=path, quantization=quantization)
    store = EdgeStore(settings)
    try:
        began = time.perf_counter()
        await upsert_points(store, COLLECTION, vectors, "all-MiniLM-L6-v2")
        load_s = time.perf_counter() - began
        began = time.perf_counter()
        await store.build_index(COLLECTION)
        build_s = time.perf_counter() - began
    finally:
        await store.close()
    result = {"points": len(vectors), "quantization": quantization, "load_s": load_s, "build_s": build_s,
              **await asyncio.to_thread(measure_in_child, settings, queries, len(vectors))}
    shutil.rmtree(path, ignore_errors=True)
    return _printed(result)


def _wait_until_indexed(url: str, deadline_s: float = 3600.0) -> int:
    """Until the server's optimizers are done (status green, checked every 5 s); the points left out of the HNSW
    graph then (a last small segment may stay unindexed, searched brute force)."""
    give_up_at = time.monotonic() + deadline_s
    while True:
        with urllib.request.urlopen(f"{url}/collections/{first_version(COLLECTION)}", timeout=10) as response:
            info = orjson.loads(response.read())["result"]
        if info["status"] == "green" or time.monotonic() > give_up_at:
            return int(info["points_count"] or 0) - int(info["indexed_vectors_count"] or 0)
        time.sleep(5)


async def server_configuration(vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]
                               ) -> dict[str, Any]:
    """The million float vectors on one Qdrant server, through QdrantStore (module docstring)."""
    with LocalQdrant() as server:
        settings = StoreSettings(kind="qdrant", url=server.url)
        store = QdrantStore(settings)
        try:
            began = time.perf_counter()
            await upsert_points(store, COLLECTION, vectors, "all-MiniLM-L6-v2")
            load_s = time.perf_counter() - began
            began = time.perf_counter()
            unindexed = await asyncio.to_thread(_wait_until_indexed, server.url)
            build_s = time.perf_counter() - began
            latencies, found = await _timed(store, queries)
            exact = await _exact(store, queries)
        finally:
            await store.close()
        result = {"points": len(vectors), "quantization": "none", "load_s": load_s, "build_s": build_s,
                  **_summary(latencies, found, exact), "by_ef": await _by_ef(settings, queries, exact),
                  "ram_bytes_per_vector": resident_bytes(server.pid()) / len(vectors),
                  "bytes_per_vector": folder_bytes(server.storage()) / len(vectors), "unindexed_points": unindexed,
                  "server": "qdrant 1.18.3"}
    return _printed(result)


def vectors_and_queries(points: int, queries: int
                        ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], int]:
    """The points, the queries measured, and how many of the points are real document embeddings."""
    documents, query_vectors = real_embeddings(BiEncoder())
    chosen = query_vectors[np.random.default_rng(1).permutation(len(query_vectors))[:queries]]
    return synthesise(documents, points), chosen, len(documents)


async def run(points: int, small: int, queries: int, root: Path) -> dict[str, Any]:
    vectors, chosen, real = vectors_and_queries(points, queries)
    result: dict[str, Any] = {
        "100k": await configuration(vectors[:small], chosen, root, "none"),
        "1m": await configuration(vectors, chosen, root, "none"),
        "1m_int8": await configuration(vectors, chosen, root, "int8"),
        "real_documents": real,
    }
    result["ratio_p50"] = result["1m"]["p50_ms"] / result["100k"]["p50_ms"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None, help="where the shards go (default: a temp folder)")
    parser.add_argument("--server", action="store_true", help="add the Qdrant server's row to the existing results")
    args = parser.parse_args()
    if args.server:
        vectors, chosen, _ = vectors_and_queries(args.points, args.queries)
        result = orjson.loads((BENCH_DIR / "first_stage_1m.json").read_bytes())
        result["1m_server"] = asyncio.run(server_configuration(vectors, chosen))
        result["ratio_p50_server_vs_edge"] = result["1m_server"]["p50_ms"] / result["1m"]["p50_ms"]
        print(f"server p50 {result['1m_server']['p50_ms']:.2f} ms vs Edge's {result['1m']['p50_ms']:.2f} ms -> "
              f"{write_result('first_stage_1m', result)}")
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        result = asyncio.run(run(args.points, args.small, args.queries, Path(root)))
    defaults = StoreSettings()
    result |= {"vectors": f"real all-MiniLM-L6-v2 embeddings of {', '.join(DATASETS)} "
                          f"({result['real_documents']:,} documents), "
                          f"replicated with covariance-shaped noise x{NOISE}, renormalised; queries: their real "
                          "test-query embeddings",
               "settings": {"hnsw_m": defaults.hnsw_m, "hnsw_ef_construct": defaults.hnsw_ef_construct,
                            "hnsw_ef": defaults.hnsw_ef, "oversampling": defaults.oversampling, "top": TOP,
                            "queries": args.queries},
               "machine": machine()}
    path = write_result("first_stage_1m", result)
    for key in ("100k", "1m", "1m_int8"):
        measured = result[key]
        print(f"{key}: p50 {measured['p50_ms']:.2f} ms p99 {measured['p99_ms']:.2f} ms recall@100 "
              f"{measured['recall@100']:.4f} build {measured['build_s']:.0f} s disk {measured['bytes_per_vector']:.0f}"
              f" B/vector RAM {measured['ram_bytes_per_vector']:.0f} B/vector")
    print(f"p50 1M / 100k: {result['ratio_p50']:.2f} -> {path}")


if __name__ == "__main__":
    main()
