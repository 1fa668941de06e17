"""Creating topics as Cascade's processes and clients do: replicated for the cluster they are on, and a refusal
(a missing ACL, a bad setting) raised with the broker's reason rather than ignored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from contracts import replication_for

__all__ = ["create_topics"]


async def create_topics(admin: AIOKafkaAdminClient, topics: Sequence[tuple[str, int, dict[str, str]]],
                        replication_factor: int | None = None, settle_s: float = 30.0) -> None:
    """Create each (name, partitions, configs) missing; replicated `replication_factor` times, or as the cluster's
    size calls for (`replication_for`). Topics that exist already are left as they are. Returns once the broker
    answering lists them all (creation returns before that, and a client reading a topic its broker does not list
    yet logs "not found" until it does), or after `settle_s`."""
    brokers = len((await admin.describe_cluster())["brokers"])
    factor, in_sync = replication_for(brokers, replication_factor)
    response = await admin.create_topics([
        NewTopic(name, partitions, factor, topic_configs={"min.insync.replicas": str(in_sync), **configs})
        for name, partitions, configs in topics])
    for topic, code, *message in response.topic_errors:
        if code not in (0, TopicAlreadyExistsError.errno):
            error = for_code(code)
            raise error(f"creating topic {topic}: {message[0] if message and message[0] else error.description}")
    give_up_at = time.monotonic() + settle_s
    names = [name for name, _, _ in topics]
    while any(found.get("error_code", 0) != 0 for found in await admin.describe_topics(names)):
        if time.monotonic() > give_up_at:
            return
        await asyncio.sleep(0.1)
