"""Cascade's async Python SDK: index documents and search over Kafka."""

from cascade.contracts.security import KafkaAccessError, KafkaSecurity
from cascade.sdk.acks import IngestRejected, ReindexFailed
from cascade.sdk.client import InvalidDocuments, SearchClient, SearchFailed, SearchTimeout
from cascade.sdk.corpus import read_jsonl_documents
from cascade.sdk.replies import ReplyRouterFailed, ResultStreamOverflow

__all__ = [
    "IngestRejected",
    "InvalidDocuments",
    "KafkaAccessError",
    "KafkaSecurity",
    "ReindexFailed",
    "ReplyRouterFailed",
    "ResultStreamOverflow",
    "SearchClient",
    "SearchFailed",
    "SearchTimeout",
    "read_jsonl_documents",
]
