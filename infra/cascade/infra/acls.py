"""Least privilege: the ACLs each Cascade role needs on a cluster, under its topic prefix.

Service roles may Describe the prefix's topics (they check at start that the registry's topics exist, and find
tenants' topics by pattern); a tenant's client Describes its own topics only. Beyond that, each reads what it
consumes and writes what it produces: services their deployment's topics and every tenant's, a client its own
tenant's. Services consume in their role's group; clients read their partition of replies, acks and reindex
statuses by assignment, without a group, and the results topic in groups of their own (`CLIENT_GROUPS`). The
embedded mode serves ingest, query and rerank in one process, whose user needs the three roles. The ACL table of
docs/security.md is this data. `grant` creates them with one CreateAcls request (v1, which Kafka 4 still accepts
and aiokafka's protocol module defines) as an admin user; `revoke` deletes a user's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest_v1, DeleteAclsRequest
from aiokafka.protocol.api import Request

from cascade.contracts import Topic, TopicRegistry
from cascade.contracts.topics import TENANT_MARK, TENANT_TOPICS

__all__ = ["CLIENT_GROUPS", "OPERATOR_GROUPS", "ROLE_GRANTS", "Grant", "Role", "grant", "grant_role", "revoke"]

Role = Literal["ingest", "query", "reranker", "client", "operator"]
Operation = Literal["Read", "Write", "Create", "Delete", "Alter", "Describe", "DescribeConfigs", "AlterConfigs"]
_OPERATIONS: dict[Operation, int] = {"Read": 3, "Write": 4, "Create": 5, "Delete": 6, "Alter": 7, "Describe": 8,
                                     "DescribeConfigs": 10, "AlterConfigs": 11}
_ANY = 1
_TOPIC, _GROUP, _CLUSTER = 2, 3, 4
_LITERAL, _PREFIXED = 3, 4
_ALLOW = 3


@dataclass(frozen=True)
class Grant:
    operations: tuple[Operation, ...]
    topics: tuple[str, ...] = ()
    """Registry topic values ("documents": the tenant's own or the deployment's) or, with `prefixed`, name prefixes
    after the topic prefix ("" for all, "tenant." for every tenant's)."""
    groups: tuple[str, ...] = ()
    """Consumer groups after the tenant's namespace (a service's group is `<prefix><role>`); they get Read."""
    prefixed: bool = False
    cluster: bool = False
    """The operations are on the cluster itself (creating ACLs, users and quotas: the operator's)."""


_DESCRIBE_ALL = Grant(("Describe",), topics=("",), prefixed=True)
_TENANTS = TENANT_MARK
"""Every tenant's topics, after the prefix: services read their requests and answer there."""
CLIENT_GROUPS = "client."
"""Consumer groups a client may read in, after the topic prefix: a reader of the results topic (a client in a
language without partition assignment, kafkajs) names its group `<prefix>client.<anything>`."""
OPERATOR_GROUPS = "operator."
"""Consumer groups an operator reads the dead letters in, after the topic prefix."""
ROLE_GRANTS: dict[Role, tuple[Grant, ...]] = {
    "ingest": (_DESCRIBE_ALL, Grant(("Read",), topics=(Topic.DOCUMENTS.value, Topic.REINDEX.value),
                                    groups=("ingest", "ingest-reindex")),
               # documents: a reindex's copies (cascade.services.ingest.reindex)
               Grant(("Write",), topics=(Topic.ACKS.value, Topic.DLQ.value, Topic.REINDEX_STATUS.value,
                                         Topic.DOCUMENTS.value)),
               Grant(("Read", "Write"), topics=(_TENANTS,), prefixed=True)),  # the same, for every tenant
    "query": (_DESCRIBE_ALL, Grant(("Read",), topics=(Topic.QUERIES.value,), groups=("query",)),
              Grant(("Describe",), groups=("reranker",)),  # its backlog, for admission (cascade.services.lag)
              Grant(("Write",), topics=(Topic.CANDIDATES.value, Topic.CANDIDATES_BULK.value, Topic.RESULTS.value,
                                        Topic.REPLIES.value, Topic.DLQ.value)),
              Grant(("Read", "Write"), topics=(_TENANTS,), prefixed=True)),  # every tenant's queries and answers
    "reranker": (_DESCRIBE_ALL, Grant(("Read",), topics=(Topic.CANDIDATES.value, Topic.CANDIDATES_BULK.value),
                                      groups=("reranker", "reranker-bulk")),
                 Grant(("Write",), topics=(Topic.RESULTS.value, Topic.REPLIES.value, Topic.DLQ.value)),
                 Grant(("Write",), topics=(_TENANTS,), prefixed=True)),  # every tenant's answers
    "client": (Grant(("Describe",), topics=tuple(sorted(topic.value for topic in TENANT_TOPICS))),  # its own only
               Grant(("Write",), topics=(Topic.DOCUMENTS.value, Topic.QUERIES.value, Topic.REINDEX.value)),
               Grant(("Read",), topics=(Topic.ACKS.value, Topic.REINDEX_STATUS.value, Topic.REPLIES.value,
                                        Topic.RESULTS.value)),
               Grant(("Read",), groups=(CLIENT_GROUPS,), prefixed=True)),  # readers of results in a group
    "operator": (Grant(("Create", "Delete", "Describe", "DescribeConfigs", "Alter", "AlterConfigs"), topics=("",),
                       prefixed=True),
                 Grant(("Alter", "AlterConfigs", "Describe", "DescribeConfigs"), cluster=True),  # tenants' logins
                 Grant(("Describe",), groups=("",), prefixed=True),
                 Grant(("Read",), topics=(Topic.DLQ.value,)),
                 Grant(("Read",), groups=(OPERATOR_GROUPS,), prefixed=True)),
}


Binding = tuple[int, str, int, str, str, int, int]


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 30

    def __init__(self, creations: list[Binding]) -> None:
        self.creations = creations

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self.creations)


def bindings(user: str, grants: tuple[Grant, ...], topics: TopicRegistry) -> list[Binding]:
    """(resource type, name, pattern, principal, host, operation, permission) of each ACL the grants mean, for the
    tenant of `topics`: its own topics and groups (`client`), or the deployment's (a service role)."""
    principal = f"User:{user}"
    out: list[Binding] = []
    for grant in grants:
        pattern = _PREFIXED if grant.prefixed else _LITERAL
        if grant.cluster:
            out += [(_CLUSTER, "kafka-cluster", _LITERAL, principal, "*", _OPERATIONS[operation], _ALLOW)
                    for operation in grant.operations]
        for name in grant.topics:
            resource = f"{topics.prefix}{name}" if grant.prefixed else topics.name(Topic(name))
            out += [(_TOPIC, resource, pattern, principal, "*", _OPERATIONS[operation], _ALLOW)
                    for operation in grant.operations]
        out += [(_GROUP, f"{topics.namespace}{name}", pattern, principal, "*",
                 _OPERATIONS["Read" if "Read" in grant.operations else "Describe"], _ALLOW) for name in grant.groups]
    return out


async def grant(user: str, grants: tuple[Grant, ...], topics: TopicRegistry, **admin_options: Any) -> None:
    """Create the ACLs `grants` mean for `user` under `topics`' prefix, as the admin user of `admin_options`."""
    admin = AIOKafkaAdminClient(**admin_options)
    await admin.start()
    try:
        response = await admin._send_request(_CreateAcls(bindings(user, grants, topics)))
    finally:
        await admin.close()
    for code, message in response.creation_responses:
        if code:
            raise for_code(code)(f"creating the ACLs of {user!r}: {message}")


async def grant_role(user: str, role: Role, topics: TopicRegistry, **admin_options: Any) -> None:
    """Give `user` the ACLs of `role` (several roles: call once per role)."""
    await grant(user, ROLE_GRANTS[role], topics, **admin_options)


async def revoke(user: str, **admin_options: Any) -> int:
    """Delete every ACL of `user` (a tenant removed), as the admin user of `admin_options`; how many were."""
    admin = AIOKafkaAdminClient(**admin_options)
    await admin.start()
    try:
        response = await admin._send_request(DeleteAclsRequest(_ANY, None, _ANY, f"User:{user}", None, _ANY, _ANY))
    finally:
        await admin.close()
    deleted = 0
    for code, message, matching in response.filter_responses:
        if code:
            raise for_code(code)(f"deleting the ACLs of {user!r}: {message}")
        deleted += len(matching)
    return deleted
