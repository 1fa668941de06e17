"""The query service: batched, cached query encoding and HNSW retrieval; routes requests by mode."""

from cascade.services.query.encoding import QueryVectorCache
from cascade.services.query.processor import QueryProcessor
from cascade.services.query.service import query_consumer

__all__ = ["QueryProcessor", "QueryVectorCache", "query_consumer"]
