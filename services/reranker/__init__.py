"""The reranker service: cross-encoder scoring of candidate sets behind a dynamic batcher."""

from services.reranker.processor import RerankProcessor
from services.reranker.service import reranker_consumer

__all__ = ["RerankProcessor", "reranker_consumer"]
