"""Creating topics as Cascade's processes and clients do: replicated for the cluster they are on, and a refusal
(a missing ACL, a bad setting) raised with the broker's reason rather than ignored."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

__all__ = ["TopicToCreate", "admin_client", "create_topics", "partition_counts", "replication_for"]

log = structlog.get_logger(__name__)


class TopicToCreate(NamedTuple):
    name: str
    partitions: int
    configs: dict[str, str]


@contextlib.asynccontextmanager
async def admin_client(**kafka_options: Any) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client of the cluster (and with the security) that a client's `kafka_options` name; `client_id`
    is left out, as an admin client names itself."""
    admin = AIOKafkaAdminClient(**{key: value for key, value in kafka_options.items() if key != "client_id"})
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def partition_counts(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, int]:
    """The partition count of each of `names` the cluster lists (a missing topic is left out). Only for Cascade's
    own provisioned topics: on a cluster that auto-creates topics, asking for a name creates it."""
    return {topic["topic"]: len(topic["partitions"]) for topic in await admin.describe_topics(list(names))
            if topic.get("error_code", 0) == 0}


def replication_for(brokers: int, factor: int | None = None) -> tuple[int, int]:
    """The replication factor (`factor`, else three where there are three brokers) and `min.insync.replicas` of
    a topic on a cluster of `brokers`: two copies must hold each write (producers ask acks=all) where there are
    three, so a broker can be lost without losing an acknowledged record or refusing writes."""
    factor = factor or min(3, brokers)
    return factor, max(1, min(2, factor - 1))


async def create_topics(admin: AIOKafkaAdminClient, topics: Sequence[TopicToCreate],
                        replication_factor: int | None = None, settle_s: float = 30.0) -> None:
    """Create each topic missing, replicated `replication_factor` times or as the brokers registered now call for
    (`replication_for`; a warning when that is fewer than three on a cluster of several). Topics that exist
    already are left as they are. Returns once the broker asked lists them all (creation returns before that, and
    a client reading a topic its broker does not list yet logs "not found" until it does), or after `settle_s`."""
    brokers = len((await admin.describe_cluster())["brokers"])
    factor, in_sync = replication_for(brokers, replication_factor)
    if replication_factor is None and 1 < brokers < 3:
        log.warning("topics.under_replicated", brokers=brokers, replication_factor=factor,
                    reason="fewer than three brokers are registered: a broker down now, or a cluster of two")
    response = await admin.create_topics([
        NewTopic(topic.name, topic.partitions, factor,
                 topic_configs={"min.insync.replicas": str(in_sync), **topic.configs}) for topic in topics])
    for name, code, *message in response.topic_errors:
        if code not in (0, TopicAlreadyExistsError.errno):
            error = for_code(code)
            raise error(f"creating topic {name}: {message[0] if message and message[0] else error.description}")
    give_up_at = time.monotonic() + settle_s
    names = [topic.name for topic in topics]
    while len(await partition_counts(admin, names)) < len(names):
        if time.monotonic() > give_up_at:
            log.warning("topics.not_listed_yet", topics=names, waited_s=settle_s)
            return
        await asyncio.sleep(0.1)
