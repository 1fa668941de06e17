"""The topic registry: every topic's name, key, message type, partitions and retention, in one place.

Services, the SDK, provisioning and the AsyncAPI document all read it, so a topic is declared once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from pydantic import BaseModel

from cascade.contracts.messages import (
    CandidateSet,
    DeadLetter,
    DocumentEvent,
    IngestAck,
    ReindexRequest,
    ReindexStatus,
    SearchRequest,
    SearchResult,
)

__all__ = ["DEFAULT_PREFIX", "GROWABLE", "SPECS", "Topic", "TopicRegistry", "TopicSpec"]

DEFAULT_PREFIX: Final = "cascade."
_DAY_MS: Final = 24 * 3600 * 1000


class Topic(StrEnum):
    DOCUMENTS = "documents"
    ACKS = "documents.acks"
    QUERIES = "queries"
    CANDIDATES = "candidates"
    CANDIDATES_BULK = "candidates.bulk"
    RESULTS = "results"
    DLQ = "dlq"
    REINDEX = "reindex"
    REINDEX_STATUS = "reindex.status"


@dataclass(frozen=True)
class TopicSpec:
    message: type[BaseModel]
    key: str
    partitions: int
    retention_ms: int
    description: str


SPECS: Final[dict[Topic, TopicSpec]] = {
    Topic.DOCUMENTS: TopicSpec(
        DocumentEvent, "doc_id", 6, 7 * _DAY_MS, "Documents to index or delete (SDK -> ingest)."
    ),
    Topic.ACKS: TopicSpec(IngestAck, "doc_id", 6, _DAY_MS, "One acknowledgement per document (ingest -> SDK)."),
    Topic.QUERIES: TopicSpec(SearchRequest, "request_id", 6, _DAY_MS, "Search requests (SDK -> query)."),
    Topic.CANDIDATES: TopicSpec(
        CandidateSet, "request_id", 6, _DAY_MS,
        "First-stage candidates of interactive requests to rerank (query -> reranker); its partitions bound the "
        "reranker pods.",
    ),
    Topic.CANDIDATES_BULK: TopicSpec(
        CandidateSet, "request_id", 6, _DAY_MS,
        "First-stage candidates of bulk-lane requests (query -> reranker); the rerankers pause its partitions while "
        "interactive candidate sets wait.",
    ),
    Topic.RESULTS: TopicSpec(
        SearchResult, "request_id", 6, _DAY_MS,
        "Ranked results or errors, for requests without reply_to (query or reranker -> SDK).",
    ),
    Topic.DLQ: TopicSpec(
        DeadLetter, "source key", 1, 14 * _DAY_MS, "Records a service could not process, with the reason."
    ),
    Topic.REINDEX: TopicSpec(
        ReindexRequest, "collection", 1, 7 * _DAY_MS, "Collections to build anew with another model (SDK -> ingest)."
    ),
    Topic.REINDEX_STATUS: TopicSpec(
        ReindexStatus, "collection", 1, 7 * _DAY_MS, "A reindex's start, switch or failure (ingest -> SDK)."
    ),
}


GROWABLE: Final = frozenset({Topic.QUERIES, Topic.CANDIDATES, Topic.CANDIDATES_BULK})
"""Topics whose partitions may be raised on a live cluster: their records are keyed by request id, so no order
between records is lost when keys move to other partitions (documents are keyed by doc_id, whose order counts)."""


@dataclass(frozen=True)
class TopicRegistry:
    """Resolves topic names under a prefix (several deployments can share one cluster), with the deployment's
    partition counts for the growable topics."""

    prefix: str = DEFAULT_PREFIX
    partitions: Mapping[Topic, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if fixed := set(self.partitions) - GROWABLE:
            raise ValueError(f"the partitions of {sorted(fixed)} are fixed; only {sorted(GROWABLE)} may be set")

    def name(self, topic: Topic) -> str:
        return f"{self.prefix}{topic.value}"

    def spec(self, topic: Topic) -> TopicSpec:
        spec = SPECS[topic]
        return replace(spec, partitions=self.partitions[topic]) if topic in self.partitions else spec

    @property
    def replies_prefix(self) -> str:
        """Per-client reply topics live under this prefix; results go nowhere else (see `is_reply_target`)."""
        return f"{self.prefix}replies."

    def is_reply_target(self, topic: str) -> bool:
        """Whether services may publish a result to `topic`: the shared results topic or a reply topic.

        A request names its reply topic; without this check it could make a service write into any topic.
        """
        return topic == self.name(Topic.RESULTS) or self.is_reply_topic(topic)

    def is_reply_topic(self, topic: str) -> bool:
        """A per-client reply topic: it exists only while its client runs."""
        return topic.startswith(self.replies_prefix) and len(topic) > len(self.replies_prefix)

    def all(self) -> dict[str, TopicSpec]:
        """Full topic name -> spec, for every topic."""
        return {self.name(topic): self.spec(topic) for topic in SPECS}

    def growable(self) -> set[str]:
        """Full names of the topics whose partitions provisioning may raise."""
        return {self.name(topic) for topic in GROWABLE}
