"""The cross-encoder's int8 CPU path: dynamic quantisation of its linear layers.

Weights are stored as int8 once, a scale per output channel; each batch's activations are quantised on the fly
(torch's fbgemm kernels, which use AVX512-VNNI where the CPU has it). Attention scores, softmax, layer norms and
embeddings stay fp32. The GPU path stays fp16/bf16: int8 is refused there. Measured on the shipped reranker
(`bench/rerank.json`): 1.3-1.4x the pairs/s of fp32 for -0.03 WikiQA MRR@10, so it is opt-in.
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["quantize_int8"]


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 is the CPU path: on CUDA the reranker runs in bf16/fp16 (CASCADE_MODELS_CROSS_PRECISION"
                         "=auto)")
    with warnings.catch_warnings():  # eager-mode quantisation is deprecated in favour of torchao, whose CPU
        warnings.simplefilter("ignore", DeprecationWarning)  # int8 path needs torch.compile; this one does not
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        quantized: torch.nn.Module = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, dtype=torch.qint8)
    return quantized
