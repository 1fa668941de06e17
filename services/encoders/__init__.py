"""The models: a bi-encoder for the first stage and a cross-encoder for reranking."""

from services.encoders.bi_encoder import DEFAULT_BI_ENCODER_ID, BiEncoder, default_bi_encoder_path
from services.encoders.device import resolve_device

__all__ = ["DEFAULT_BI_ENCODER_ID", "BiEncoder", "default_bi_encoder_path", "resolve_device"]
