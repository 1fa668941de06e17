"""The models: a bi-encoder for the first stage and a cross-encoder for reranking."""

from services.encoders.bi_encoder import DEFAULT_BI_ENCODER_ID, BiEncoder, default_bi_encoder_path
from services.encoders.catalogue import CATALOGUE, DEFAULT_MODEL, ModelNotFetched, ModelSpec, resolve_model
from services.encoders.cross_encoder import CrossEncoder, ScoredBatch, plan_passes
from services.encoders.device import resolve_device
from services.encoders.late_interaction import LateInteractionEncoder, maxsim
from services.encoders.registry import BiEncoders, UnknownModel
from services.encoders.rerank_batcher import BatcherStopped, RerankBatcher, RerankOutcome
from services.encoders.text import document_text

__all__ = [
    "CATALOGUE",
    "DEFAULT_BI_ENCODER_ID",
    "DEFAULT_MODEL",
    "BatcherStopped",
    "BiEncoder",
    "BiEncoders",
    "CrossEncoder",
    "LateInteractionEncoder",
    "ModelNotFetched",
    "ModelSpec",
    "RerankBatcher",
    "RerankOutcome",
    "ScoredBatch",
    "UnknownModel",
    "default_bi_encoder_path",
    "document_text",
    "maxsim",
    "plan_passes",
    "resolve_device",
    "resolve_model",
]
