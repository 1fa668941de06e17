"""Tenants in the services: whose a record is (the namespace of the topic it came from) and the store's name of
a tenant's collection. Answers go back into the namespace a request came from; collections never cross tenants."""

from __future__ import annotations

import re
from typing import Final

import orjson

from cascade.contracts import DEFAULT_TENANT, TopicRegistry
from cascade.contracts.messages import TENANT_PATTERN
from cascade.services.messaging import RawRecord

__all__ = ["COLLECTION_MARK", "owner", "salvaged_tenant", "shown_collection", "stored_collection", "tenant_topics"]

COLLECTION_MARK: Final = "~"
"""Between a tenant and its collection's name in the store: a character no collection name holds, so no tenant can
name another's collection."""


def tenant_topics(topics: TopicRegistry, record: RawRecord) -> TopicRegistry:
    """The topics of the tenant whose topic `record` came from."""
    return topics.for_tenant(topics.tenant_of(record.topic) or DEFAULT_TENANT)


def salvaged_tenant(record: RawRecord) -> str | None:
    """The tenant a candidate set that failed validation names, if that can be read."""
    try:
        tenant = orjson.loads(record.value).get("tenant")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return tenant if isinstance(tenant, str) and re.fullmatch(TENANT_PATTERN, tenant) else None


def stored_collection(tenant: str, collection: str) -> str:
    """The store's name of `tenant`'s `collection`: the default tenant's keep their names."""
    return collection if tenant == DEFAULT_TENANT else f"{tenant}{COLLECTION_MARK}{collection}"


def owner(stored: str) -> str:
    """The tenant a collection (or a version of it) of the store belongs to."""
    tenant, mark, _ = stored.partition(COLLECTION_MARK)
    return tenant if mark else DEFAULT_TENANT


def shown_collection(stored: str) -> str:
    """The name a collection (or a version of it) is known by to its tenant's clients, from the store's."""
    return stored.rpartition(COLLECTION_MARK)[2]
