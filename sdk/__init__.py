"""Cascade's async Python SDK: index documents and search over Kafka."""

from sdk.acks import IngestRejected, ReindexFailed
from sdk.client import InvalidDocuments, SearchClient, SearchFailed, SearchTimeout
from sdk.corpus import read_jsonl_documents
from sdk.replies import ReplyRouterFailed, ResultStreamOverflow
from sdk.security import KafkaAccessError, KafkaSecurity

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
