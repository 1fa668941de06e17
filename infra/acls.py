"""Least privilege: the ACLs each Cascade role needs on a cluster, under its topic prefix.

Every role may Describe the prefix's topics (services check at start that the registry's topics exist, and
see which reply topics exist). Beyond that, each reads what it consumes and writes what it produces;
services consume in their role's group. The embedded mode serves ingest and query in one process, whose
user needs both roles. The README's ACL table is this data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from contracts import Topic, TopicRegistry

__all__ = ["ROLE_GRANTS", "Grant", "Role", "grant_role"]

Role = Literal["ingest", "query", "reranker", "client", "operator"]


@dataclass(frozen=True)
class Grant:
    operations: tuple[str, ...]
    topics: tuple[str, ...] = ()
    """Registry topic values ("documents") or, with `prefixed`, name prefixes after the topic prefix ("replies.")."""
    groups: tuple[str, ...] = ()
    """Consumer groups after the topic prefix (a service's group is `<prefix><role>`)."""
    prefixed: bool = False


_DESCRIBE_ALL = Grant(("Describe",), topics=("",), prefixed=True)
_REPLIES = "replies."
ROLE_GRANTS: dict[Role, tuple[Grant, ...]] = {
    "ingest": (_DESCRIBE_ALL, Grant(("Read",), topics=(Topic.DOCUMENTS.value,), groups=("ingest",)),
               Grant(("Write",), topics=(Topic.ACKS.value, Topic.DLQ.value))),
    "query": (_DESCRIBE_ALL, Grant(("Read",), topics=(Topic.QUERIES.value,), groups=("query",)),
              Grant(("Write",), topics=(Topic.CANDIDATES.value, Topic.RESULTS.value, Topic.DLQ.value)),
              Grant(("Write",), topics=(_REPLIES,), prefixed=True)),
    "reranker": (_DESCRIBE_ALL, Grant(("Read",), topics=(Topic.CANDIDATES.value,), groups=("reranker",)),
                 Grant(("Write",), topics=(Topic.RESULTS.value, Topic.DLQ.value)),
                 Grant(("Write",), topics=(_REPLIES,), prefixed=True)),
    "client": (_DESCRIBE_ALL, Grant(("Write",), topics=(Topic.DOCUMENTS.value, Topic.QUERIES.value)),
               Grant(("Read",), topics=(Topic.ACKS.value,)),
               Grant(("Create", "Read", "Delete"), topics=(_REPLIES,), prefixed=True)),
    "operator": (Grant(("Create", "Describe", "DescribeConfigs", "Alter", "AlterConfigs"), topics=("",),
                       prefixed=True),
                 Grant(("Describe",), groups=("",), prefixed=True)),
}


class Granting(Protocol):
    def grant(self, user: str, operations: tuple[str, ...], *, topics: tuple[str, ...] = (),
              groups: tuple[str, ...] = (), prefixed: bool = False) -> None: ...


def grant_role(cluster: Granting, user: str, role: Role, topics: TopicRegistry) -> None:
    """Give `user` the ACLs of `role` under `topics`' prefix (e.g. on LocalKafka, with Kafka's AclCommand)."""
    for grant in ROLE_GRANTS[role]:
        named = tuple(f"{topics.prefix}{name}" for name in grant.topics)
        groups = tuple(f"{topics.prefix}{name}" for name in grant.groups)
        if named:
            cluster.grant(user, grant.operations, topics=named, prefixed=grant.prefixed)
        if groups:  # a group's ACL is Read (consume) or Describe, whatever the topics get
            cluster.grant(user, ("Read",) if "Read" in grant.operations else grant.operations, groups=groups,
                          prefixed=grant.prefixed)
