"""Tenants on a cluster: `cascade tenants add NAME` makes a tenant's topics, `remove` deletes them.

A tenant's clients work in a namespace of their own (`<prefix>tenant.<name>.`: documents, acks, queries, results,
replies, reindex, reindex.status) and their own collections; the services, subscribed to every tenant's request
topics by pattern, start serving it at their next metadata refresh (`CASCADE_KAFKA_TENANT_DISCOVERY_MS`).
"""

from __future__ import annotations

from typing import Any

from cascade.contracts import DEFAULT_TENANT, TopicRegistry
from cascade.contracts.topic_admin import admin_client, partition_counts
from cascade.runtime.provision import ProvisionReport, provision_topics

__all__ = ["add_tenant", "remove_tenant"]


async def add_tenant(registry: TopicRegistry, name: str, replication_factor: int | None = None,
                     **client_options: Any) -> ProvisionReport:
    """Create what is missing of tenant `name`'s topics (and of the services' own); safe to run again."""
    return await provision_topics(registry.for_tenant(name), replication_factor, **client_options)


async def remove_tenant(registry: TopicRegistry, name: str, **client_options: Any) -> list[str]:
    """Delete tenant `name`'s topics; returns those deleted. Its collections stay in the store."""
    if name == DEFAULT_TENANT:
        raise ValueError("the default tenant's topics are the deployment's own: it cannot be removed")
    names = list(registry.for_tenant(name).tenant_topics())
    async with admin_client(**client_options) as admin:
        present = sorted(await partition_counts(admin, names))
        if present:
            await admin.delete_topics(present)
    return present
