"""The models: a bi-encoder for the first stage and a cross-encoder for reranking."""

from services.encoders.bi_encoder import DEFAULT_BI_ENCODER_ID, BiEncoder, default_bi_encoder_path
from services.encoders.cross_encoder import CrossEncoder, ScoredBatch, plan_passes
from services.encoders.device import resolve_device
from services.encoders.rerank_batcher import BatcherStopped, RerankBatcher, RerankOutcome
from services.encoders.text import document_text

__all__ = [
    "DEFAULT_BI_ENCODER_ID",
    "BatcherStopped",
    "BiEncoder",
    "CrossEncoder",
    "RerankBatcher",
    "RerankOutcome",
    "ScoredBatch",
    "default_bi_encoder_path",
    "document_text",
    "plan_passes",
    "resolve_device",
]
