"""The reranker service: cross-encoder scoring of candidate sets behind a dynamic batcher."""

from cascade.services.reranker.processor import RerankProcessor
from cascade.services.reranker.service import reranker_consumers

__all__ = ["RerankProcessor", "reranker_consumers"]
