"""The reranker service: cross-encoder scoring of candidate sets behind a dynamic batcher."""

from services.reranker.processor import RerankProcessor
from services.reranker.service import register_reranker

__all__ = ["RerankProcessor", "register_reranker"]
