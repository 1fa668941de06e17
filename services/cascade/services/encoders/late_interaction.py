"""The late-interaction (ColBERT) encoder: every token of a text as a small unit vector, scored by MaxSim.

A transformer encoder, a linear projection of its hidden states to `dim` (128) and L2 normalisation per token.
Queries and documents carry their markers (prefixes); queries are padded with [MASK] tokens to `query_length`
(ColBERT's query augmentation: the masks become soft expansion terms). MaxSim of a query and a document: for each
query token, its best cosine over the document's tokens, summed.

A folder holds the Hugging Face encoder, `projection.safetensors` and a `cascade.json` with a
`"late_interaction"` section (dim, markers, lengths, model id).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from cascade.services.encoders.device import resolve_device

__all__ = ["PROJECTION", "LateInteractionCard", "LateInteractionEncoder", "LateInteractionModel", "TokenVectors",
           "maxsim"]

TokenVectors = npt.NDArray[np.float32]
"""One text's token vectors: rows are tokens (padding left out), each a unit vector."""
PROJECTION = "projection.safetensors"


@dataclass(frozen=True)
class LateInteractionCard:
    model_id: str
    dim: int = 128
    query_prefix: str = "query: "
    document_prefix: str = "passage: "
    query_length: int = 32
    document_length: int = 180

    @classmethod
    def read(cls, folder: Path) -> LateInteractionCard:
        return cls(**json.loads((folder / "cascade.json").read_text())["late_interaction"])


def maxsim(query: TokenVectors, document: TokenVectors) -> float:
    """Sum over the query's tokens of the best cosine with any of the document's tokens."""
    return float((query @ document.T).max(axis=1).sum())


class LateInteractionModel(torch.nn.Module):
    """The encoder and its projection: what training updates and what a folder stores."""

    def __init__(self, encoder: PreTrainedModel, dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = torch.nn.Linear(int(encoder.config.hidden_size), dim, bias=False)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Unit token vectors (batch x tokens x dim, float32); padding rows are not zeroed (use the mask)."""
        hidden = self.encoder(**batch).last_hidden_state
        return torch.nn.functional.normalize(self.projection(hidden).float(), dim=-1)

    def save(self, folder: Path, tokenizer: Any, card: LateInteractionCard) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.half().save_pretrained(folder)  # type: ignore[no-untyped-call]  # fp16 on disk
        tokenizer.save_pretrained(folder)
        save_file({"weight": self.projection.weight.detach().half().contiguous()}, str(folder / PROJECTION))
        (folder / "cascade.json").write_text(json.dumps({"late_interaction": asdict(card)}, indent=2))

    @classmethod
    def load(cls, folder: Path, dim: int, dtype: torch.dtype = torch.float32) -> LateInteractionModel:
        model = cls(AutoModel.from_pretrained(str(folder), dtype=dtype), dim)
        model.projection.weight.data = load_file(str(folder / PROJECTION))["weight"].to(dtype)
        return model


def tokenize_queries(tokenizer: Any, card: LateInteractionCard, queries: Sequence[str]) -> dict[str, torch.Tensor]:
    """Queries with their marker, padded to `query_length` with [MASK] tokens that attend and are scored."""
    batch = tokenizer([card.query_prefix + query for query in queries], padding="max_length", truncation=True,
                      max_length=card.query_length, return_tensors="pt")
    padding = batch["attention_mask"] == 0
    batch["input_ids"][padding] = tokenizer.mask_token_id
    batch["attention_mask"][:] = 1
    return dict(batch)


def tokenize_documents(tokenizer: Any, card: LateInteractionCard, documents: Sequence[str]
                       ) -> dict[str, torch.Tensor]:
    return dict(tokenizer([card.document_prefix + document for document in documents], padding=True,
                          truncation=True, max_length=card.document_length, return_tensors="pt"))


class LateInteractionEncoder:
    """Token vectors of queries and documents, in length-sorted batches."""

    def __init__(self, folder: str | Path, *, batch_size: int = 32, device: Literal["auto", "cpu", "cuda"] = "auto",
                 loaded: tuple[LateInteractionModel, Any] | None = None) -> None:
        """`loaded`: a model and tokenizer already in memory (one being trained), used as they are."""
        self.folder = Path(folder)
        self.card = LateInteractionCard.read(self.folder)
        self.model_id = self.card.model_id
        self.dim = self.card.dim
        if loaded is None:
            self.device, dtype = resolve_device(device)
            self.model = LateInteractionModel.load(self.folder, self.dim, dtype).to(self.device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        else:
            self.model, self.tokenizer = loaded
            self.device = next(self.model.parameters()).device
        self.batch_size = batch_size
        self._tokenizing = threading.Lock()
        """Held while the tokenizer runs: queries and documents set it up differently (padding, truncation) on
        the one Rust tokenizer before each call, and they are encoded in worker threads at once (query and
        ingest), so one thread's settings would otherwise apply to another's texts (wrong lengths, or
        `Already borrowed` from older tokenizers)."""

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        return self._encode(queries, lambda texts: tokenize_queries(self.tokenizer, self.card, texts))

    def encode_documents(self, documents: Sequence[str]) -> list[TokenVectors]:
        return self._encode(documents, lambda texts: tokenize_documents(self.tokenizer, self.card, texts))

    @torch.inference_mode()
    def _encode(self, texts: Sequence[str], tokenize: Any) -> list[TokenVectors]:
        output: list[TokenVectors] = [np.empty((0, self.dim), dtype=np.float32)] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            with self._tokenizing:
                tokenized = tokenize([texts[i] for i in rows])
            batch = {name: value.to(self.device) for name, value in tokenized.items()}
            vectors = self.model(batch).cpu().numpy()
            lengths = batch["attention_mask"].sum(dim=1).tolist()
            for row, matrix, length in zip(rows, vectors, lengths, strict=True):
                output[row] = np.ascontiguousarray(matrix[:length])
        return output
