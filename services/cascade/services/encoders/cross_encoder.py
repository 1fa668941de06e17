"""The cross-encoder: any Hugging Face sequence-classification checkpoint scoring (query, document) pairs.

Scoring is split in two so a batcher can plan: `tokenize` gives each pair's token ids (no padding), and
`score_tokenized` runs one padded batch. Single-logit heads score with their logit; two-class heads with
the log-odds of the positive class (logit 1 - logit 0), which ranks like its softmax probability.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from cascade.services.encoders.calibration import Calibration, read_calibration
from cascade.services.encoders.device import resolve_device
from cascade.services.encoders.int8 import quantize_int8
from cascade.services.settings import Precision

__all__ = ["Abandoned", "CrossEncoder", "ScoredBatch", "plan_passes", "score_in_passes"]

Encoding = dict[str, list[int]]
"""One tokenized pair: input_ids, attention_mask and (BERT-style models) token_type_ids, unpadded."""


@dataclass(frozen=True)
class ScoredBatch:
    scores: npt.NDArray[np.float32]
    padded_tokens: int


def plan_passes(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Pair indices grouped into forward passes: ascending length, each pass's rows x longest <= budget."""
    passes: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        if current and (len(current) + 1) * lengths[index] > token_budget:
            passes.append(current)
            current = []
        current.append(index)
    if current:
        passes.append(current)
    return passes


class Abandoned(Exception):
    """Nobody waits for these scores any more (their requests' deadlines passed): the remaining passes are
    not run."""


def score_in_passes(pairs: Sequence[Encoding], pass_tokens: int, forward: Callable[[list[Encoding]], ScoredBatch],
                    abandoned: Callable[[], bool] | None = None) -> ScoredBatch:
    """`forward` over the passes `plan_passes` makes of `pairs`, scores put back in the pairs' order. Before
    each pass, `abandoned()` may stop the work (Abandoned)."""
    scores = np.empty(len(pairs), dtype=np.float32)
    padded = 0
    for rows in plan_passes([len(pair["input_ids"]) for pair in pairs], pass_tokens):
        if abandoned is not None and abandoned():
            raise Abandoned(f"{len(pairs)} pairs abandoned after {padded} padded tokens")
        scored = forward([pairs[i] for i in rows])
        scores[rows] = scored.scores
        padded += scored.padded_tokens
    return ScoredBatch(scores, padded)


class CrossEncoder:
    def __init__(self, model: PreTrainedModel, tokenizer: Any, model_id: str, *, max_length: int = 256) -> None:
        labels = int(model.config.num_labels or 1)
        if labels not in (1, 2):
            raise ValueError(f"{model_id} has {labels} labels; a reranker needs a 1-logit or 2-class head")
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = next(model.parameters()).device
        self.max_length = max_length
        self._two_class = labels == 2
        self.calibration: Calibration | None = read_calibration(model_id)
        """Relevance probabilities from the raw scores, where the model's folder ships one."""
        self.pairs_scored = 0
        self.padded_tokens = 0
        self.attention_cells = 0
        """Sum over forward passes of rows x width^2: with padded_tokens, what a FLOP count needs."""

    @classmethod
    def load(
        cls, name_or_path: str, *, max_length: int = 256, device: Literal["auto", "cpu", "cuda"] = "auto",
        precision: Precision = "auto",
    ) -> CrossEncoder:
        """Any Hugging Face sequence-classification checkpoint, by hub name (if cached) or local path; in the
        device's precision (bf16/fp16 on CUDA, fp32 on CPU) or int8 (CPU only)."""
        if not name_or_path:
            raise ValueError("no cross-encoder configured: set CASCADE_MODELS_CROSS_ENCODER to a name or path")
        target, dtype = resolve_device(device)
        model = AutoModelForSequenceClassification.from_pretrained(name_or_path, dtype=dtype).to(target).eval()
        if precision == "int8":
            model = quantize_int8(model)
        return cls(model, AutoTokenizer.from_pretrained(name_or_path), name_or_path, max_length=max_length)

    def tokenize(self, query: str, documents: Sequence[str]) -> list[Encoding]:
        """Each (query, document) pair tokenized, truncated to max_length, unpadded."""
        encoded = self.tokenizer([query] * len(documents), list(documents), truncation=True,
                                 max_length=self.max_length)
        names = list(encoded.keys())
        return [{name: encoded[name][row] for name in names} for row in range(len(documents))]

    @torch.inference_mode()
    def score_tokenized(self, pairs: Sequence[Encoding]) -> ScoredBatch:
        """One forward pass over `pairs`, padded to the longest of them."""
        batch = self.tokenizer.pad(list(pairs), return_tensors="pt").to(self.device)
        logits = self.model(**batch).logits.float()
        scores = logits[:, 1] - logits[:, 0] if self._two_class else logits[:, 0]
        rows, width = batch["input_ids"].shape
        self.pairs_scored += rows
        self.padded_tokens += rows * width
        self.attention_cells += rows * width * width
        return ScoredBatch(scores.cpu().numpy().astype(np.float32), padded_tokens=rows * width)

    def flops(self, padded_tokens: int, attention_cells: int) -> float:
        """Forward FLOPs of the encoder layers for that much work (embeddings and head are negligible)."""
        config = self.model.config
        hidden, layers = int(config.hidden_size), int(config.num_hidden_layers)
        per_token = 8 * hidden * hidden + 4 * hidden * int(config.intermediate_size)
        return float(layers * (padded_tokens * per_token + 4 * hidden * attention_cells))

    def score_pairs(self, pairs: Sequence[Encoding], pass_tokens: int,
                    abandoned: Callable[[], bool] | None = None) -> ScoredBatch:
        """Scores in the given order; forward passes planned by `plan_passes` (length-sorted, within budget)."""
        return score_in_passes(pairs, pass_tokens, self.score_tokenized, abandoned)

    def score(self, query: str, documents: Sequence[str], pass_tokens: int = 1024) -> npt.NDArray[np.float32]:
        """Scores of (query, document) pairs in the given order; a convenience for tools and tests."""
        return self.score_pairs(self.tokenize(query, documents), pass_tokens).scores
