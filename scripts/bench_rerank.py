"""The reranker's batching and scoring path against sentence-transformers' CrossEncoder.predict, same pairs.

    python -m scripts.bench_rerank [--queries 10] [--device cpu|cuda] [--model PATH]

For SciFact and WikiQA test queries, the candidate sets are the bi-encoder's exact top 100 over the whole
corpus (as the query service would send). Both paths score exactly the same pairs with the same weights and
threads, in one run: Cascade's RerankBatcher (candidate sets submitted `--in-flight` at a time, as a reranker
pod takes them from Kafka) and `CrossEncoder.predict(pairs_of_one_set, batch_size=32)`, one set after another.
Also measures a plain torch matmul's GFLOP/s as this machine's peak. On CPU, the int8 path
(`CASCADE_MODELS_CROSS_PRECISION=int8`) scores the same sets through the same batcher for its ratio to fp32,
and (unless --no-quality) the shipped reranker's WikiQA test MRR@10 is measured through the services
(`cascade-eval`, mode rerank, every test query) in fp32 and in int8. Writes bench/rerank.json (or --out).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from cascade.evaluation.beir import corpus_vectors, exact_top_k, load_split
from cascade.evaluation.harness import EvalOptions
from cascade.evaluation.run import run_evaluation
from cascade.evaluation.timing import timed_gather
from cascade.services.encoders import BiEncoder, CrossEncoder, RerankBatcher, default_bi_encoder_path
from cascade.services.log import configure_logging
from cascade.services.settings import (
    BUNDLED_RERANKER,
    BatchingSettings,
    ModelSettings,
    Settings,
    StoreSettings,
    bundled_models,
)
from scripts.benchlib import BENCH_DIR, DATA_DIR, machine, write_result

CandidateSets = list[tuple[str, list[str]]]


def fresh_head_reranker(folder: Path) -> Path:
    """MiniLM-L6 weights with a new single-logit head: the speed of a trained reranker of the same shape."""
    source = default_bi_encoder_path()
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(source, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def candidate_sets(dataset: str, queries: int, bi_encoder: BiEncoder) -> CandidateSets:
    split = load_split(DATA_DIR / dataset)
    vectors = corpus_vectors(split, bi_encoder)
    chosen = list(split.queries.items())[:queries]
    query_vectors = bi_encoder.encode_queries([text for _, text in chosen])
    texts = split.texts
    return [(query, [texts[i] for i in row])
            for (_, query), row in zip(chosen, exact_top_k(query_vectors, vectors, 100), strict=True)]


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - began)
    return 2 * n**3 / best / 1e9


async def cascade_path(encoder: CrossEncoder, sets: CandidateSets, in_flight: int) -> tuple[float, list[float]]:
    """Seconds for all sets through the batcher, and each set's latency (submission to scores)."""
    batching = BatchingSettings()
    batcher = RerankBatcher(encoder, batching.rerank_gather_tokens, batching.pass_tokens(encoder.device.type),
                            batching.rerank_max_wait_ms)
    batcher.start()

    async def one(candidate_set: tuple[str, list[str]]) -> None:
        await batcher.score(*candidate_set)

    began = time.perf_counter()
    timed = await timed_gather(sets, one, in_flight, "cascade batcher")
    elapsed = time.perf_counter() - began
    await batcher.stop()
    return elapsed, [ms for _, ms in timed]


def sentence_transformers_path(model: Path, sets: CandidateSets, max_length: int, device: str) -> float:
    from sentence_transformers import CrossEncoder as STCrossEncoder

    st = STCrossEncoder(str(model), max_length=max_length, device=device,
                        model_kwargs={"dtype": torch.float16} if device == "cuda" else {})
    st.predict([(sets[0][0], sets[0][1][0])])  # warm-up
    began = time.perf_counter()
    for query, documents in tqdm(sets, desc="sentence-transformers", unit="set"):
        st.predict([(query, document) for document in documents], batch_size=32, show_progress_bar=False)
    return time.perf_counter() - began


def _latency(latencies: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(latencies), "p99": float(np.percentile(latencies, 99))}


def _warm_run(encoder: CrossEncoder, sets: CandidateSets, in_flight: int) -> tuple[float, list[float]]:
    encoder.score(sets[0][0], sets[0][1][:4])  # warm-up
    return asyncio.run(cascade_path(encoder, sets, in_flight))


def bench_dataset(name: str, sets: CandidateSets, model: Path, args: argparse.Namespace) -> dict[str, Any]:
    encoder = CrossEncoder.load(str(model), max_length=args.max_length, device=args.device)
    before = (encoder.padded_tokens, encoder.attention_cells)
    cascade_s, latencies = _warm_run(encoder, sets, args.in_flight)
    flops = encoder.flops(encoder.padded_tokens - before[0], encoder.attention_cells - before[1])
    st_s = sentence_transformers_path(model, sets, args.max_length, str(encoder.device))
    pairs = sum(len(documents) for _, documents in sets)
    figures = {
        "candidate_sets": len(sets), "pairs": pairs,
        "cascade_pairs_per_s": pairs / cascade_s, "sentence_transformers_pairs_per_s": pairs / st_s,
        "ratio_vs_sentence_transformers": st_s / cascade_s,
        "cascade_gflops_per_s": flops / cascade_s / 1e9,
        "cascade_set_latency_ms": _latency(latencies),
        "padded_tokens": encoder.padded_tokens - before[0],
    }
    if args.device == "cpu":
        int8 = CrossEncoder.load(str(model), max_length=args.max_length, device="cpu", precision="int8")
        int8_s, int8_latencies = _warm_run(int8, sets, args.in_flight)
        figures["int8"] = {"pairs_per_s": pairs / int8_s, "ratio_vs_fp32": cascade_s / int8_s,
                           "set_latency_ms": _latency(int8_latencies)}
    return figures


def wikiqa_quality(model: Path) -> dict[str, Any]:
    """The reranker's WikiQA test MRR@10 through the services, fp32 and int8, same first stage and queries."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cascade-int8-") as stores:
        for precision in ("auto", "int8"):
            settings = Settings(store=StoreSettings(path=Path(stores) / precision), metrics_port=None,
                                models=ModelSettings(cross_encoder=str(model), cross_precision=precision))
            [report] = asyncio.run(run_evaluation(settings, [DATA_DIR / "wikiqa"], EvalOptions(
                modes=("rerank",), exact_recall=False), BENCH_DIR / "eval" / f"wikiqa-rerank-{precision}"))
            fused = next(mode for mode in report["metrics"] if "+fusion" in mode)
            figures["fp32" if precision == "auto" else "int8"] = {
                "mrr@10": report["metrics"]["rerank"]["mrr@10"], "fused_mrr@10": report["metrics"][fused]["mrr@10"],
                "rerank_p50_ms": report["latency_ms"]["rerank"]["p50"]}
    figures["wikiqa_mrr@10_delta"] = figures["int8"]["mrr@10"] - figures["fp32"]["mrr@10"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=10, help="candidate sets (of 100) per dataset")
    parser.add_argument("--in-flight", type=int, default=BatchingSettings().rerank_max_records)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", type=Path, help="a cross-encoder folder (default: MiniLM-L6, fresh head)")
    parser.add_argument("--out", default="rerank")
    parser.add_argument("--no-quality", action="store_true", help="skip the fp32/int8 WikiQA quality runs")
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    peak = matmul_peak_gflops(device, dtype)
    bi_encoder = BiEncoder(device=args.device)
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or fresh_head_reranker(Path(folder))
        datasets = {name: bench_dataset(name, candidate_sets(name, args.queries, bi_encoder), model, args)
                    for name in ("wikiqa", "scifact")}
    for figures in datasets.values():
        figures["fraction_of_matmul_peak"] = figures["cascade_gflops_per_s"] / peak
    result = {
        **datasets, "matmul_peak_gflops_per_s": peak,
        "fraction_of_matmul_peak": max(figures["fraction_of_matmul_peak"] for figures in datasets.values()),
        "settings": {"max_length": args.max_length, "device": args.device, "dtype": str(dtype),
                     "in_flight_sets": args.in_flight, "gather_tokens": BatchingSettings().rerank_gather_tokens,
                     "pass_tokens": BatchingSettings().pass_tokens(args.device),
                     "model": str(args.model or "all-MiniLM-L6-v2 weights + fresh 1-logit head"),
                     "sentence_transformers_batch_size": 32},
        "machine": machine(),
    }
    if args.device == "cpu":
        result["int8"] = {name: {"ratio_vs_fp32": datasets[name]["int8"]["ratio_vs_fp32"]} for name in datasets}
        if not args.no_quality:
            result["int8"].update(wikiqa_quality(bundled_models() / BUNDLED_RERANKER))
    path = write_result(args.out, result)
    for name, figures in datasets.items():
        print(f"{name}: cascade {figures['cascade_pairs_per_s']:.1f} pairs/s, sentence-transformers "
              f"{figures['sentence_transformers_pairs_per_s']:.1f} pairs/s, ratio "
              f"{figures['ratio_vs_sentence_transformers']:.2f}x; {figures['cascade_gflops_per_s']:.1f} GFLOP/s "
              f"= {figures['fraction_of_matmul_peak']:.0%} of matmul peak {peak:.0f} GFLOP/s; 100-candidate set "
              f"latency p50 {figures['cascade_set_latency_ms']['p50']:.1f} ms ({args.in_flight} in flight)")
    if "int8" in result:
        print("int8 vs fp32:", {name: round(figures["int8"]["ratio_vs_fp32"], 2) for name, figures in datasets.items()},
              "WikiQA MRR@10 delta", result["int8"].get("wikiqa_mrr@10_delta"))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
