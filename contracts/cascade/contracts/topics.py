"""The topic registry: every topic's name, key, message type, partitions and retention, in one place.

Services, the SDK, provisioning and the AsyncAPI document all read it, so a topic is declared once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from pydantic import BaseModel

from cascade.contracts.messages import (
    TENANT_PATTERN,
    CandidateSet,
    DeadLetter,
    DocumentEvent,
    IngestAck,
    ReindexRequest,
    ReindexStatus,
    SearchRequest,
    SearchResult,
)

__all__ = ["DEFAULT_PREFIX", "DEFAULT_TENANT", "GROWABLE", "SPECS", "TENANT_MARK", "TENANT_TOPICS",
           "Topic", "TopicRegistry", "TopicSpec"]

DEFAULT_PREFIX: Final = "cascade."
DEFAULT_TENANT: Final = "default"
"""The tenant of an install without tenants: its topics are the prefix's own (`cascade.queries`)."""
TENANT_MARK: Final = "tenant."
"""After the prefix, the start of every tenant's namespace but the default one's (`cascade.tenant.acme.`)."""
_HOUR_MS: Final = 3600 * 1000
_DAY_MS: Final = 24 * _HOUR_MS


class Topic(StrEnum):
    DOCUMENTS = "documents"
    ACKS = "documents.acks"
    QUERIES = "queries"
    CANDIDATES = "candidates"
    CANDIDATES_BULK = "candidates.bulk"
    RESULTS = "results"
    REPLIES = "replies"
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
        "Ranked results or errors of requests without reply_to, for readers of every answer (query or reranker "
        "-> any reader, in a consumer group of its own).",
    ),
    Topic.REPLIES: TopicSpec(
        SearchResult, "request_id", 12, _HOUR_MS,
        "Answers to requests naming it in reply_to, each on the partition the request names in reply_partition "
        "(query or reranker -> the requester). Clients share it: each reads one partition without a consumer "
        "group, from its end offset at start, and drops answers to requests it did not send.",
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


TENANT_TOPICS: Final = frozenset({Topic.DOCUMENTS, Topic.ACKS, Topic.QUERIES, Topic.RESULTS, Topic.REPLIES,
                                   Topic.REINDEX, Topic.REINDEX_STATUS})
"""The topics each tenant has of its own: what its clients send and receive. The others (candidates, dead
letters) are the services' own, shared by every tenant."""

GROWABLE: Final = frozenset({Topic.QUERIES, Topic.CANDIDATES, Topic.CANDIDATES_BULK})
"""Topics whose partitions may be raised on a live cluster: their records are keyed by request id, so no order
between records is lost when keys move to other partitions (documents are keyed by doc_id, whose order counts)."""


@dataclass(frozen=True)
class TopicRegistry:
    """Resolves topic names under a prefix (several deployments can share one cluster) for one tenant, with the
    deployment's partition counts for the growable topics.

    A tenant's topics (`TENANT_TOPICS`) live in its namespace, `<prefix>tenant.<name>.` (`cascade.tenant.acme.
    queries`); the default tenant's are the prefix's own (`cascade.queries`), so an install without tenants
    keeps its names. The services' own topics are the deployment's, whatever the tenant.
    """

    prefix: str = DEFAULT_PREFIX
    partitions: Mapping[Topic, int] = field(default_factory=dict, hash=False)
    tenant: str = DEFAULT_TENANT

    def __post_init__(self) -> None:
        if fixed := set(self.partitions) - GROWABLE:
            raise ValueError(f"the partitions of {sorted(fixed)} are fixed; only {sorted(GROWABLE)} may be set")
        if not re.fullmatch(TENANT_PATTERN, self.tenant):
            raise ValueError(f"tenant {self.tenant!r} is not a tenant name: {TENANT_PATTERN} (no dots)")

    def for_tenant(self, tenant: str) -> TopicRegistry:
        """The same deployment's topics for `tenant`."""
        return replace(self, tenant=tenant)

    @property
    def namespace(self) -> str:
        """The prefix of this tenant's own topics."""
        return self.prefix if self.tenant == DEFAULT_TENANT else f"{self.prefix}{TENANT_MARK}{self.tenant}."

    def name(self, topic: Topic) -> str:
        return f"{self.namespace if topic in TENANT_TOPICS else self.prefix}{topic.value}"

    def pattern(self, topic: Topic) -> str:
        """A regular expression matching `topic` of every tenant of the deployment (a pattern subscription)."""
        return f"^{re.escape(self.prefix)}(?:{re.escape(TENANT_MARK)}{TENANT_PATTERN}\\.)?{re.escape(topic.value)}$"

    def tenant_of(self, name: str) -> str | None:
        """The tenant whose topic `name` is (None: no tenant's)."""
        own = name.removeprefix(f"{self.prefix}{TENANT_MARK}")
        if own == name:
            tenant, value = DEFAULT_TENANT, name.removeprefix(self.prefix)
            if value == name:
                return None
        else:
            tenant, _, value = own.partition(".")
            if tenant == DEFAULT_TENANT or not re.fullmatch(TENANT_PATTERN, tenant):
                return None  # the default tenant's topics are the prefix's own, never marked
        return tenant if value in {topic.value for topic in TENANT_TOPICS} else None

    def spec(self, topic: Topic) -> TopicSpec:
        spec = SPECS[topic]
        return replace(spec, partitions=self.partitions[topic]) if topic in self.partitions else spec

    def reply_problem(self, reply_to: str, partition: int | None) -> str | None:
        """Why services may not answer on `reply_to` (partition `partition`), or None if they may.

        Answers go to this namespace's results or replies topic only: a request naming any other topic would
        make a service write into it, another namespace's included. On the replies topic the requester names the
        partition it reads.
        """
        replies = self.name(Topic.REPLIES)
        if reply_to not in (replies, self.name(Topic.RESULTS)):
            return (f"reply_to {reply_to!r} is outside this namespace's answer topics: use {replies!r} (with "
                    f"reply_partition) or {self.name(Topic.RESULTS)!r}")
        if reply_to == replies:
            partitions = self.spec(Topic.REPLIES).partitions
            if partition is None or not 0 <= partition < partitions:
                return f"reply_partition {partition} is not a partition of {replies!r} (0 to {partitions - 1})"
        elif partition is not None:
            return f"reply_partition names a partition of {replies!r}, not of {reply_to!r}"
        return None

    def all(self) -> dict[str, TopicSpec]:
        """Full topic name -> spec, for every topic (the services' own and this tenant's)."""
        return {self.name(topic): self.spec(topic) for topic in SPECS}

    def tenant_topics(self) -> dict[str, TopicSpec]:
        """Full topic name -> spec, for this tenant's own topics (what `cascade tenants add` creates)."""
        return {self.name(topic): self.spec(topic) for topic in SPECS if topic in TENANT_TOPICS}

    def growable(self) -> set[str]:
        """Full names of the topics whose partitions provisioning may raise."""
        return {self.name(topic) for topic in GROWABLE}
