"""The models: a bi-encoder for the first stage and a cross-encoder for reranking."""

import transformers

from cascade.services.encoders.bi_encoder import DEFAULT_BI_ENCODER_ID, BiEncoder, default_bi_encoder_path
from cascade.services.encoders.calibration import Calibration
from cascade.services.encoders.catalogue import CATALOGUE, DEFAULT_MODEL, ModelNotFetched, ModelSpec, resolve_model
from cascade.services.encoders.cross_encoder import CrossEncoder, ScoredBatch, plan_passes
from cascade.services.encoders.device import resolve_device
from cascade.services.encoders.late_interaction import LateInteractionEncoder, maxsim
from cascade.services.encoders.registry import BiEncoders, LateInteractionLoader, UnknownModel
from cascade.services.encoders.rerank_batcher import BatcherStopped, RerankBatcher, RerankOutcome
from cascade.services.encoders.text import configured_passages, document_text

transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # loading weights draws no bars on stderr

__all__ = [
    "CATALOGUE",
    "DEFAULT_BI_ENCODER_ID",
    "DEFAULT_MODEL",
    "BatcherStopped",
    "BiEncoder",
    "BiEncoders",
    "Calibration",
    "CrossEncoder",
    "LateInteractionEncoder",
    "LateInteractionLoader",
    "ModelNotFetched",
    "ModelSpec",
    "RerankBatcher",
    "RerankOutcome",
    "ScoredBatch",
    "UnknownModel",
    "configured_passages",
    "default_bi_encoder_path",
    "document_text",
    "maxsim",
    "plan_passes",
    "resolve_device",
    "resolve_model",
]
