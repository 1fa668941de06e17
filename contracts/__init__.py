"""Cascade's public contract: message schemas, their limits and codec, and the topic registry."""

from contracts.codec import ContractError, decode, encode
from contracts.messages import (
    SCHEMA_VERSION,
    Candidate,
    CandidateSet,
    DeadLetter,
    DocumentEvent,
    ErrorInfo,
    Hit,
    IngestAck,
    Message,
    ReindexRequest,
    ReindexStatus,
    SearchRequest,
    SearchResult,
    StageTimings,
    elapsed_ms,
    now_ms,
)
from contracts.topics import DEFAULT_PREFIX, Topic, TopicRegistry, TopicSpec

__all__ = [
    "DEFAULT_PREFIX",
    "SCHEMA_VERSION",
    "Candidate",
    "CandidateSet",
    "ContractError",
    "DeadLetter",
    "DocumentEvent",
    "ErrorInfo",
    "Hit",
    "IngestAck",
    "Message",
    "ReindexRequest",
    "ReindexStatus",
    "SearchRequest",
    "SearchResult",
    "StageTimings",
    "Topic",
    "TopicRegistry",
    "TopicSpec",
    "decode",
    "elapsed_ms",
    "encode",
    "now_ms",
]
