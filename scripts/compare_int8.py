"""Which int8 CPU path for the cross-encoder: torch dynamic quantisation or ONNX Runtime, measured on the same pairs.

    python -m scripts.compare_int8 [--queries 10] [--rounds 2]

The shipped reranker scores the same candidate sets (the bi-encoder's exact top 100 for the first WikiQA and
SciFact test queries, as in bench_rerank) four ways, in the same passes (`plan_passes`, 1,024 padded tokens):
torch fp32 (Cascade's CPU path), torch int8 (`CASCADE_MODELS_CROSS_PRECISION=int8`), ONNX Runtime fp32 and ONNX
Runtime int8 (the graph exported by torch.onnx, fused by onnxruntime's BERT optimizer, weights quantised per
channel by `quantize_dynamic`), two intra-op threads each. Rounds alternate the paths so that this machine's
drifting speed falls on all of them; each ratio is the median over rounds. Agreement with fp32: Spearman
correlation of each set's scores, averaged. Writes bench/int8_choice.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers import optimizer
from scipy.stats import spearmanr
from tqdm import tqdm

from cascade.services.encoders import BiEncoder, CrossEncoder
from cascade.services.encoders.cross_encoder import Encoding, ScoredBatch, score_in_passes
from cascade.services.log import configure_logging
from cascade.services.settings import BUNDLED_RERANKER, bundled_models
from scripts.bench_rerank import candidate_sets
from scripts.benchlib import machine, write_result

PASS_TOKENS = 1_024
Scorer = Callable[[Sequence[Encoding]], npt.NDArray[np.float32]]


def export_onnx(encoder: CrossEncoder, folder: Path) -> tuple[Path, Path]:
    """(fp32, int8) ONNX graphs of `encoder`'s model, BERT-fused."""
    sample = encoder.tokenizer.pad(encoder.tokenize("a query", ["a document", "another document"]),
                                   return_tensors="pt")
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]  # forward's order
    raw, fused, quantised = folder / "model.onnx", folder / "model.fused.onnx", folder / "model.int8.onnx"
    torch.onnx.export(encoder.model, tuple(sample[name] for name in names), str(raw), input_names=names,
                      output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={**{name: {0: "rows", 1: "width"} for name in names}, "logits": {0: "rows"}})
    config = encoder.model.config
    optimizer.optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                             hidden_size=config.hidden_size).save_model_to_file(str(fused))
    quantize_dynamic(str(fused), str(quantised), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return fused, quantised


def onnx_scorer(path: Path, encoder: CrossEncoder) -> Scorer:
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = [each.name for each in session.get_inputs()]

    def forward(rows: list[Encoding]) -> ScoredBatch:
        batch = encoder.tokenizer.pad(rows, return_tensors="np")
        logits = session.run(None, {name: batch[name].astype(np.int64) for name in inputs})[0]
        return ScoredBatch(logits[:, 0].astype(np.float32), padded_tokens=batch["input_ids"].size)
    return lambda pairs: score_in_passes(pairs, PASS_TOKENS, forward).scores


def torch_scorer(encoder: CrossEncoder) -> Scorer:
    return lambda pairs: encoder.score_pairs(pairs, PASS_TOKENS).scores


def compare(scorers: dict[str, Scorer], sets: list[list[Encoding]], rounds: int) -> dict[str, Any]:
    pairs = sum(len(each) for each in sets)
    speeds: dict[str, list[float]] = {name: [] for name in scorers}
    scores: dict[str, list[npt.NDArray[np.float32]]] = {}
    for _ in tqdm(range(rounds), desc="rounds", unit="round"):
        for name, score in scorers.items():
            score(sets[0])  # warm
            began = time.perf_counter()
            scores[name] = [score(each) for each in sets]
            speeds[name].append(pairs / (time.perf_counter() - began))
    reference = scores["torch_fp32"]
    return {name: {
        "pairs_per_s": statistics.median(speeds[name]),
        "ratio_vs_torch_fp32": statistics.median(mine / base for mine, base in
                                                 zip(speeds[name], speeds["torch_fp32"], strict=True)),
        "spearman_vs_fp32": statistics.fmean(float(spearmanr(mine, base)[0]) for mine, base in
                                             zip(scores[name], reference, strict=True)),
    } for name in scorers} | {"pairs": pairs, "sets": len(sets)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    fp32 = CrossEncoder.load(str(bundled_models() / BUNDLED_RERANKER), device="cpu")
    int8 = CrossEncoder.load(str(bundled_models() / BUNDLED_RERANKER), device="cpu", precision="int8")
    bi_encoder = BiEncoder()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        fused, quantised = export_onnx(fp32, Path(folder))
        scorers = {"torch_fp32": torch_scorer(fp32), "torch_int8": torch_scorer(int8),
                   "onnx_fp32": onnx_scorer(fused, fp32), "onnx_int8": onnx_scorer(quantised, fp32)}
        for dataset in ("wikiqa", "scifact"):
            sets = [fp32.tokenize(query, documents)
                    for query, documents in candidate_sets(dataset, args.queries, bi_encoder)]
            result[dataset] = compare(scorers, sets, args.rounds)
    result |= {"settings": {"queries": args.queries, "rounds": args.rounds, "pass_tokens": PASS_TOKENS,
                            "onnxruntime": ort.__version__}, "machine": machine()}
    path = write_result("int8_choice", result)
    for dataset in ("wikiqa", "scifact"):
        for name in ("torch_int8", "onnx_fp32", "onnx_int8"):
            each = result[dataset][name]
            print(f"{dataset} {name}: {each['ratio_vs_torch_fp32']:.2f}x torch fp32 "
                  f"({each['pairs_per_s']:.1f} pairs/s), Spearman vs fp32 {each['spearman_vs_fp32']:.4f}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
